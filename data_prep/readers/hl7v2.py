"""HL7 v2 messages (ADT admissions, ORU results) as clinical records, one per message.

Segments should end in CR, but files copied through Windows or Unix tools end them in CRLF or LF;
all three are accepted, and MLLP framing bytes are dropped. A segment that is not ``XYZ|…`` (a field
broken over two lines, a truncated name) rejects its whole message: half a message could pair one
patient's results with another's identity.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hl7

from data_prep.config import SUPPORTED_LANGS, SourceConfig
from data_prep.readers.skip import Skip
from data_prep.readers.textio import detect_encoding, has_bad_bytes, iter_lines
from data_prep.records import Record, Reject

SEGMENT = re.compile(r"^[A-Z][A-Z0-9]{2}(?:\|)")
RANGE = re.compile(r"^\s*(?P<low>-?\d+(?:[.,]\d+)?)?\s*(?:-|–|\.\.)\s*(?P<high>-?\d+(?:[.,]\d+)?)\s*$")
BOUND = re.compile(r"^\s*(?P<op>[<>]=?|≤|≥)\s*(?P<value>-?\d+(?:[.,]\d+)?)\s*$")


def _messages(path: Path, encoding: str) -> Iterator[tuple[int, int, list[tuple[int, str]]]]:
    """(message index, first line, [(line, segment)]) for each MSH-started message in the file."""
    current: list[tuple[int, str]] = []
    index = 0
    for lineno, line in iter_lines(path, encoding):
        line = line.strip("\x0b\x1c\r\n ")
        if not line:
            continue
        if line.startswith("MSH") and current:
            index += 1
            yield index, current[0][0], current
            current = []
        current.append((lineno, line))
    if current:
        index += 1
        yield index, current[0][0], current


def _component(field: Any, *path: int) -> str:
    """Component ``path`` (1-based, like the spec) of a parsed field, or ''."""
    try:
        value = field
        for i in path:
            value = value[0][i - 1] if hasattr(value, "__getitem__") and not isinstance(value, str) else value
        return str(value).strip()
    except (IndexError, TypeError):
        return ""


def _field(message: hl7.Message, segment: str, index: int) -> Any:
    try:
        return message.segment(segment)[index]
    except (KeyError, IndexError):
        return None


def _text(message: hl7.Message, value: Any) -> str:
    return message.unescape(str(value)).strip() if value is not None and str(value) else ""


def _date(value: str) -> str | None:
    m = re.match(r"^(\d{4})(\d{2})(\d{2})", value or "")
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else None


def _number(text: str) -> float | int | None:
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return None
    return int(number) if number.is_integer() and "." not in text and "," not in text else number


def _lab(message: hl7.Message, obx: hl7.Segment) -> dict[str, Any] | None:
    def part(i: int, component: int = 1) -> str:
        components = str(obx[i]).split("^") if len(obx) > i else []
        return message.unescape(components[component - 1]).strip() if len(components) >= component else ""

    name = part(3, 2) or part(3, 1)
    raw_value = _text(message, obx[5]) if len(obx) > 5 else ""
    if not name or not raw_value:
        return None
    value_type = _text(message, obx[2]) if len(obx) > 2 else ""
    lab: dict[str, Any] = {"name": name}
    number = _number(raw_value) if value_type in ("NM", "SN", "") else None
    lab["value"] = number if number is not None else raw_value
    if unit := (part(6, 2) or part(6, 1)):
        lab["unit"] = unit
    reference = _text(message, obx[7]) if len(obx) > 7 else ""
    if m := RANGE.match(reference):
        if m.group("low") is not None:
            lab["ref_low"] = _number(m.group("low"))
        lab["ref_high"] = _number(m.group("high"))
    elif m := BOUND.match(reference):
        lab["ref_high" if m.group("op") in ("<", "<=", "≤") else "ref_low"] = _number(m.group("value"))
    return lab


def message_record(source: str, location: str, segments: list[tuple[int, str]], lang: str | None) -> Record | Reject:
    """One message as a clinical Record: PID identity, PV1 stay, DG1 diagnoses, OBX results, NTE notes."""
    message = _parsed(source, location, segments)
    if isinstance(message, Reject):
        return message
    try:
        pid = message.segment("PID")
    except KeyError:
        return Reject(source, location, "missing_field", "PID")
    patient_id = _component(pid[3], 1) if len(pid) > 3 else ""
    if not patient_id:
        return Reject(source, location, "missing_field", "PID-3")
    fields: dict[str, Any] = {"message_type": _text(message, _field(message, "MSH", 9)).replace("^", " ")}
    if patient := _patient(message, pid):
        fields["patient"] = patient
    record_lang = lang
    if len(pid) > 15 and str(pid[15])[:2].lower() in SUPPORTED_LANGS and lang in (None, "auto"):
        record_lang = str(pid[15])[:2].lower()
    if (pv1 := _segment(message, "PV1")) is not None:
        fields.update(_stay(message, pv1))
    _add_findings(message, fields)
    return Record(source=source, location=location, patient_id=patient_id, lang=record_lang or "auto", fields=fields)


def _parsed(source: str, location: str, segments: list[tuple[int, str]]) -> hl7.Message | Reject:
    """The message parsed, or why it cannot be: a bad or broken segment, no MSH first, not HL7."""
    for k, (lineno, segment) in enumerate(segments, start=1):
        if has_bad_bytes(segment):
            return Reject(source, location, "bad_encoding", f"segment {k} (line {lineno})")
        if not SEGMENT.match(segment):
            return Reject(source, location, "broken_segment", f"segment {k} (line {lineno})")
    if not segments[0][1].startswith("MSH"):
        return Reject(source, location, "missing_msh", "segment 1")
    try:
        return hl7.parse("\r".join(s for _, s in segments))
    except (hl7.ParseException, IndexError, ValueError):
        return Reject(source, location, "invalid_hl7")


def _patient(message: hl7.Message, pid: hl7.Segment) -> dict[str, str]:
    """The patient's identity from PID: name, birth date, address, phone, national ID (those present)."""
    patient: dict[str, str] = {}
    if len(pid) > 5 and (name := " ".join(p for p in str(pid[5]).split("^")[:3] if p)):
        patient["full_name"] = message.unescape(name)
    if len(pid) > 7 and (birth := _date(str(pid[7]))):
        patient["birth_date"] = birth
    if len(pid) > 11 and str(pid[11]):
        patient["address"] = ", ".join(p for p in message.unescape(str(pid[11])).split("^") if p)
    if len(pid) > 13 and str(pid[13]):
        patient["phone"] = str(pid[13]).split("^")[0]
    if len(pid) > 19 and str(pid[19]):
        patient["national_id"] = str(pid[19])
    return patient


