"""FHIR R4: Bundles (collection, transaction, batch, searchset) and bulk-export NDJSON.

Resources are streamed one entry at a time and folded into one clinical record per patient: the
Patient's identifiers (kept for de-identification only), encounters as the stay, conditions as the
diagnosis with its ICD-10 code, observations as labs with units and reference ranges, medications,
procedures, allergies, report conclusions and base64 text attachments split into sections. A
resource type medtune does not use is counted as a reject, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_prep.config import SourceConfig
from data_prep.readers.fhir_entries import entries
from data_prep.readers.fhir_resources import (
    attachment_texts,
    human_name,
    icd10_of,
    medication,
    normal_ref,
    observation_labs,
    patient_details,
    patient_reference,
    text_of,
)
from data_prep.readers.sections import section_fields
from data_prep.readers.textio import detect_encoding, has_bad_bytes
from data_prep.records import Record, Reject

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
        full_url = normal_ref(full_url) if isinstance(full_url, str) else None
        if kind == "Practitioner":
            name = human_name(resource.get("name"))
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
            chart.patient, chart.lang = patient_details(resource)
            chart.patient_id = chart.patient.get("national_id") or str(resource.get("id") or key)
            return None
        reference = patient_reference(resource)
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
            department = text_of(resource.get("serviceType") or {}) or next(
                (text_of(t) for t in resource.get("type") or [] if text_of(t)), ""
            )
            if department:
                chart.fields.setdefault("department", department)
            for reason in resource.get("reasonCode") or []:
                chart.add("complaints", text_of(reason))
            for participant in resource.get("participant") or []:
                ref = ((participant or {}).get("individual") or {}).get("reference")
                chart.add("doctor_refs", ref)
        elif kind == "Condition":
            category = " ".join(text_of(c) for c in resource.get("category") or []).lower()
            text = text_of(resource.get("code"))
            if "symptom" in category or "complaint" in category:
                chart.add("complaints", text)
            else:
                chart.add("diagnosis", text)
                chart.add("icd10", icd10_of(resource.get("code")))
        elif kind == "Observation":
            for lab in observation_labs(resource):
                chart.add("labs", lab)
        elif kind in ("MedicationRequest", "MedicationStatement"):
            chart.add("prescriptions", medication(resource))
        elif kind == "Procedure":
            chart.add("procedures", text_of(resource.get("code")))
        elif kind == "AllergyIntolerance":
            chart.add("allergies", text_of(resource.get("code")))
        elif kind in ("DiagnosticReport", "DocumentReference"):
            if isinstance(resource.get("conclusion"), str):
                chart.add("conclusion", resource["conclusion"])
            try:
                texts = attachment_texts(resource)
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


def read_fhir(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """One clinical Record per patient of a FHIR file; unusable entries become Rejects at ``entry[i]``.

    Charts are emitted when the file ends (a patient's resources may come in any order), so memory
    grows with the extracted content of one file, not with its raw JSON.
    """
    path = Path(path)
    folder = _BundleFolder(path.name, lang)
    for item in entries(path, detect_encoding(path, source.encoding if source else "auto")):
        if isinstance(item, Reject):
            yield item
            continue
        location, entry = item
        if (reject := folder.add(location, entry)) is not None:
            yield reject
    yield from folder.records()
