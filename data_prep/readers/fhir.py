"""FHIR R4: Bundles (collection, transaction, batch, searchset) and bulk-export NDJSON.

Resources are streamed one entry at a time and folded into one clinical record per patient: the
Patient's identifiers (kept for de-identification only), encounters as the stay, conditions as the
diagnosis with its ICD-10 code, observations as labs with units and reference ranges, medications,
procedures, allergies, report conclusions and base64 text attachments split into sections. A
resource type medtune does not use is counted as a reject, never fatal.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson

from data_prep.config import SUPPORTED_LANGS, SourceConfig
from data_prep.readers.rows import MAX_FIELD_CHARS, _Reencoded
from data_prep.readers.sections import section_fields
from data_prep.readers.textio import detect_encoding, has_bad_bytes, open_text
from data_prep.records import Record, Reject

BUNDLE_TYPES = ("collection", "transaction", "batch", "searchset", "document", "message", "history")
PATIENT_LINKS = ("subject", "patient", "beneficiary")
USED_TYPES = frozenset(
    {
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "Procedure",
        "AllergyIntolerance",
        "DiagnosticReport",
        "DocumentReference",
        "Practitioner",
    }
)


@dataclass
class _PatientChart:
    """What has been gathered for one patient so far, with the entry where it started."""

    location: str
    patient: dict[str, str] = field(default_factory=dict)
    patient_id: str | None = None
    lang: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        if value in (None, "", []):
            return
        self.fields.setdefault(name, []).append(value)


def _text_of(concept: Any) -> str:
    """The human text of a CodeableConcept: its text, else the first display."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return concept["text"].strip()
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return coding["display"].strip()
    return ""


def _icd10_of(concept: Any) -> str | None:
    for coding in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
        system = str(coding.get("system", "")).lower() if isinstance(coding, dict) else ""
        if "icd-10" in system or "icd10" in system:
            return str(coding.get("code", "")).strip() or None
    return None


def _human_name(names: Any) -> str:
    for name in names or []:
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str) and name["text"].strip():
            return name["text"].strip()
        parts = [name.get("family") or "", *(name.get("given") or [])]
        text = " ".join(p for p in parts if isinstance(p, str) and p)
        if text:
            return text
    return ""


def _lang_code(value: Any) -> str | None:
    if isinstance(value, str) and value[:2].lower() in SUPPORTED_LANGS:
        return value[:2].lower()
    return None


