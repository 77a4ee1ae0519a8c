"""Evaluation items: the recipe's test split and suites in the formats public medical benchmarks use.

An `EvalItem` is the prompt to send and what a right answer is. Suite files are read by `_suite_files` and
each object is turned into an item by its format's builder in `_formats`. Every item may carry `id` and
`lang`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.eval._formats import BUILDERS, KIND_OF_FORMAT, finish_prompts
from finetune.eval._suite_files import SuiteError, bundled_suite_path, item_lang, read_objects
from finetune.recipe import SuiteConfig, suite_label


@dataclass(frozen=True)
class EvalItem:
    """One prompt to send to both models, and what counts as a right answer."""

    id: str
    suite: str
    task: str
    kind: str
    lang: str
    prompt: list[dict[str, Any]]
    reference: str | None = None
    gold: Any = None
    options: dict[str, str] | None = None
    location: str = ""
    max_new_tokens: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def scored_conversation(self) -> list[dict[str, Any]] | None:
        """Prompt + reference answer, for the held-out loss of free-text items."""
        if self.kind != "free_text" or self.reference is None:
            return None
        return [*self.prompt, {"role": "assistant", "content": self.reference}]


def load_suite(config: SuiteConfig, default_langs: Sequence[str]) -> list[EvalItem]:
    """The items of one suite. A bundled sample runs for `config.lang`, or else for `default_langs`."""
    sample = config.path is None
    path = bundled_suite_path(config.format) if sample else Path(config.path)  # type: ignore[arg-type]
    wanted = {config.lang} if (sample and config.lang) else (set(default_langs) if sample else None)
    label = suite_label(config)
    built: list[tuple[str, str, dict[str, Any], str]] = []
    per_lang: dict[str, int] = {}
    for position, (where, obj) in enumerate(read_objects(path), start=1):
        lang = item_lang(obj, where, config.lang)
        if wanted is not None and lang not in wanted:
            continue
        if config.max_items and per_lang.get(lang, 0) >= config.max_items:
            continue
        per_lang[lang] = per_lang.get(lang, 0) + 1
        built.append((where, lang, BUILDERS[config.format](obj, where, lang), str(obj.get("id", position))))
    if not built:
        raise SuiteError(f"{path}: suite {label!r} has no items" + (f" in {', '.join(sorted(wanted))}" if wanted
                                                                    else ""))
    finish_prompts(config.format, [(lang, parts) for _, lang, parts, _ in built])
    return [
        EvalItem(
            id=f"{label}:{item_id}", suite=label, task=label,
            kind=KIND_OF_FORMAT[config.format], lang=lang, location=where, max_new_tokens=config.max_new_tokens,
            meta={"sample": sample, **parts.pop("meta", {})}, **parts,
        )
        for where, lang, parts, item_id in built
    ]


def load_test_split(data_dir: Path, limit: int | None = None) -> list[EvalItem]:
    """The prepared test split: everything before the last assistant turn is the prompt, that turn the reference."""
    path = data_dir / "test.jsonl"
    if not path.is_file():
        raise SuiteError(f"{path} is missing: run `medtune prepare` for this recipe first")
    items = []
    for where, obj in read_objects(path):
        messages = obj.get("messages")
        if not isinstance(messages, list) or not any(
            isinstance(m, dict) and m.get("role") == "assistant" for m in messages
        ):
            raise SuiteError(f"{where}: field 'messages' must hold an assistant turn")
        last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
        meta = obj.get("meta") or {}
        index = len(items)
        items.append(EvalItem(
            id=str(meta.get("id", index)), suite="test", task=f"test:{meta.get('task', 'unknown')}",
            kind="free_text", lang=str(meta.get("lang", "unknown")), prompt=messages[:last],
            reference=messages[last]["content"], location=where, meta={"sample": False},
        ))
        if limit and len(items) >= limit:
            break
    if not items:
        raise SuiteError(f"{path} holds no examples")
    return items
