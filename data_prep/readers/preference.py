"""Preference pairs for DPO: a reviewed `{prompt, chosen, rejected}` file, or the evaluation's answers with a
reviewer's marks.

Two shapes, told apart by their columns (JSONL, JSON, CSV/TSV, XLSX or Parquet, any encoding, like every row
reader):

- **pairs**: one row per pair, `prompt`, `chosen`, `rejected` (optional `id`/`patient_id` keeps a patient's pairs in
  one split, `lang`);
- **reviewed answers**: the evaluation's `generations.jsonl` (one row per model and item: `model`, `id`, `lang`,
  `prompt`, `prediction`), opened by a clinician, who writes `yes` (or 1, x, ✓, да, иә, 是) in a column named
  `preferred` on the answer they chose for an item. The marked answer becomes `chosen`, the other model's answer
  to the same item `rejected`; items without a mark are not reviewed yet and are skipped; an item with both or
  more marked is a reject.

A pair with a side missing or both sides the same teaches nothing and is a reject that names its row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prep.config import SourceConfig
from data_prep.readers.base import declared_lang, missing, read_rows, row_options, text_of
from data_prep.readers.skip import Skip
from data_prep.records import Record, Reject

# fmt: off
PAIR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "question", "instruction", "вопрос", "запрос", "сұрақ", "问题", "提示"),
    "chosen": ("chosen", "preferred_answer", "better", "лучший ответ", "выбранный", "таңдалған", "选中", "更好"),
    "rejected": ("rejected", "worse", "отклонённый", "худший ответ", "қабылданбаған", "拒绝", "更差"),
}
# fmt: on
MARK_COLUMN = "preferred"
"""The reviewer's column in the evaluation's generations: a yes-like mark on the answer they chose."""
MARKS = frozenset({"yes", "y", "1", "true", "x", "✓", "✔", "+", "да", "иә", "是", "preferred", "chosen"})


def _is_marked(value: Any) -> bool:
    return not missing(value) and text_of(value).casefold() in MARKS


def _prompt_text(value: Any) -> str:
    """A prompt as the question asked: a string, or the evaluation's message list (its last user turn; the system
    prompt is the task's own, added again in the record's language)."""
    if isinstance(value, list):
        users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return text_of(users[-1]) if users and isinstance(users[-1], str) else ""
    if isinstance(value, str) and value.lstrip().startswith("[{"):
        try:
            return _prompt_text(json.loads(value))  # a spreadsheet keeps the list as its JSON text
        except ValueError:
            return text_of(value)
    return text_of(value)


def _pair_record(name: str, location: str, prompt: str, chosen: str, rejected: str, lang: str | None,
                 group_key: str) -> Record | Reject:
    for field, value in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
        if not value:
            return Reject(name, location, "missing_field", field)
    if chosen.strip() == rejected.strip():
        return Reject(name, location, "identical_answers", "rejected")
    return Record(name, location, group_key or hashlib.sha256(prompt.encode()).hexdigest()[:16], lang or "auto",
                  {"prompt": prompt, "chosen": chosen, "rejected": rejected}, kind="preference")


def _pair_row(name: str, location: str, obj: dict[str, Any], lang: str | None) -> Record | Reject:
    return _pair_record(name, location, text_of(obj.get("prompt")), text_of(obj.get("chosen")),
                        text_of(obj.get("rejected")), declared_lang(obj, lang),
                        text_of(obj.get("patient_id") or obj.get("id")))


class _Row:
    """A row as read, before pairing (reviewed answers are paired by item)."""

    def __init__(self, name: str, location: str, fields: dict[str, Any]) -> None:
        self.name, self.location, self.fields = name, location, fields

    @staticmethod
    def convert(name: str, location: str, obj: dict[str, Any]) -> Record:
        return Record(name, location, "", "", obj)


def _reviewed_pairs(rows: list[Record], lang: str | None) -> Iterator[Record | Reject | Skip]:
    """Pairs of the evaluation's answers by item id: the marked answer against the other model's."""
    items: dict[str, list[Record]] = {}
    for row in rows:
        items.setdefault(text_of(row.fields.get("id")), []).append(row)
    for item_id, answers in items.items():
        marked = [a for a in answers if _is_marked(a.fields.get(MARK_COLUMN))]
        first = answers[0]
        if not item_id:
            for answer in answers:
                yield Reject(answer.source, answer.location, "missing_field", "id")
            continue
        if not marked:
            yield Skip(first.source, first.location, "not_reviewed", "answer pair")
            continue
        if len(marked) > 1:
            yield Reject(marked[1].source, marked[1].location, "more_than_one_preferred", MARK_COLUMN)
            continue
        others = [a for a in answers if a is not marked[0]]
        if len(others) != 1:
            yield Reject(first.source, first.location, "not_two_answers", "model")
            continue
        chosen, rejected = marked[0].fields, others[0].fields
        yield _pair_record(first.source, marked[0].location, _prompt_text(chosen.get("prompt")),
                           text_of(chosen.get("prediction")), text_of(rejected.get("prediction")),
                           declared_lang(chosen, lang), f"item-{item_id}")


def read_preferences(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject | Skip]:
    """Stream preference pairs from a pair file or from reviewed evaluation answers (see the module docstring)."""
    path = Path(path)
    reviewed: list[Record] = []
    for item in read_rows(path, _Row.convert, synonyms=PAIR_SYNONYMS, **row_options(source)):
        if isinstance(item, Reject):
            yield item
        elif "prediction" in item.fields and "model" in item.fields:
            reviewed.append(item)  # an item's two answers may be far apart in the file: paired at the end
        else:
            yield _pair_row(item.source, item.location, item.fields, lang)
    yield from _reviewed_pairs(reviewed, lang)
