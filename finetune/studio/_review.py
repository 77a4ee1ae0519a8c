"""The Data page's content: a source read page by page through data_prep (readers → de-identification spans →
task examples), each record's text with the spans its redaction replaces, its examples, and the rejects with
their reasons. Nothing here writes or logs patient text."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from data_prep.config import DataConfig, SourceConfig
from data_prep.convert import convert_records
from data_prep.deid import (
    FIELD_SEPARATOR,
    PLACEHOLDERS,
    STRUCTURED_IDENTIFIERS,
    detectors_of,
    find_spans,
    merge_spans,
)
from data_prep.langid import detect_lang, record_text
from data_prep.readers import read_source
from data_prep.records import Record, Reject
from data_prep.sources import plan_of, prompts_of, source_path

PAGE_SIZE = 5
SEPARATOR_SHOWN = "\n" * len(FIELD_SEPARATOR)
"""Fields of a record are scanned joined by FIELD_SEPARATOR (a NUL between newlines); they are shown, and saved in
a reviewed set, joined by as many newlines, so every offset stays the same."""
KINDS = tuple(PLACEHOLDERS["en"])


@dataclass(frozen=True)
class Chosen:
    """A source to review: its configuration, the file it reads and a short name for ids and headings."""

    config: SourceConfig
    path: Path
    name: str


def recipe_source(data: DataConfig, index: int) -> Chosen:
    source = data.sources[index]
    path = source_path(source)
    return Chosen(source, path, path.name if source.path else f"bundled {source.lang} sample")


def file_source(path: Path, fmt: str = "auto", lang: str = "auto") -> Chosen:
    """A file the reviewer chose or uploaded (already checked to lie inside the recipe's directories)."""
    return Chosen(SourceConfig.model_validate({"path": str(path), "format": fmt, "lang": lang}), path, path.name)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [text for item in items for text in _strings(item)]


def record_spans(record: Record, data: DataConfig) -> tuple[str, list[list[Any]]]:
    """The record's free text as de-identification scans it (its fields joined) and the spans it redacts there,
    each `[start, end, kind]`, cut where they would cross from one field into the next."""
    strings = [s for k, v in record.fields.items() if k not in STRUCTURED_IDENTIFIERS for s in _strings(v)]
    strings = [s.replace("\x00", " ") for s in strings]
    joined = FIELD_SEPARATOR.join(strings)
    found = find_spans([(joined, detectors_of(record, data.deid))])[0]
    spans: list[list[Any]] = []
    for span in merge_spans(joined, found):
        start = span.start
        for cut in [i for i in range(span.start, span.end) if joined[i] == "\x00"] + [span.end]:
            piece_end = cut
            while piece_end > start and joined[piece_end - 1].isspace():
                piece_end -= 1
            if piece_end > start:
                spans.append([start, piece_end, span.kind])
            start = cut + 1
            while start < span.end and joined[start].isspace():
                start += 1
    return joined.replace(FIELD_SEPARATOR, SEPARATOR_SHOWN), spans


def _lang_of(record: Record, source: SourceConfig) -> str:
    if record.lang != "auto":
        return record.lang
    if source.lang != "auto":
        return source.lang
    return detect_lang(record_text(record.fields)) or "ru"


def read_page(chosen: Chosen, data: DataConfig, page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    """Records `page*size` … of the source: each with its text, redaction spans and examples; rejects with their
    reasons. `more` says whether a next page exists."""
    fmt, stream = read_source(chosen.path, chosen.config)
    plan = plan_of(data, chosen.config, fmt, prompts_of(data))
    items = list(itertools.islice(enumerate(stream), page * size, (page + 1) * size + 1))
    more = len(items) > size
    items = items[:size]
    records, rejects = [], []
    for index, item in items:
        if isinstance(item, Reject):
            rejects.append({"index": index, **item.to_json()})
            continue
        record = item if item.lang != "auto" else replace(item, lang=_lang_of(item, chosen.config))
        text, spans = record_spans(record, data)
        if not data.deid.enabled:  # prepare would redact nothing: show the text as it would go into training
            spans = []
        converted = convert_records([(item, plan)])[0]
        examples = [made.example().to_json() for made in converted.made]
        if converted.reject is not None:
            rejects.append({"index": index, **converted.reject.to_json()})
        records.append({
            "id": f"{chosen.name}#{index}", "index": index, "location": record.location, "lang": record.lang,
            "text": text, "spans": spans, "examples": examples,
        })
    return {"format": fmt, "page": page, "size": size, "more": more, "records": records, "rejects": rejects}


def find_record(chosen: Chosen, data: DataConfig, index: int) -> dict[str, Any]:
    """One record of the source by its place in the stream, as `read_page` shows it (KeyError: none there)."""
    page = read_page(chosen, data, index, size=1)
    for record in page["records"]:
        if record["index"] == index:
            return record
    raise KeyError(f"{chosen.name}: no record at {index}")
