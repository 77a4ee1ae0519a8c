"""Column mapping: which column of an export holds which record field.

Recipes may name the columns explicitly (``columns: {complaints: Жалобы}``); headings that clinics
commonly use in Russian, Kazakh, Chinese and English are recognised without that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from data_prep.readers.errors import SourceError

# fmt: off
HEADING_SYNONYMS: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id", "patientid", "id пациента", "код пациента", "науқас id", "науқастың коды",
                   "患者id", "患者编号", "病人id", "病人编号"),
    "record_id": ("record_id", "id записи", "номер истории болезни", "№ истории болезни", "病历号", "住院号"),
    "lang": ("lang", "language", "язык", "тіл", "语言"),
    "department": ("department", "отделение", "бөлімше", "科室"),
    "admission_date": ("admission_date", "дата поступления", "түскен күні", "入院日期", "入院时间"),
    "discharge_date": ("discharge_date", "дата выписки", "шыққан күні", "出院日期", "出院时间"),
    "complaints": ("complaints", "жалобы", "шағымдары", "шағымдар", "主诉", "symptoms", "симптомы", "белгілері",
                   "症状"),
    "history": ("history", "анамнез", "анамнезі", "анамнез заболевания", "现病史", "病史"),
    "diagnosis": ("diagnosis", "диагноз", "диагнозы", "诊断", "出院诊断"),
    "icd10": ("icd10", "icd-10", "icd_10", "icd10_code", "icd_code", "мкб-10", "мкб", "код мкб", "ахж-10", "ахж",
              "icd10编码", "诊断编码", "code", "код"),
    "prescriptions": ("prescriptions", "назначения", "лечение", "тағайындаулар", "емі", "处方", "治疗", "用药"),
    "recommendations": ("recommendations", "рекомендации", "ұсыныстар", "ұсынымдар", "医嘱", "出院医嘱"),
    "doctor": ("doctor", "врач", "лечащий врач", "дәрігер", "医生", "主治医师"),
    "labs": ("labs", "анализы", "талдаулар", "检验结果"),
    "patient.full_name": ("full_name", "фио", "фио пациента", "аты-жөні", "姓名", "患者姓名"),
    "patient.birth_date": ("birth_date", "дата рождения", "туған күні", "出生日期"),
    "patient.national_id": ("national_id", "иин", "снилс", "жсн", "身份证号", "身份证号码"),
    "patient.phone": ("phone", "телефон", "телефоны", "电话", "手机", "联系电话"),
    "patient.address": ("address", "адрес", "мекенжай", "地址", "住址"),
    "patient.email": ("email", "e-mail", "邮箱", "电子邮箱"),
}
# fmt: on


def _key(heading: str) -> str:
    return re.sub(r"\s+", " ", heading.strip().lower())


def resolve_mapping(
    columns: Iterable[str],
    explicit: Mapping[str, str],
    synonyms: Mapping[str, tuple[str, ...]],
    file_name: str,
) -> dict[str, str]:
    """Field → column for this file; an explicitly mapped column that is missing is an error."""
    available = list(columns)
    missing = [(field, column) for field, column in explicit.items() if column not in available]
    if missing:
        wanted = ", ".join(f"{column!r} (for {field})" for field, column in missing)
        raise SourceError(
            f"{file_name}: mapped column(s) {wanted} not in the file; its columns are: {', '.join(available)}"
        )
    mapping = dict(explicit)
    by_key = {_key(c): c for c in available}
    taken = set(mapping.values())
    for field, names in synonyms.items():
        if field in mapping or field in available:
            continue
        for name in names:
            column = by_key.get(_key(name))
            if column is not None and column not in taken:
                mapping[field] = column
                taken.add(column)
                break
    return mapping


def apply_mapping(data: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """The row with mapped columns renamed to their fields; dotted fields (``patient.phone``) nest."""
    used = set(mapping.values())
    out: dict[str, Any] = {k: v for k, v in data.items() if k not in used}
    for field, column in mapping.items():
        if column not in data:
            continue
        value = data[column]
        if "." in field:
            head, tail = field.split(".", 1)
            nested = out.setdefault(head, {})
            if isinstance(nested, dict):
                nested[tail] = value
        else:
            out[field] = value
    return out
