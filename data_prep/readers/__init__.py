"""Readers: stream a clinic export into Records, turning every bad record into a Reject.

A reader knows file formats and nothing about tasks. One malformed record must never stop a run
over thousands of good ones, so problems become rejects that point at the file and the place in it
(line, row, bundle entry, message) and the field; only a problem with the whole file (an encoding
that cannot be right, a mapped column that is not there) raises SourceError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from data_prep.config import RECORD_KIND_OF_FORMAT, SourceConfig
from data_prep.readers.brat import read_brat
from data_prep.readers.ccda import read_ccda
from data_prep.readers.chat import CASE_QA_KEYS, read_chat
from data_prep.readers.clinic import REQUIRED_FIELDS, TEXT_FIELDS, is_coding_row, read_clinic_records
from data_prep.readers.dialogue import SPEAKER_LINE, read_dialogues
from data_prep.readers.errors import SourceError
from data_prep.readers.exam import read_exam
from data_prep.readers.fhir import read_fhir
from data_prep.readers.folders import folder_format, read_folder
from data_prep.readers.glossary import read_glossary
from data_prep.readers.hl7v2 import read_hl7v2
from data_prep.readers.notes import read_notes
from data_prep.readers.preference import read_preferences
from data_prep.readers.rows import Header, Row, detect_container, iter_rows
from data_prep.readers.skip import Skip
from data_prep.readers.textio import detect_encoding, open_text
from data_prep.records import Record, Reject

__all__ = [
    "READERS",
    "REQUIRED_FIELDS",
    "TEXT_FIELDS",
    "Header",
    "Row",
    "Skip",
    "SourceError",
    "detect_format",
    "is_coding_row",
    "iter_rows",
    "read_clinic_records",
    "read_source",
]

Reader = Callable[..., Iterator[Record | Reject]]

READERS: dict[str, Reader] = {
    "clinic_records": read_clinic_records,
    "fhir": read_fhir,
    "hl7v2": read_hl7v2,
    "ccda": read_ccda,
    "notes": read_notes,
    "brat": read_brat,
    "dialogue": read_dialogues,
    "exam": read_exam,
    "chat": read_chat,
    "glossary": read_glossary,
    "preference": read_preferences,
}
"""Format name (``SourceConfig.format``) → reader ``(path, lang=None, source=None)``."""


def _format_of_keys(keys: set[str]) -> str | None:
    """The content format a row's keys (after heading synonyms) point at."""
    lowered = {k.lower() for k in keys}
    if {"chosen", "rejected"} <= lowered or {"model", "prediction", "preferred"} <= lowered:
        return "preference"
    if lowered & {"messages", "conversations"} or {"instruction", "output"} <= lowered or lowered & CASE_QA_KEYS:
        return "chat"
    if {"input", "target"} <= lowered:  # instruction rows: questions where options come with them
        return "exam" if lowered & {"answer_choices", "options", "choices"} else "chat"
    if "resourcetype" in lowered:
        return "fhir"
    if lowered & {"turns", "utterances", "dialog"}:
        return "dialogue"
    if "paragraphs" in lowered or lowered & {"question", "вопрос", "сұрақ", "问题", "题目"}:
        return "exam"
    if lowered & {"term", "термин", "术语"}:
        return "glossary"
    from data_prep.readers.mapping import HEADING_SYNONYMS, resolve_mapping

    mapped = resolve_mapping(keys, {}, HEADING_SYNONYMS, "")
    if {"diagnosis", "complaints"} & (set(mapped) | lowered) or "patient_id" in (set(mapped) | lowered):
        return "clinic_records"
    return None


def _first_row_keys(path: Path, source: SourceConfig | None) -> list[str] | None:
    options = (
        {
            "container": source.container,
            "encoding": source.encoding,
            "delimiter": source.delimiter,
            "sheet": source.sheet,
        }
        if source
        else {}
    )
    for item in iter_rows(path, **options):  # type: ignore[arg-type]
        if isinstance(item, Header):
            return list(item.columns)
        if isinstance(item, Row):
            return list(item.data)
    return None


def detect_format(path: str | Path, source: SourceConfig | None = None) -> str:
    """The content format of ``path`` from its name and first bytes (a folder: that of most of its files);
    SourceError when it cannot tell."""
    path = Path(path)
    if path.is_dir():
        if any(p.suffix == ".ann" for p in path.iterdir()):
            return "brat"
        return folder_format(path, lambda file: detect_format(file, source))[0]
    try:
        return _file_format(path, source)
    except SourceError:
        raise
    except Exception as exc:  # whatever the bytes: a message, not a traceback
        raise SourceError(f"{path.name}: cannot tell the format ({type(exc).__name__}); set `format:`") from None


