"""Readers: stream a clinic export into Records, turning every bad line into a Reject.

A reader knows file formats and nothing about tasks. One malformed line must never stop a run over
thousands of good ones, so problems become rejects that point at ``file:line`` and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from data_prep.config import LANGS
from data_prep.records import Record, Reject

REQUIRED_FIELDS: tuple[str, ...] = ("patient_id", "lang", "diagnosis")
TEXT_FIELDS: tuple[str, ...] = (
    "record_id",
    "department",
    "admission_date",
    "discharge_date",
    "complaints",
    "history",
    "diagnosis",
    "icd10",
    "recommendations",
    "doctor",
)
LAB_NUMBER_FIELDS: tuple[str, ...] = ("ref_low", "ref_high")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_labs(labs: Any) -> str | None:
    """Name of the first malformed lab field, or None when the lab list is usable."""
    if not isinstance(labs, list):
        return "labs"
    for i, lab in enumerate(labs):
        where = f"labs[{i}]"
        if not isinstance(lab, dict):
            return where
        if not isinstance(lab.get("name"), str) or not lab["name"].strip():
            return f"{where}.name"
        value = lab.get("value")
        if not (_is_number(value) or (isinstance(value, str) and value.strip())):
            return f"{where}.value"
        if lab.get("unit") is not None and not isinstance(lab["unit"], str):
            return f"{where}.unit"
        for key in LAB_NUMBER_FIELDS:
            if lab.get(key) is not None and not _is_number(lab[key]):
                return f"{where}.{key}"
    return None


def _problem(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, field) of the first problem that makes the object unusable, else None."""
    for name in REQUIRED_FIELDS:
        if _missing(obj.get(name)):
            return "missing_field", name
    if not isinstance(obj["patient_id"], str | int) or isinstance(obj["patient_id"], bool):
        return "invalid_field", "patient_id"
    if obj["lang"] not in LANGS:
        return "unsupported_lang", "lang"
    for name in TEXT_FIELDS:
        if obj.get(name) is not None and not isinstance(obj[name], str):
            return "invalid_field", name
    prescriptions = obj.get("prescriptions")
    if prescriptions is not None and not (
        isinstance(prescriptions, str)
        or (isinstance(prescriptions, list) and all(isinstance(p, str) for p in prescriptions))
    ):
        return "invalid_field", "prescriptions"
    if obj.get("labs") is not None and (bad := _check_labs(obj["labs"])):
        return "invalid_field", bad
    patient = obj.get("patient")
    if patient is not None:
        if not isinstance(patient, dict):
            return "invalid_field", "patient"
        for key, value in patient.items():
            if value is not None and not isinstance(value, str):
                return "invalid_field", f"patient.{key}"
    return None


def read_clinic_records(path: str | Path, lang: str | None = None) -> Iterator[Record | Reject]:
    """Stream a JSON Lines file of clinic records (see samples/) one line at a time.

    ``lang`` fills in records that do not declare their language. Blank lines are skipped; a UTF-8
    byte-order mark and Windows line ends are tolerated because exports carry them.
    """
    path = Path(path)
    source = path.name
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            location = f"{source}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                yield Reject(source, location, "bad_encoding")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield Reject(source, location, "invalid_json")
                continue
            if not isinstance(obj, dict):
                yield Reject(source, location, "not_an_object")
                continue
            if lang is not None and _missing(obj.get("lang")):
                obj["lang"] = lang
            if problem := _problem(obj):
                reason, field = problem
                yield Reject(source, location, reason, field)
                continue
            fields = {k: v for k, v in obj.items() if k not in ("patient_id", "lang")}
            yield Record(
                source=source,
                location=location,
                patient_id=str(obj["patient_id"]),
                lang=obj["lang"],
                fields=fields,
            )


Reader = Callable[..., Iterator[Record | Reject]]

READERS: dict[str, Reader] = {"clinic_records": read_clinic_records}
"""Format name (``SourceConfig.format``) → reader; new export formats register here."""
