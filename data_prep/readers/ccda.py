"""C-CDA documents: the patient header, each section's narrative text and its coded entries.

Sections are recognised by their LOINC code (titles vary by vendor and language); problem entries
give ICD-10 codes, result and vital-sign entries give lab values with units and reference ranges.
Parsing never resolves entities or fetches anything, since a document may come from anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from data_prep.config import SUPPORTED_LANGS, SourceConfig
from data_prep.readers.rows import MAX_FIELD_CHARS
from data_prep.readers.skip import Skip
from data_prep.records import Record, Reject

NS = {"v3": "urn:hl7-org:v3", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
V3 = "{urn:hl7-org:v3}"
ICD10_SYSTEMS = ("2.16.840.1.113883.6.90", "2.16.840.1.113883.6.3")
SNOMED_SYSTEM = "2.16.840.1.113883.6.96"
SECTION_FIELDS: dict[str, str] = {
    "10154-3": "complaints",
    "46239-0": "complaints",
    "29299-5": "complaints",
    "10164-2": "history",
    "11348-0": "past_history",
    "8648-8": "hospital_course",
    "11450-4": "diagnosis",
    "29548-5": "diagnosis",
    "11535-2": "diagnosis",
    "51848-0": "diagnosis",
    "10160-0": "prescriptions",
    "10183-2": "prescriptions",
    "29549-3": "prescriptions",
    "30954-2": "labs_text",
    "8716-3": "vitals_text",
    "18776-5": "recommendations",
    "8653-8": "recommendations",
    "48765-2": "allergies",
    "47519-4": "procedures",
    "29545-1": "exam",
}
LIST_FIELDS = ("prescriptions", "allergies", "procedures")


def _text(element: Any) -> str:
    """Narrative text with one line per paragraph, list item or table row."""
    if element is None:
        return ""
    lines: list[str] = []
    for node in element.iter():
        if not isinstance(node.tag, str):
            continue
        local = etree.QName(node).localname
        if local in ("paragraph", "item", "tr", "content", "br") and lines and lines[-1]:
            lines.append("")
        if node.text and node.text.strip():
            sep = " | " if local == "td" and lines and lines[-1] else " " if lines and lines[-1] else ""
            lines[-1:] = [(lines[-1] if lines else "") + sep + node.text.strip()]
        if node is not element and node.tail and node.tail.strip():
            lines[-1:] = [(lines[-1] if lines else "") + " " + node.tail.strip()]
    return "\n".join(line.strip() for line in lines if line.strip())


def _number(value: str | None) -> float | int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() and "." not in value else number


def _observations(section: Any) -> Iterator[Any]:
    yield from section.iterfind(".//v3:observation", NS)


def _lab(observation: Any) -> dict[str, Any] | None:
    code = observation.find("v3:code", NS)
    value = observation.find("v3:value", NS)
    if code is None or value is None:
        return None
    name = code.get("displayName") or _text(code.find("v3:originalText", NS))
    number = _number(value.get("value"))
    if not name or number is None:
        return None
    lab: dict[str, Any] = {"name": name, "value": number}
    if value.get("unit") and value.get("unit") != "1":
        lab["unit"] = value.get("unit")
    low = observation.find(".//v3:referenceRange//v3:low", NS)
    high = observation.find(".//v3:referenceRange//v3:high", NS)
    if low is not None and _number(low.get("value")) is not None:
        lab["ref_low"] = _number(low.get("value"))
    if high is not None and _number(high.get("value")) is not None:
        lab["ref_high"] = _number(high.get("value"))
    return lab


def _patient(document: Any) -> tuple[dict[str, str], str | None]:
    role = document.find(".//v3:recordTarget/v3:patientRole", NS)
    patient: dict[str, str] = {}
    patient_id = None
    if role is None:
        return patient, None
    for identifier in role.iterfind("v3:id", NS):
        if identifier.get("extension"):
            patient_id = patient_id or identifier.get("extension")
            patient.setdefault("national_id", identifier.get("extension"))
    address = role.find("v3:addr", NS)
    if address is not None and (text := ", ".join(t.strip() for t in address.itertext() if t.strip())):
        patient["address"] = text
    for telecom in role.iterfind("v3:telecom", NS):
        value = telecom.get("value") or ""
        if value.startswith("mailto:"):
            patient.setdefault("email", value[7:])
        elif value:
            patient.setdefault("phone", re.sub(r"^tel:", "", value))
    name = role.find("v3:patient/v3:name", NS)
    if name is not None:
        family = " ".join(t.strip() for t in name.xpath("v3:family/text()", namespaces=NS))
        given = " ".join(t.strip() for t in name.xpath("v3:given/text()", namespaces=NS))
        patient["full_name"] = " ".join(p for p in (family, given) if p) or _text(name)
    birth = role.find("v3:patient/v3:birthTime", NS)
    if birth is not None and (m := re.match(r"(\d{4})(\d{2})(\d{2})", birth.get("value") or "")):
        patient["birth_date"] = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return patient, patient_id


def document_record(
    source: str, location: str, document: Any, lang: str | None, unread: list[str] | None = None
) -> Record | Reject:
    """A ClinicalDocument as a clinical Record, or a Reject when it has no patient or no sections; the sections no
    field comes from (no narrative, no entry read) are appended to ``unread`` by code or title."""
    patient, patient_id = _patient(document)
    if not patient_id:
        return Reject(source, location, "missing_field", "recordTarget/patientRole/id")
    fields: dict[str, Any] = {}
    sections: dict[str, str] = {}
    labs: list[dict[str, Any]] = []
    for section in document.iterfind(".//v3:section", NS):
        code = section.find("v3:code", NS)
        loinc = code.get("code") if code is not None else None
        title = _text(section.find("v3:title", NS))
        text = _text(section.find("v3:text", NS))
        target = SECTION_FIELDS.get(loinc or "")
        read_before = len(labs), "icd10" in fields, "snomed" in fields
        if target in ("labs_text", "vitals_text"):
            labs.extend(lab for obs in _observations(section) if (lab := _lab(obs)))
        if target == "diagnosis":
            for value in section.iterfind(".//v3:observation/v3:value", NS):
                if value.get("codeSystem") in ICD10_SYSTEMS and value.get("code"):
                    fields.setdefault("icd10", value.get("code"))
                    if not text and value.get("displayName"):
                        text = value.get("displayName")
                elif value.get("codeSystem") == SNOMED_SYSTEM and value.get("code"):
                    fields.setdefault("snomed", value.get("code"))
        if not text:
            if unread is not None and read_before == (len(labs), "icd10" in fields, "snomed" in fields):
                unread.append(loinc or title or "section")
            continue
        if target in LIST_FIELDS:
            fields.setdefault(target, []).extend(line for line in text.split("\n") if line.strip())
        elif target:
            fields[target] = f"{fields[target]}\n{text}" if target in fields else text
        else:
            sections[title or loinc or f"section {len(sections) + 1}"] = text
    if not fields and not sections and not labs:
        return Reject(source, location, "no_sections")
    if sum(len(v) for v in fields.values() if isinstance(v, str)) > MAX_FIELD_CHARS:
        return Reject(source, location, "field_too_long", "section")
    if labs:
        fields["labs"] = labs
    if sections:
        fields["other_sections"] = sections
    if patient:
        fields["patient"] = patient
    author = document.find(".//v3:author/v3:assignedAuthor/v3:assignedPerson/v3:name", NS)
    if author is not None and (doctor := " ".join(t.strip() for t in author.itertext() if t.strip())):
        fields["doctor"] = doctor
    language = document.find("v3:languageCode", NS)
    record_lang = lang
    if lang in (None, "auto") and language is not None and (language.get("code") or "")[:2] in SUPPORTED_LANGS:
        record_lang = language.get("code")[:2]
    return Record(source=source, location=location, patient_id=patient_id, lang=record_lang or "auto", fields=fields)


def read_ccda(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject | Skip]:
    """Stream the ClinicalDocuments of an XML file (one or several); broken XML becomes a Reject at its line."""
    path = Path(path)
    name = path.name
    index = 0
    parser = etree.iterparse(
        str(path),
        events=("end",),
        tag=f"{V3}ClinicalDocument",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        for _, document in parser:
            index += 1
            location = f"{name}:document {index} (line {document.sourceline})"
            unread: list[str] = []
            made = document_record(name, location, document, lang, unread)
            yield made
            if isinstance(made, Record):
                yield from (Skip(name, location, "unread_section", code, part=True) for code in unread)
            document.clear()
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else 0
        yield Reject(name, f"{name}:document {index + 1} (line {line})", "invalid_xml")