def _file_format(path: Path, source: SourceConfig | None) -> str:
    suffix = path.suffix.lower()
    if suffix == ".ann" or (suffix == ".txt" and path.with_suffix(".ann").is_file()):
        return "brat"
    if suffix in (".hl7", ".er7"):
        return "hl7v2"
    if path.stat().st_size == 0:
        raise SourceError(f"{path.name}: the file is empty")
    with path.open("rb") as handle:
        head_bytes = handle.read(8192)
    if suffix in (".xml", ".cda") or re.match(rb"^(?:\xef\xbb\xbf)?\s*<", head_bytes):
        return "ccda"
    if re.match(rb"^(?:\xef\xbb\xbf)?[\x0b\s]*MSH\|", head_bytes):
        return "hl7v2"
    encoding = "utf-8"
    if suffix in (".json", ".jsonl", ".ndjson", ".txt", ".text", ".csv", ".tsv", ""):
        encoding = detect_encoding(path, source.encoding if source else "auto")
        with open_text(path, encoding) as handle:
            head = handle.read(8192)
        if re.search(r'"resourceType"\s*:\s*"Bundle"', head) or (suffix == ".ndjson" and '"resourceType"' in head):
            return "fhir"
        if suffix in (".txt", ".text", ""):
            lines = [line for line in head.splitlines() if line.strip()]
            if any(re.match(r"^\s*id\s*=", line) for line in lines[:3]):
                return "dialogue"
            speakers = sum(1 for line in lines if SPEAKER_LINE.match(line))
            if lines and speakers >= max(2, len(lines) // 2):
                return "dialogue"
            return "notes"  # with section headings, or prose read as one section
    if suffix in (".json",) and head_bytes.lstrip().startswith(b"{"):
        try:
            with open_text(path, encoding) as handle:
                first = json.loads(handle.readline())
            if isinstance(first, dict) and first.get("resourceType"):
                return "fhir"
        except json.JSONDecodeError:
            pass
    keys = _first_row_keys(path, source)
    found = _format_of_keys(set(keys)) if keys else None
    if found is None:
        columns = keys or []
        raise SourceError(
            f"{path.name}: cannot tell what the {detect_container(path)} rows hold "
            f"(columns: {', '.join(columns) or 'none'}); set `format:` and map the columns to fields"
            + (f". For clinic records, for example (check each column):\n{columns_hint(columns)}" if columns else "")
        )
    return found


HINT_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("patient_id", frozenset({"id", "mrn", "карта", "пациент", "patient", "患者编号", "病历号"})),
    ("icd10", frozenset({"icd", "icd10", "code", "мкб", "код", "ахж", "编码"})),
)
"""Words in a column's name that suggest a field for `columns_hint`."""


def columns_hint(columns: list[str]) -> str:
    """A source's ``format:`` and ``columns:`` to paste into a recipe, each clinic record field given the column
    whose name looks most like it (ids to ``patient_id``, codes to ``icd10``, the rest in order)."""
    fields: dict[str, str] = {}
    rest = list(columns)
    for field, words in HINT_WORDS:
        column = next((c for c in rest if set(re.split(r"[\W_]+", c.lower())) & words), None)
        if column is not None:
            fields[field] = column
            rest.remove(column)
    for field in ("complaints", "diagnosis", "history", "recommendations"):
        if rest:
            fields[field] = rest.pop(0)
    lines = ["    format: clinic_records", "    columns:"]
    lines += [f"      {field}: {json.dumps(column, ensure_ascii=False)}" for field, column in fields.items()]
    return "\n".join(lines)


def read_source(
    path: str | Path, source: SourceConfig, skipped: Callable[[Skip], None] | None = None
) -> tuple[str, Iterator[Record | Reject]]:
    """(format, stream of Records and Rejects) of one configured source, detecting the format if asked; what the
    readers leave out on purpose goes to ``skipped`` as it is met (`Skip`; dropped without it).

    A folder is read file by file (see folders.py; a BRAT folder by its own reader); with ``auto`` each file
    in the format it is in. Whatever the input, a problem reaches the caller as a SourceError or a Reject."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    formats = None
    if path.is_dir() and source.format == "auto" and not any(p.suffix == ".ann" for p in path.iterdir()):
        fmt, formats = folder_format(path, lambda file: detect_format(file, source))
    else:
        fmt = source.format if source.format != "auto" else detect_format(path, source)
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError(f"{path.name}: the file is empty")
    if path.is_dir() and fmt == "brat" and not any(p.suffix == ".txt" for p in path.iterdir()):
        raise SourceError(f"{path}: no BRAT document (.txt with its .ann) in this folder")
    lang = None if source.lang == "auto" else source.lang
    kind = RECORD_KIND_OF_FORMAT[fmt]

    def read_file(file: Path, file_format: str) -> Iterator[Record | Reject | Skip]:
        """One file (or a BRAT folder) through its reader; whatever its bytes, a SourceError naming it."""
        if file.is_file() and file.stat().st_size == 0:
            raise SourceError(f"{file.name}: the file is empty")
        reader = READERS[file_format]
        try:
            yield from reader(file, lang=lang or "auto", source=source)
        except SourceError:
            raise
        except Exception as exc:  # a malformed file: a message naming it
            raise SourceError(f"{file.name}: cannot be read as {file_format} ({type(exc).__name__})") from None

    def stream() -> Iterator[Record | Reject]:
        folder = path.is_dir() and fmt != "brat"
        items = read_folder(path, fmt, read_file, formats) if folder else read_file(path, fmt)
        for item in items:
            if isinstance(item, Skip):
                if skipped is not None:
                    skipped(item)
                continue
            if isinstance(item, Record) and (item.kind != kind or (source.eval_only and not item.eval_only)):
                item = replace(item, kind=kind, eval_only=item.eval_only or source.eval_only)
            yield item

    return fmt, stream()
