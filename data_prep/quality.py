"""Quality filters: drop examples too short to teach, too long to fit, or already seen.

Each rejected example is reported with its reason so the data card can say what was lost and why.
The gate is applied one example at a time, so ``prepare`` can stream; ``filter_examples`` is the
same gate over a list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from data_prep.config import QualityConfig
from data_prep.dedup import NearDuplicateIndex, content_text, message_key, signature
from data_prep.records import ChatExample, Reject

TokenCounter = Callable[[ChatExample], int]
SHORT_ANSWER_TASKS = frozenset({"qa", "multiple_choice", "icd10_coding", "term_translation", "extraction"})
"""Tasks whose right answer is short by nature ("Ответ: да.", a code, a term): ``min_chars`` skips them."""


def assistant_text(example: ChatExample) -> str:
    """All assistant turns of an example, joined: the part the model is trained to produce."""
    return "\n".join(m["content"] for m in example.messages if m.get("role") == "assistant")


def example_reject(meta: dict[str, Any], reason: str) -> Reject:
    """The reject of an example with this ``meta`` (its source location and task)."""
    location = str(meta.get("source", ""))
    return Reject(
        source=location.rsplit(":", 1)[0],
        location=location,
        reason=reason,
        stage="quality",
        task=meta.get("task"),
    )


class QualityGate:
    """Decides, example by example, whether it is kept; remembers what it kept for deduplication."""

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self._seen: set[bytes] = set()
        self._near = NearDuplicateIndex(config.near_dup_threshold) if config.near_dup_threshold else None

    def check(self, example: ChatExample, length: int | None = None) -> str | None:
        """The reason to reject ``example``, or None to keep it (and remember it); see `judge`."""
        answered = any(m.get("role") == "assistant" for m in example.messages)
        return self.judge(
            task=example.meta.get("task"),
            answer_chars=len(assistant_text(example).strip()) if answered else None,
            length=length,
            key=message_key(example),
            minhash=signature(content_text(example)) if self._near is not None else None,
        )

    def judge(
        self, task: str | None, answer_chars: int | None, length: int | None, key: bytes, minhash: bytes | None
    ) -> str | None:
        """The reason to reject an example known by these facts, or None to keep it (and remember it).

        ``answer_chars``: length of its stripped answer (None: it has none); ``length``: its length in
        tokens, when known; ``key``: its `message_key`; ``minhash``: its content's signature.
        Reasons: ``too_short`` (answer under ``min_chars``), ``too_long`` (over ``max_tokens``),
        ``duplicate`` (same messages as a kept example), ``near_duplicate`` (MinHash similarity to a kept
        example at or over the threshold).
        """
        config = self.config
        if answer_chars is not None and task not in SHORT_ANSWER_TASKS and answer_chars < config.min_chars:
            return "too_short"
        if config.max_tokens is not None and length is not None and length > config.max_tokens:
            return "too_long"
        if config.dedup:
            if key in self._seen:
                return "duplicate"
            self._seen.add(key)
        if self._near is not None and minhash is not None and self._near.seen_before(minhash):
            return "near_duplicate"
        return None


def filter_examples(
    examples: Iterable[ChatExample],
    config: QualityConfig,
    count_tokens: TokenCounter | None = None,
) -> tuple[list[ChatExample], list[tuple[ChatExample, Reject]]]:
    """Kept examples in input order, and each rejected one with its reject."""
    gate = QualityGate(config)
    kept: list[ChatExample] = []
    rejected: list[tuple[ChatExample, Reject]] = []
    for example in examples:
        length = count_tokens(example) if count_tokens is not None and config.max_tokens is not None else None
        reason = gate.check(example, length)
        if reason is None:
            kept.append(example)
        else:
            rejected.append((example, example_reject(example.meta, reason)))
    return kept, rejected
