"""Raw text rows for continued pretraining: every text field of a de-identified record, as one text.

A clinic's most plentiful data is unlabelled notes; the `text` task turns a record of any format into one
`TextExample` without asking anything of it. A clinical record is written as its note (labelled sections, lab
table, prescriptions: the way a clinician reads it, see `render_note`) followed by any free-text section the note
does not name (a prose note read whole, a section without a standard heading); records of other kinds give their
strings in order. Codes, indices and annotation offsets are not language and are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from data_prep.records import Record, TextExample
from data_prep.tasks._examples import example_meta

NOT_TEXT_KEYS = frozenset({
    "patient", "doctor", "record_id", "icd10", "labs", "entities", "entity_types", "answer_index", "qtype", "role",
    "stay_days", "admission_date", "discharge_date", "lang", "options_order",
})
"""Fields that are identifiers, codes, numbers or annotation structure rather than language."""
NOTE_FIELDS = frozenset({
    "department", "complaints", "history", "diagnosis", "prescriptions", "recommendations",
})
"""What `render_note` already writes of a clinical record."""


def _strings(value: Any, key: str = "") -> Iterator[str]:
    if key in NOT_TEXT_KEYS:
        return
    if isinstance(value, str):
        if value.strip():
            yield value.strip()
    elif isinstance(value, dict):
        for child_key, child in value.items():
            yield from _strings(child, child_key)
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child, key)


def record_text(record: Record, note: str = "") -> str:
    """The record's language as one text: its rendered `note` (clinical records) and every other free-text field."""
    parts: list[str] = []
    fields = record.fields
    if record.kind == "clinical":
        if note.strip():
            parts.append(note.strip())
        fields = {key: value for key, value in fields.items() if key not in NOTE_FIELDS}
    parts.extend(_strings(fields))
    return "\n".join(parts)


def raw_text(record: Record, note: str = "") -> list[TextExample]:
    """One text row per record (none when it holds no text)."""
    text = record_text(record, note)
    if not text:
        return []
    return [TextExample(text=text, meta=example_meta(record, "text"))]
