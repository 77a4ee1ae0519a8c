"""Reviewer marks on de-identification, kept as a labelled set in the PII test set's format
(`data_prep/pii_testset/{lang}.jsonl`: one `{"id", "text", "spans": [[start, end, kind], …]}` per note), so
`scripts/bench_deid.py --gold FILE` scores de-identification on the clinic's own reviewed notes. A log beside it
says what each review changed, by offsets and kinds only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from data_prep.files import jsonl_line, write_jsonl

MARKS_LOG = "marks.jsonl"


def _spans(raw: Any, text_length: int, kinds: tuple[str, ...], what: str) -> list[list[Any]]:
    """`[[start, end, kind], …]` checked against the text's length and the known kinds."""
    if not isinstance(raw, list):
        raise ValueError(f"{what}: expected a list of [start, end, kind]")
    spans = []
    for n, item in enumerate(raw):
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(v, int) for v in item[:2])):
            raise ValueError(f"{what}[{n}]: expected [start, end, kind]")
        start, end, kind = item
        if not 0 <= start < end <= text_length:
            raise ValueError(f"{what}[{n}]: {start}..{end} is not inside the note (length {text_length})")
        if kind not in kinds:
            raise ValueError(f"{what}[{n}]: unknown kind {kind!r}; one of {', '.join(kinds)}")
        spans.append([start, end, kind])
    return spans


def gold_spans(record: dict[str, Any], missed: Any, wrong: Any, kinds: tuple[str, ...]) -> tuple[list, list, list]:
    """The note's labelled spans after review: what de-identification found, less the redactions marked wrong,
    plus the identifiers marked missed. Returns (gold, missed, wrong) checked."""
    length = len(record["text"])
    missed = _spans(missed, length, kinds, "missed")
    wrong = _spans(wrong, length, kinds, "wrong")
    found = [list(s) for s in record["spans"]]
    unknown = [w for w in wrong if w not in found]
    if unknown:
        raise ValueError(f"wrong: {unknown[0][0]}..{unknown[0][1]} is not a redaction of this note")
    gold = [s for s in found if s not in wrong] + [m for m in missed if m not in found]
    return sorted(gold), missed, wrong


def save_review(directory: Path, record: dict[str, Any], missed: Any, wrong: Any, kinds: tuple[str, ...]) -> Path:
    """Write (or replace) the note's row in `directory/{lang}.jsonl` and log the marks; returns the set's path."""
    gold, missed, wrong = gold_spans(record, missed, wrong, kinds)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['lang']}.jsonl"
    rows = read_set(path)
    row = {"id": record["id"], "text": record["text"], "spans": gold}
    rows = [r for r in rows if r["id"] != record["id"]] + [row]
    tmp = path.with_suffix(".tmp")
    write_jsonl(tmp, rows)
    tmp.replace(path)
    entry = {"id": record["id"], "lang": record["lang"], "missed": missed, "wrong": wrong, "time": time.time()}
    with (directory / MARKS_LOG).open("a", encoding="utf-8") as handle:
        handle.write(jsonl_line(entry))
    return path


def read_set(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reviewed_ids(directory: Path) -> dict[str, dict[str, Any]]:
    """Every reviewed note by id, across the languages' sets."""
    found = {}
    for path in sorted(directory.glob("*.jsonl")):
        if path.name != MARKS_LOG:
            found.update({row["id"]: row for row in read_set(path)})
    return found
