"""Free-text notes (discharge summaries, consultation notes) split into their sections.

A file holds one note, or several separated by a line of ``===``/``---``/``***`` or a form feed; a
folder holds such files. Lines of ``key: value`` before the first section may give the patient id
and name (the name is kept only so de-identification can find it elsewhere in the note). A note
written as prose, without any heading, is still a note: it becomes one record whose only section is
its text (``note``), its language told from the text and de-identified like any other.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

from data_prep.config import SourceConfig
from data_prep.readers.rows import MAX_FIELD_CHARS
from data_prep.readers.sections import section_fields
from data_prep.readers.textio import detect_encoding, has_bad_bytes, iter_lines
from data_prep.records import Record, Reject

SEPARATOR = re.compile(r"^\s*(?:={3,}|-{3,}|\*{3,}|\f)\s*$")
NOTE_SUFFIXES = (".txt", ".text", ".note", ".md")
# fmt: off
HEADER_KEYS: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id", "patient id", "id пациента", "код пациента", "номер карты", "науқас id",
                   "науқастың коды", "患者编号", "病人编号", "病历号", "住院号", "mrn"),
    "full_name": ("фио", "фио пациента", "пациент", "пациентка", "науқас", "аты-жөні", "姓名", "患者姓名",
                  "patient", "name"),
    "birth_date": ("дата рождения", "туған күні", "出生日期", "date of birth", "dob"),
    "doctor": ("врач", "лечащий врач", "дәрігер", "емдеуші дәрігер", "医生", "主治医师", "doctor", "physician"),
    "department": ("отделение", "бөлімше", "科室", "department"),
    "admission_date": ("дата поступления", "түскен күні", "入院日期", "admission date"),
    "discharge_date": ("дата выписки", "шыққан күні", "出院日期", "discharge date"),
}
# fmt: on
_HEADER_LOOKUP = {name: key for key, names in HEADER_KEYS.items() for name in names}
PROSE_FIELD = "note"
"""The field that holds a note without headings, whole."""
_HEADER_LINE = re.compile(r"^\s*(?P<key>[^:：\n]{2,30}?)\s*[:：]\s*(?P<value>.+?)\s*$")


def note_files(path: Path) -> list[Path]:
    """The note files of a path: itself, or the text files of a folder in name order."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in NOTE_SUFFIXES)
    return [path]


def _header(lines: list[str]) -> tuple[dict[str, str], int]:
    """Metadata from the ``key: value`` lines that open a note; returns them and how many lines they took."""
    meta: dict[str, str] = {}
    taken = 0
    for line in lines:
        if not line.strip():
            taken += 1
            continue
        m = _HEADER_LINE.match(line)
        key = _HEADER_LOOKUP.get(m.group("key").strip().lower()) if m else None
        if key is None:
            break
        meta[key] = m.group("value")  # type: ignore[union-attr]
        taken += 1
    return meta, taken


def note_record(source: str, location: str, lines: list[str], lang: str | None, fallback_id: str) -> Record | Reject:
    """One note's lines as a clinical Record (its sections, or its whole text when it has no headings), or a Reject
    when it holds no text besides its header or bytes that did not decode."""
    meta, taken = _header(lines)
    text = "\n".join(lines[taken:]).strip()
    if has_bad_bytes(text):
        return Reject(source, location, "bad_encoding")
    if len(text) > MAX_FIELD_CHARS:
        return Reject(source, location, "field_too_long", "text")
    if not text:
        return Reject(source, location, "empty_note", PROSE_FIELD)
    fields, heading_lang = section_fields(text)
    if not any(k != "preamble" for k in fields):
        fields = {PROSE_FIELD: text}
    patient = {k: meta[k] for k in ("full_name", "birth_date") if k in meta}
    record_fields: dict[str, object] = dict(fields)
    for key in ("doctor", "department", "admission_date", "discharge_date"):
        if key in meta:
            record_fields[key] = meta[key]
    if patient:
        record_fields["patient"] = patient
    record_lang = lang if lang not in (None, "auto") else heading_lang or "auto"
    return Record(
        source=source,
        location=location,
        patient_id=meta.get("patient_id") or fallback_id,
        lang=record_lang,  # type: ignore[arg-type]
        fields=record_fields,
    )


def read_notes(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """Stream the notes of a file or folder; each note is one Record located at its first line."""
    path = Path(path)
    encoding = source.encoding if source else "auto"
    for file in note_files(path):
        yield from _file_notes(file, detect_encoding(file, encoding), lang)


def _file_notes(file: Path, encoding: str, lang: str | None) -> Iterator[Record | Reject]:
    """The notes of one file, split at separator lines; each located at its first non-blank line."""
    name = file.name
    lines: list[str] = []
    start, index = 1, 0
    for lineno, line in itertools.chain(iter_lines(file, encoding), [(-1, "=====")]):
        if SEPARATOR.match(line):
            if any(text.strip() for text in lines):
                index += 1
                yield note_record(name, f"{name}:{start}", lines, lang, f"{name}#{index}")
            lines, start = [], lineno + 1
            continue
        if not lines and not line.strip():
            start = lineno + 1
            continue
        lines.append(line)
