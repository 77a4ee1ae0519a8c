"""The values that flow between stages: a read record, a reject, a chat or raw text example.

Readers, de-identification and tasks only exchange these, so each stage can be tested and swapped
on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_PATIENT_SALT = "medtune"


@dataclass(frozen=True)
class Record:
    """One clinical record as read, before any task shapes it.

    ``fields`` holds the record's content by name (free text, labs, and, until de-identification
    removes them, the structured identifiers). ``group`` is the pseudonymous patient key that
    examples carry instead of ``patient_id``. ``kind`` says which tasks can use it (clinical,
    annotated, dialogue, question, chat, term); ``eval_only`` keeps its examples out of training.
    """

    source: str
    location: str
    patient_id: str
    lang: str
    fields: dict[str, Any]
    group: str | None = None
    kind: str = "clinical"
    eval_only: bool = False


@dataclass(frozen=True)
class Reject:
    """Why a record or an example was left out; points at it without quoting patient text."""

    source: str
    location: str
    reason: str
    field: str | None = None
    stage: str = "read"
    task: str | None = None

    def to_json(self) -> dict[str, str]:
        row = {"source": self.source, "location": self.location, "reason": self.reason, "stage": self.stage}
        if self.field is not None:
            row["field"] = self.field
        if self.task is not None:
            row["task"] = self.task
        return row


@dataclass
class ChatExample:
    """A training conversation plus the metadata needed to split, trace and report it."""

    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "meta": self.meta}


@dataclass
class TextExample:
    """A raw text row for continued pretraining (``train.objective: completion``): every token is trained on."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "meta": self.meta}


Example = ChatExample | TextExample
"""What a task makes of a record."""


def patient_group(patient_id: str, salt: str = DEFAULT_PATIENT_SALT) -> str:
    """Salted hash of a patient id: stable enough to group visits, useless for looking a patient up."""
    digest = hashlib.sha256(f"{salt}\x00{patient_id}".encode()).hexdigest()
    return digest[:16]


def pseudonymize(record: Record, salt: str = DEFAULT_PATIENT_SALT) -> Record:
    """Attach the salted group key, so that nothing downstream needs the raw patient id."""
    return replace(record, group=patient_group(record.patient_id, salt))