def _patient_details(resource: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    patient: dict[str, str] = {}
    if name := _human_name(resource.get("name")):
        patient["full_name"] = name
    if isinstance(resource.get("birthDate"), str):
        patient["birth_date"] = resource["birthDate"]
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("value"):
            patient.setdefault("national_id", str(identifier["value"]))
    for telecom in resource.get("telecom") or []:
        if isinstance(telecom, dict) and telecom.get("value"):
            kind = "email" if telecom.get("system") == "email" else "phone"
            patient.setdefault(kind, str(telecom["value"]))
    for address in resource.get("address") or []:
        if isinstance(address, dict):
            text = address.get("text") or ", ".join(
                str(p) for p in [*(address.get("line") or []), address.get("city"), address.get("state")] if p
            )
            if text:
                patient.setdefault("address", text)
    lang = None
    for communication in resource.get("communication") or []:
        if isinstance(communication, dict):
            for coding in (communication.get("language") or {}).get("coding") or []:
                lang = lang or _lang_code(coding.get("code"))
    return patient, lang or _lang_code(resource.get("language"))


def _number(value: Any) -> float | int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _observation(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Lab entries of an Observation (its components too), with unit and reference range."""
    name = _text_of(resource.get("code"))
    labs = []
    for part_name, part in [(name, resource)] + [
        (_text_of(c.get("code")) or name, c) for c in resource.get("component") or [] if isinstance(c, dict)
    ]:
        lab: dict[str, Any] = {"name": part_name}
        if isinstance(part.get("valueQuantity"), dict):
            quantity = part["valueQuantity"]
            if _number(quantity.get("value")) is None:
                continue
            lab["value"] = quantity["value"]
            if quantity.get("unit") or quantity.get("code"):
                lab["unit"] = str(quantity.get("unit") or quantity.get("code"))
        elif isinstance(part.get("valueString"), str):
            lab["value"] = part["valueString"]
        elif isinstance(part.get("valueCodeableConcept"), dict):
            lab["value"] = _text_of(part["valueCodeableConcept"])
        else:
            continue
        for reference in part.get("referenceRange") or resource.get("referenceRange") or []:
            if not isinstance(reference, dict):
                continue
            for side, key in (("low", "ref_low"), ("high", "ref_high")):
                if _number((reference.get(side) or {}).get("value")) is not None:
                    lab[key] = reference[side]["value"]
            break
        if lab["name"] and lab["value"] not in ("", None):
            labs.append(lab)
    return labs


def _medication(resource: dict[str, Any]) -> str:
    name = _text_of(resource.get("medicationCodeableConcept")) or str(
        (resource.get("medicationReference") or {}).get("display") or ""
    )
    dosage = ""
    for item in resource.get("dosageInstruction") or resource.get("dosage") or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            dosage = item["text"]
            break
    return f"{name} {dosage}".strip() if name else ""


def _attachment_texts(resource: dict[str, Any]) -> list[str]:
    """Decoded text/* attachments; raises ValueError for data that is not base64 text."""
    attachments = [c.get("attachment") for c in resource.get("content") or [] if isinstance(c, dict)]
    attachments += list(resource.get("presentedForm") or [])
    texts = []
    for attachment in attachments:
        if not isinstance(attachment, dict) or "data" not in attachment:
            continue
        content_type = str(attachment.get("contentType") or "text/plain")
        if not content_type.startswith("text/"):
            continue
        charset = re.search(r"charset=([\w\-]+)", content_type)
        try:
            raw = base64.b64decode(str(attachment["data"]), validate=True)
            text = raw.decode(charset.group(1) if charset else "utf-8")
        except (binascii.Error, UnicodeDecodeError, LookupError):
            raise ValueError("attachment") from None
        if len(text) > MAX_FIELD_CHARS:
            raise ValueError("attachment_size")
        texts.append(text)
    return texts


def _normal_ref(reference: str) -> str:
    """``http://server/fhir/Patient/7/_history/2`` and ``Patient/7`` name the same patient."""
    m = re.search(r"(Patient/[^/\s]+)(?:/_history/[^/]*)?$", reference)
    return m.group(1) if m else reference.strip()


def _patient_reference(resource: dict[str, Any]) -> str | None:
    for link in PATIENT_LINKS:
        ref = resource.get(link)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].strip():
            return _normal_ref(ref["reference"])
    return None


class _BundleFolder:
    """Folds the entries of one file into patient charts."""

    def __init__(self, source: str, lang: str | None) -> None:
        self.source = source
        self.lang = lang
        self.charts: dict[str, _PatientChart] = {}
        self.aliases: dict[str, str] = {}
        self.practitioners: dict[str, str] = {}

    def _chart(self, key: str, location: str) -> _PatientChart:
        key = self.aliases.get(key, key)
        if key not in self.charts:
            self.charts[key] = _PatientChart(location)
        return self.charts[key]

    def add(self, location: str, entry: Any) -> Reject | None:
        """Fold one bundle entry in; a Reject when it cannot be used."""
        in_bundle = isinstance(entry, dict) and bool(
            {"resource", "request", "fullUrl", "search", "response"} & set(entry)
        )
        resource = entry.get("resource") if in_bundle else entry
        if not isinstance(resource, dict):
            return Reject(self.source, location, "no_resource")
        kind = resource.get("resourceType")
        if not isinstance(kind, str):
            return Reject(self.source, location, "invalid_field", "resourceType")
        if kind not in USED_TYPES:
            return Reject(self.source, location, "unknown_resource_type", kind)
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        full_url = _normal_ref(full_url) if isinstance(full_url, str) else None
        if kind == "Practitioner":
            name = _human_name(resource.get("name"))
            for ref in (f"Practitioner/{resource.get('id')}", full_url):
                if ref and name:
                    self.practitioners[ref] = name
            return None
        if kind == "Patient":
            key = f"Patient/{resource.get('id')}"
            if full_url and full_url != key:
                if full_url in self.charts and key not in self.charts:
                    self.charts[key] = self.charts.pop(full_url)
                self.aliases[full_url] = key
            chart = self._chart(key, location)
            chart.location = location
            chart.patient, chart.lang = _patient_details(resource)
            chart.patient_id = chart.patient.get("national_id") or str(resource.get("id") or key)
            return None
        reference = _patient_reference(resource)
        if reference is None:
            return Reject(self.source, location, "missing_reference", "subject")
        chart = self._chart(reference, location)
        return self._fold(chart, kind, resource, location)

    def _fold(self, chart: _PatientChart, kind: str, resource: dict[str, Any], location: str) -> Reject | None:
        if kind == "Encounter":
            period = resource.get("period") or {}
            for key, side in (("admission_date", "start"), ("discharge_date", "end")):
                if isinstance(period.get(side), str) and not chart.fields.get(key):
                    chart.fields[key] = period[side][:10]
            department = _text_of(resource.get("serviceType") or {}) or next(
                (_text_of(t) for t in resource.get("type") or [] if _text_of(t)), ""
            )
            if department:
                chart.fields.setdefault("department", department)
            for reason in resource.get("reasonCode") or []:
                chart.add("complaints", _text_of(reason))
            for participant in resource.get("participant") or []:
                ref = ((participant or {}).get("individual") or {}).get("reference")
                chart.add("doctor_refs", ref)
        elif kind == "Condition":
            category = " ".join(_text_of(c) for c in resource.get("category") or []).lower()
            text = _text_of(resource.get("code"))
            if "symptom" in category or "complaint" in category:
                chart.add("complaints", text)
            else:
                chart.add("diagnosis", text)
                chart.add("icd10", _icd10_of(resource.get("code")))
        elif kind == "Observation":
            for lab in _observation(resource):
                chart.add("labs", lab)
        elif kind in ("MedicationRequest", "MedicationStatement"):
            chart.add("prescriptions", _medication(resource))
        elif kind == "Procedure":
            chart.add("procedures", _text_of(resource.get("code")))
        elif kind == "AllergyIntolerance":
            chart.add("allergies", _text_of(resource.get("code")))
        elif kind in ("DiagnosticReport", "DocumentReference"):
            if isinstance(resource.get("conclusion"), str):
                chart.add("conclusion", resource["conclusion"])
            try:
                texts = _attachment_texts(resource)
            except ValueError as exc:
                return Reject(self.source, location, f"invalid_{exc.args[0]}", "content.attachment")
            for text in texts:
                if has_bad_bytes(text):
                    return Reject(self.source, location, "bad_encoding", "content.attachment")
                sections, note_lang = section_fields(text)
                for name, body in sections.items():
                    chart.add(name if name != "preamble" else "note", body)
                chart.lang = chart.lang or note_lang
        return None

    def records(self) -> Iterator[Record | Reject]:
        for key, chart in self.charts.items():
            refs = chart.fields.pop("doctor_refs", [])
            fields = _flatten(chart.fields)
            doctors = [self.practitioners[r] for r in refs if r in self.practitioners]
            if doctors:
                fields["doctor"] = doctors[0]
            if chart.patient:
                fields["patient"] = chart.patient
            lang = self.lang if self.lang not in (None, "auto") else chart.lang or self.lang or "auto"
            yield Record(
                source=self.source,
                location=chart.location,
                patient_id=chart.patient_id or key,
                lang=lang,  # type: ignore[arg-type]
                fields=fields,
            )


def _flatten(fields: dict[str, list[Any]]) -> dict[str, Any]:
    """Lists gathered per patient into the record's shapes: joined text, first code, lab and drug lists."""
    out: dict[str, Any] = {}
    for name, values in fields.items():
        if values in (None, []):
            continue
        if name in ("labs", "prescriptions", "procedures", "allergies"):
            out[name] = values
        elif name == "icd10":
            out[name] = values[0]
        elif isinstance(values, list):
            unique = list(dict.fromkeys(v for v in values if isinstance(v, str) and v.strip()))
            if unique:
                out[name] = "; ".join(unique) if name == "diagnosis" else "\n".join(unique)
        else:
            out[name] = values
    return out


def _entries(path: Path, encoding: str) -> Iterator[tuple[str, Any] | Reject]:
    """(location, entry) of a Bundle file, NDJSON of bundles or NDJSON of bare resources."""
    name = path.name
    with open_text(path, encoding) as handle:
        head = handle.read(4096).lstrip("\ufeff \r\n\t")
    if not head:
        return
    first_line, complete = head.split("\n", 1)[0], "\n" in head
    try:
        one_per_line = complete and isinstance(json.loads(first_line), dict)
    except json.JSONDecodeError:
        one_per_line = False
    if one_per_line:
        with open_text(path, encoding) as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    yield Reject(name, f"{name}:{lineno}", "invalid_json")
                    continue
                if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
                    for i, entry in enumerate(obj.get("entry") or []):
                        yield f"{name}:{lineno}/entry[{i}]", entry
                else:
                    yield f"{name}:{lineno}", obj
        return
    index = -1
    with open_text(path, encoding) as handle:
        try:
            kind = None
            for prefix, event, value in ijson.parse(_Reencoded(handle)):
                if prefix == "resourceType" and value != "Bundle":
                    raise _NotABundle(str(value))
                if prefix == "type":
                    kind = value
                if prefix == "entry" and event == "start_array":
                    break
            if kind is not None and kind not in BUNDLE_TYPES:
                yield Reject(name, f"{name}:1", "unsupported_bundle_type", str(kind))
                return
        except _NotABundle as exc:
            yield Reject(name, f"{name}:1", "not_a_bundle", exc.args[0])
            return
        except ijson.JSONError:
            yield Reject(name, f"{name}:1", "invalid_json")
            return
    with open_text(path, encoding) as handle:
        try:
            entries = ijson.items(_Reencoded(handle), "entry.item", use_float=True, multiple_values=True)
            for index, entry in enumerate(entries):
                yield f"{name}:entry[{index}]", entry
        except ijson.IncompleteJSONError:
            yield Reject(name, f"{name}:entry[{index + 1}]", "truncated_json")
        except ijson.JSONError:
            yield Reject(name, f"{name}:entry[{index + 1}]", "invalid_json")


class _NotABundle(Exception):
    pass


def read_fhir(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """One clinical Record per patient of a FHIR file; unusable entries become Rejects at ``entry[i]``.

    Charts are emitted when the file ends (a patient's resources may come in any order), so memory
    grows with the extracted content of one file, not with its raw JSON.
    """
    path = Path(path)
    folder = _BundleFolder(path.name, lang)
    for item in _entries(path, detect_encoding(path, source.encoding if source else "auto")):
        if isinstance(item, Reject):
            yield item
            continue
        location, entry = item
        if (reject := folder.add(location, entry)) is not None:
            yield reject
    yield from folder.records()