def _stay(message: hl7.Message, pv1: hl7.Segment) -> dict[str, str]:
    """The stay from PV1: ward, attending doctor, admission and discharge dates (those present)."""
    stay: dict[str, str] = {}
    if len(pv1) > 3 and (ward := _component(pv1[3], 1)):
        stay["department"] = message.unescape(ward)
    if len(pv1) > 7 and (doctor := " ".join(p for p in str(pv1[7]).split("^")[1:3] if p)):
        stay["doctor"] = message.unescape(doctor)
    if len(pv1) > 44 and (admitted := _date(str(pv1[44]))):
        stay["admission_date"] = admitted
    if len(pv1) > 45 and (discharged := _date(str(pv1[45]))):
        stay["discharge_date"] = discharged
    return stay


SNOMED_SYSTEMS = frozenset({"SCT", "SNM", "SNM3", "SNOMED", "SNOMEDCT"})
"""HL7 table 0396 names of SNOMED CT in a coded element's third component (the rest: ICD-10, as exports mostly are)."""


def _add_findings(message: hl7.Message, fields: dict[str, Any]) -> None:
    """Diagnoses and codes (DG1), results and text reports (OBX), notes (NTE) and allergies (AL1) into ``fields``."""
    diagnoses, codes, labs, notes = [], [], [], []
    for seg in message:
        kind = str(seg[0])
        if kind == "DG1":
            code = str(seg[3]).split("^") if len(seg) > 3 else [""]
            text = (code[1] if len(code) > 1 else "") or (_text(message, seg[4]) if len(seg) > 4 else "")
            if text:
                diagnoses.append(message.unescape(text))
            if code[0] and (len(code) < 3 or code[2].upper() not in SNOMED_SYSTEMS):
                codes.append(code[0])
            elif code[0]:
                fields.setdefault("snomed", code[0])
        elif kind == "OBX":
            value_type = _text(message, seg[2]) if len(seg) > 2 else ""
            if value_type in ("TX", "FT") and len(seg) > 5:
                notes.append(_text(message, seg[5]).replace("\\.br\\", "\n"))
            elif lab := _lab(message, seg):
                labs.append(lab)
        elif kind == "NTE" and len(seg) > 3:
            notes.append(_text(message, seg[3]))
        elif kind == "AL1" and len(seg) > 3:
            fields.setdefault("allergies", []).append(_text(message, seg[3]).split("^")[-1])
    if diagnoses:
        fields["diagnosis"] = "; ".join(diagnoses)
    if codes:
        fields["icd10"] = codes[0]
    if labs:
        fields["labs"] = labs
    if notes := [n for n in notes if n]:
        fields["note"] = "\n".join(notes)


def _segment(message: hl7.Message, name: str) -> hl7.Segment | None:
    try:
        return message.segment(name)
    except KeyError:
        return None


READ_SEGMENTS = frozenset({"MSH", "PID", "PV1", "DG1", "OBX", "NTE", "AL1"})
"""The segments a record is made of; the others (orders, insurance, next of kin …) are counted as left unread."""


def read_hl7v2(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject | Skip]:
    """Stream the messages of an HL7 v2 file; each becomes a Record or a Reject at ``message N``, and each segment
    of a record that no field comes from a Skip (a part)."""
    path = Path(path)
    encoding = detect_encoding(path, source.encoding if source else "auto")
    for index, lineno, segments in _messages(path, encoding):
        location = f"{path.name}:message {index} (line {lineno})"
        made = message_record(path.name, location, segments, lang)
        yield made
        if isinstance(made, Record):
            for line, segment in segments:
                if (name := segment[:3]) not in READ_SEGMENTS:
                    yield Skip(path.name, f"{location}, line {line}", "unread_segment", name, part=True)
