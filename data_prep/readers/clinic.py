"""Clinic records: one visit per row with complaints, history, labs, diagnosis and treatment.

The bundled samples are JSON Lines of this shape; CSV, XLSX and Parquet exports map their columns
onto the same fields (see mapping.py), flat cells being parsed into lists where a field is one.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prep.config import SUPPORTED_LANGS, SourceConfig
from data_prep.readers.base import declared_lang, missing, read_rows, row_options
from data_prep.readers.mapping import HEADING_SYNONYMS
from data_prep.readers.sections import ICD10_CODE
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
NUMERIC_IDENTIFIERS = frozenset({"phone", "national_id", "snils", "iin", "inn", "policy", "passport", "mrn"})
"""Patient fields that spreadsheets store as numbers; they are read back as their digits."""


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int or (kind is not bool and isinstance(value, int | float))


def _lab_problem(lab: Any) -> str | None:
    """The malformed part of one lab entry ('' for the entry itself), or None."""
    if not isinstance(lab, dict):
        return ""
    name = lab.get("name")
    if not isinstance(name, str) or not name.strip():
        return ".name"
    value = lab.get("value")
    if not (_is_number(value) or (isinstance(value, str) and value.strip())):
        return ".value"
    unit = lab.get("unit")
    if unit is not None and not isinstance(unit, str):
        return ".unit"
    for key in LAB_NUMBER_FIELDS:
        number = lab.get(key)
        if number is not None and not _is_number(number):
            return f".{key}"
    return None


def check_labs(labs: Any) -> str | None:
    """Name of the first malformed lab field, or None when the lab list is usable."""
    if not isinstance(labs, list):
        return "labs"
    for i, lab in enumerate(labs):
        if (part := _lab_problem(lab)) is not None:
            return f"labs[{i}]{part}"
    return None


def _flat_cells(obj: dict[str, Any]) -> None:
    """Cells of a flat export into the record's shapes: labs as JSON, prescriptions as a list."""
    labs = obj.get("labs")
    if isinstance(labs, str) and labs.strip().startswith("["):
        with contextlib.suppress(json.JSONDecodeError):
            obj["labs"] = json.loads(labs)
    prescriptions = obj.get("prescriptions")
    if isinstance(prescriptions, str) and re.search(r"[;\n]", prescriptions):
        obj["prescriptions"] = [p.strip() for p in re.split(r"[;\n]", prescriptions) if p.strip()]
    for name in TEXT_FIELDS:
        value = obj.get(name)
        if name != "diagnosis" and _is_number(value):
            obj[name] = str(value)
    if _is_number(obj.get("patient_id")) and isinstance(obj["patient_id"], float) and obj["patient_id"].is_integer():
        obj["patient_id"] = int(obj["patient_id"])


def is_coding_row(obj: dict[str, Any]) -> bool:
    """Complaints with their ICD-10 code and no diagnosis text nor patient (a coding benchmark's rows; each row is
    then its own patient). A row that names its patient but lacks the diagnosis is a broken clinic record."""
    code = obj.get("icd10")
    return (
        not missing(obj.get("complaints"))
        and isinstance(code, str)
        and ICD10_CODE.fullmatch(code.strip()) is not None
        and missing(obj.get("diagnosis"))
        and missing(obj.get("patient_id"))
        and not obj.get("patient")
    )


def problem(obj: dict[str, Any], coding: bool = False) -> tuple[str, str] | None:
    """(reason, field) of the first problem that makes the object unusable (``coding``: a coding row, which needs
    no diagnosis), else None."""
    for name in REQUIRED_FIELDS:
        if missing(obj.get(name)) and not (name == "diagnosis" and coding):
            return "missing_field", name
    if not isinstance(obj["patient_id"], str | int) or isinstance(obj["patient_id"], bool):
        return "invalid_field", "patient_id"
    if obj["lang"] not in (*SUPPORTED_LANGS, "auto"):
        return "unsupported_lang", "lang"
    for name in TEXT_FIELDS:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            return "invalid_field", name
    prescriptions = obj.get("prescriptions")
    if prescriptions is not None and not (
        isinstance(prescriptions, str)
        or (isinstance(prescriptions, list) and all(isinstance(p, str) for p in prescriptions))
    ):
        return "invalid_field", "prescriptions"
    if obj.get("labs") is not None and (bad := check_labs(obj["labs"])):
        return "invalid_field", bad
    patient = obj.get("patient")
    if patient is not None:
        if not isinstance(patient, dict):
            return "invalid_field", "patient"
        for key, value in patient.items():
            if value is not None and not isinstance(value, str):
                if _is_number(value) and key in NUMERIC_IDENTIFIERS:
                    patient[key] = str(int(value)) if float(value).is_integer() else str(value)
                    continue
                return "invalid_field", f"patient.{key}"
    return None


def clinic_record(source: str, location: str, obj: dict[str, Any], lang: str | None) -> Record | Reject:
    """A mapped row as a clinical Record, or the Reject that says which field is wrong."""
    lang_value = declared_lang(obj, None)
    obj["lang"] = lang_value if lang_value is not None else lang
    obj.pop("language", None)
    _flat_cells(obj)
    coding = is_coding_row(obj)
    if coding:
        obj["patient_id"] = f"{source}#{obj.get('record_id') or location.rsplit(':', 1)[-1]}"
    if found := problem(obj, coding):
        reason, field = found
        return Reject(source, location, reason, field)
    fields = {k: v for k, v in obj.items() if k not in ("patient_id", "lang") and v is not None}
    return Record(
        source=source,
        location=location,
        patient_id=str(obj["patient_id"]),
        lang=obj["lang"],
        fields=fields,
    )


def read_clinic_records(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """Stream clinic records (JSON Lines by default; CSV/TSV/XLSX/Parquet/JSON by extension or ``source``).

    ``lang`` fills in records that do not declare their language (``auto``: detected later). Blank
    lines are skipped; a byte-order mark and Windows line ends are tolerated because exports carry them.
    """
    path = Path(path)

    def convert(name: str, location: str, obj: dict[str, Any]) -> Record | Reject:
        return clinic_record(name, location, obj, lang)

    yield from read_rows(path, convert, synonyms=HEADING_SYNONYMS, **row_options(source))
