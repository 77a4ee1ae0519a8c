"""Glossaries: a local clinical term with its definition, English term and/or ICD-10 code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prep.config import SourceConfig
from data_prep.readers.base import declared_lang, read_rows, row_options, text_of
from data_prep.records import Record, Reject

# fmt: off
GLOSSARY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "term": ("term", "термин", "терминология", "атау", "术语", "名词", "local_term"),
    "definition": ("definition", "определение", "описание", "анықтама", "定义", "释义", "解释"),
    "english": ("english", "en", "english_term", "английский", "англ", "ағылшынша", "英文", "英文名"),
    "icd10": ("icd10", "icd-10", "мкб-10", "мкб", "ахж-10", "icd10编码", "编码"),
}
# fmt: on


def term_record(source: str, location: str, obj: dict[str, Any], lang: str | None) -> Record | Reject:
    term = text_of(obj.get("term"))
    if not term:
        return Reject(source, location, "missing_field", "term")
    fields = {k: text_of(obj.get(k)) for k in ("definition", "english", "icd10") if text_of(obj.get(k))}
    if not fields:
        return Reject(source, location, "nothing_to_learn", "definition")
    fields["term"] = term
    return Record(source, location, f"{source}#{term}", declared_lang(obj, lang) or "auto", fields, kind="term")


def read_glossary(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """Stream glossary rows (CSV/TSV/XLSX/Parquet/JSONL/JSON); known headings map without a recipe."""
    options = row_options(source)

    def convert(name: str, location: str, obj: dict[str, Any]) -> Record | Reject:
        return term_record(name, location, obj, lang)

    yield from read_rows(Path(path), convert, synonyms=GLOSSARY_SYNONYMS, **options)
