"""Quality filters: drop examples too short to teach, too long to fit, or already seen.

Each rejected example is reported with its reason so the data card can say what was lost and why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable

from data_prep.config import QualityConfig
from data_prep.records import ChatExample, Reject

TokenCounter = Callable[[ChatExample], int]


def assistant_text(example: ChatExample) -> str:
    """All assistant turns of an example, joined: the part the model is trained to produce."""
    return "\n".join(m["content"] for m in example.messages if m.get("role") == "assistant")


def message_key(example: ChatExample) -> str:
    """Fingerprint of the message list; equal fingerprints mean exact duplicates."""
    blob = json.dumps(example.messages, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _reject(example: ChatExample, reason: str) -> Reject:
    location = str(example.meta.get("source", ""))
    return Reject(
        source=location.rsplit(":", 1)[0],
        location=location,
        reason=reason,
        stage="quality",
        task=example.meta.get("task"),
    )


def filter_examples(
    examples: Iterable[ChatExample],
    config: QualityConfig,
    count_tokens: TokenCounter | None = None,
) -> tuple[list[ChatExample], list[tuple[ChatExample, Reject]]]:
    """Kept examples in input order, and each rejected one with its reject.

    Reasons: ``too_short`` (answer under ``min_chars``), ``too_long`` (over ``max_tokens``; only
    checked when ``count_tokens`` is given), ``duplicate`` (same messages as an earlier example).
    """
    kept: list[ChatExample] = []
    rejected: list[tuple[ChatExample, Reject]] = []
    seen: set[str] = set()
    check_length = config.max_tokens is not None and count_tokens is not None
    for example in examples:
        reason = None
        if len(assistant_text(example).strip()) < config.min_chars:
            reason = "too_short"
        elif check_length and count_tokens(example) > config.max_tokens:  # type: ignore[misc, operator]
            reason = "too_long"
        elif config.dedup:
            key = message_key(example)
            if key in seen:
                reason = "duplicate"
            seen.add(key)
        if reason is None:
            kept.append(example)
        else:
            rejected.append((example, _reject(example, reason)))
    return kept, rejected
