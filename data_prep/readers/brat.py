"""BRAT standoff annotation: a ``.txt`` document and its ``.ann`` entities and normalisations.

Entities (``T1<TAB>Disease 10 25<TAB>text``) keep their character offsets so that the extraction
task can be checked against the text; normalisations (``N1<TAB>Reference T1 ICD10:I10``) attach
codes. An annotation line whose offsets do not match the text is rejected on its own; the document
still counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prep.config import SourceConfig
from data_prep.readers.rows import MAX_FIELD_CHARS
from data_prep.readers.textio import detect_encoding, has_bad_bytes, open_text
from data_prep.records import Record, Reject

ENTITY = re.compile(r"^(?P<id>T\d+)\t(?P<label>\S+) (?P<spans>\d+ \d+(?:;\d+ \d+)*)\t(?P<text>.*)$")
NORMALIZATION = re.compile(r"^(?P<id>N\d+)\t\S+ (?P<target>T\d+) (?P<ref>\S+?)(?:\t(?P<text>.*))?$")
IGNORED = ("R", "E", "A", "M", "#", "*")


def brat_documents(path: Path) -> list[tuple[Path, Path]]:
    """(text, annotation) pairs of a folder, or of the one document ``path`` names (either file)."""
    if path.is_dir():
        texts = sorted(p for p in path.iterdir() if p.suffix == ".txt")
        return [(t, t.with_suffix(".ann")) for t in texts]
    return [(path.with_suffix(".txt"), path.with_suffix(".ann"))]


def _read(path: Path, encoding: str) -> str:
    with open_text(path, detect_encoding(path, encoding)) as handle:
        return handle.read()


def read_brat(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """One annotated Record per document; bad annotation lines become Rejects at ``file.ann:line``."""
    path = Path(path)
    encoding = source.encoding if source else "auto"
    for text_path, ann_path in brat_documents(path):
        name = text_path.name
        location = f"{name}:1"
        if not text_path.is_file() or not ann_path.is_file():
            missing = text_path.name if not text_path.is_file() else ann_path.name
            yield Reject(name, location, "missing_file", missing)
            continue
        text = _read(text_path, encoding)
        if has_bad_bytes(text):
            yield Reject(name, location, "bad_encoding")
            continue
        if len(text) > MAX_FIELD_CHARS:
            yield Reject(name, location, "field_too_long", "text")
            continue
        entities: dict[str, dict[str, Any]] = {}
        for lineno, line in enumerate(_read(ann_path, encoding).splitlines(), start=1):
            if not line.strip() or line.startswith(IGNORED):
                continue
            where = f"{ann_path.name}:{lineno}"
            if m := ENTITY.match(line):
                spans = [tuple(int(x) for x in part.split()) for part in m.group("spans").split(";")]
                found = " ".join(text[a:b] for a, b in spans)
                if any(a > b or b > len(text) for a, b in spans) or found.split() != m.group("text").split():
                    yield Reject(ann_path.name, where, "offset_mismatch", m.group("id"))
                    continue
                entities[m.group("id")] = {
                    "label": m.group("label"),
                    "start": spans[0][0],
                    "end": spans[-1][1],
                    "text": m.group("text"),
                    "codes": [],
                }
            elif m := NORMALIZATION.match(line):
                target = entities.get(m.group("target"))
                if target is None:
                    yield Reject(ann_path.name, where, "missing_reference", m.group("target"))
                    continue
                target["codes"].append(m.group("ref"))
            else:
                yield Reject(ann_path.name, where, "invalid_annotation")
        yield Record(
            source=name,
            location=location,
            patient_id=f"{name}#doc",
            lang=lang or "auto",
            fields={"text": text, "entities": sorted(entities.values(), key=lambda e: (e["start"], e["end"]))},
            kind="annotated",
        )
