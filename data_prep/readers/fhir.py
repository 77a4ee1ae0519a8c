"""FHIR R4: Bundles (collection, transaction, batch, searchset) and bulk-export NDJSON.

Resources are streamed one entry at a time and folded into one clinical record per encounter (per patient when
there are none; see fhir_visits.py): the Patient's identifiers (kept for de-identification only), the encounter
as the stay, conditions as the diagnosis with its ICD-10 or SNOMED CT code, observations as labs with units,
reference ranges and LOINC codes, medications, procedures, immunizations, allergies, care plans, reports with
their conclusions and base64 text attachments split into sections. Administrative resources (claims, coverage,
organisations …) and types medtune does not read are skipped and counted; only a broken entry is a reject.
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
    code_of,
    human_name,
    icd10_of,
    medication,
    normal_ref,
    observation_labs,
    patient_details,
    patient_reference,
    text_of,
)
from data_prep.readers.fhir_visits import Visit, date_of, encounter_key, encounter_of, split_visits, visit_fields
from data_prep.readers.sections import section_fields
from data_prep.readers.skip import Skip
from data_prep.readers.textio import detect_encoding, has_bad_bytes
from data_prep.records import Record, Reject

CLINICAL_TYPES = frozenset(
    {
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "Procedure",
        "Immunization",
        "AllergyIntolerance",
        "CarePlan",
        "DiagnosticReport",
        "DocumentReference",
    }
)
"""What feeds a record."""
# fmt: off
ADMINISTRATIVE_TYPES = frozenset({
    "Practitioner", "PractitionerRole", "Organization", "Location", "CareTeam", "Provenance", "Claim",
    "ClaimResponse", "ExplanationOfBenefit", "Coverage", "CoverageEligibilityRequest", "CoverageEligibilityResponse",
    "Account", "Invoice", "ChargeItem", "PaymentNotice", "PaymentReconciliation", "Endpoint", "HealthcareService",
    "Schedule", "Slot", "Appointment", "AppointmentResponse", "AuditEvent", "Consent", "Person", "RelatedPerson",
    "Group", "Device", "SupplyDelivery", "SupplyRequest", "Task", "Communication", "CommunicationRequest",
    "EpisodeOfCare", "Medication", "Composition", "List",
})
# fmt: on
"""Billing, people, places and bookkeeping: read for names where a record points at them, never a record."""


@dataclass
class _PatientChart:
    """What has been gathered for one patient so far: the patient, its encounters and what is in none."""

    location: str
    patient: dict[str, str] = field(default_factory=dict)
    patient_id: str | None = None
    lang: str | None = None
    visits: dict[str, Visit] = field(default_factory=dict)
    unlinked: Visit | None = None

    def visit(self, key: str | None, location: str) -> Visit:
        if key is None:
            if self.unlinked is None:
                self.unlinked = Visit(self.location)
            return self.unlinked
        if key not in self.visits:
            self.visits[key] = Visit(location)
        return self.visits[key]


class _BundleFolder:
    """Folds the entries of one file into patient charts."""

    def __init__(self, source: str, lang: str | None) -> None:
        self.source = source
        self.lang = lang
        self.charts: dict[str, _PatientChart] = {}
        self.aliases: dict[str, str] = {}
        self.encounter_aliases: dict[str, str] = {}
        self.practitioners: dict[str, str] = {}

    def _chart(self, key: str, location: str) -> _PatientChart:
        key = self.aliases.get(key, key)
        if key not in self.charts:
            self.charts[key] = _PatientChart(location)
        return self.charts[key]

    def add(self, location: str, entry: Any) -> Reject | Skip | None:
        """Fold one bundle entry in; a Reject when it is broken, a Skip when it is of no use to a record."""
        in_bundle = isinstance(entry, dict) and bool(
            {"resource", "request", "fullUrl", "search", "response"} & set(entry)
        )
        resource = entry.get("resource") if in_bundle else entry
        if not isinstance(resource, dict):
            return Reject(self.source, location, "no_resource")
        kind = resource.get("resourceType")
        if not isinstance(kind, str):
            return Reject(self.source, location, "invalid_field", "resourceType")
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        full_url = full_url.strip() if isinstance(full_url, str) else None
        if kind == "Practitioner":
            name = human_name(resource.get("name"))
            for ref in (f"Practitioner/{resource.get('id')}", full_url):
                if ref and name:
                    self.practitioners[ref] = name
        if kind in ADMINISTRATIVE_TYPES:
            return Skip(self.source, location, "administrative_resource", kind)
        if kind not in CLINICAL_TYPES:
            return Skip(self.source, location, "unread_resource", kind)
        if kind == "Patient":
            self._patient(location, resource, normal_ref(full_url) if full_url else None)
            return None
        reference = patient_reference(resource)
        if reference is None:
            return Reject(self.source, location, "missing_reference", "subject")
        chart = self._chart(reference, location)
        if kind == "Encounter":
            self._encounter(chart, location, resource, full_url)
            return None
        encounter = encounter_of(resource)
        visit = chart.visit(self.encounter_aliases.get(encounter, encounter) if encounter else None, location)
        return self._fold(chart, visit, kind, resource, location)

    def _patient(self, location: str, resource: dict[str, Any], full_url: str | None) -> None:
        key = f"Patient/{resource.get('id')}"
        if full_url and full_url != key:
            if full_url in self.charts and key not in self.charts:
                self.charts[key] = self.charts.pop(full_url)
            self.aliases[full_url] = key
        chart = self._chart(key, location)
        chart.location = location
        if chart.unlinked is not None:
            chart.unlinked.location = location
        chart.patient, chart.lang = patient_details(resource)
        chart.patient_id = chart.patient.get("national_id") or str(resource.get("id") or key)

    def _encounter(self, chart: _PatientChart, location: str, resource: dict[str, Any], full_url: str | None) -> None:
        key = f"Encounter/{resource.get('id')}"
        if full_url and encounter_key(full_url) != key:
            self.encounter_aliases[full_url] = key
            if full_url in chart.visits and key not in chart.visits:
                chart.visits[key] = chart.visits.pop(full_url)
        visit = chart.visit(key, location)
        visit.location, visit.is_encounter = location, True
        period = resource.get("period") or {}
        visit.start = period["start"][:10] if isinstance(period.get("start"), str) else ""
        visit.end = period["end"][:10] if isinstance(period.get("end"), str) else ""
        department = text_of(resource.get("serviceType") or {}) or next(
            (text_of(t) for t in resource.get("type") or [] if text_of(t)), ""
        )
        visit.add("department", department)
        for reason in resource.get("reasonCode") or []:
            visit.add("complaints", text_of(reason))
        for participant in resource.get("participant") or []:
            ref = ((participant or {}).get("individual") or {}).get("reference")
            visit.add("doctor_refs", ref)

    def _fold(
        self, chart: _PatientChart, visit: Visit, kind: str, resource: dict[str, Any], location: str
    ) -> Reject | None:
        date = date_of(resource)
        if kind == "Condition":
            category = " ".join(text_of(c) for c in resource.get("category") or []).lower()
            text = text_of(resource.get("code"))
            if "symptom" in category or "complaint" in category:
                visit.add("complaints", text, date)
            else:
                visit.add("diagnosis", text, date)
                visit.add("icd10", icd10_of(resource.get("code")), date)
                visit.add("snomed", code_of(resource.get("code"), "SNOMED CT"), date)
        elif kind == "Observation":
            for lab in observation_labs(resource):
                visit.add("labs", lab, date)
        elif kind in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
            visit.add("prescriptions", medication(resource), date)
        elif kind == "Procedure":
            visit.add("procedures", text_of(resource.get("code")), date)
        elif kind == "Immunization":
            visit.add("immunizations", text_of(resource.get("vaccineCode")), date)
        elif kind == "AllergyIntolerance":
            visit.add("allergies", text_of(resource.get("code")), date)
        elif kind == "CarePlan":
            activities = [
                text_of((a.get("detail") or {}).get("code"))
                for a in resource.get("activity") or []
                if isinstance(a, dict)
            ]
            plan = "; ".join(a for a in activities if a)
            heading = next((text_of(c) for c in resource.get("category") or [] if text_of(c)), "")
            visit.add("recommendations", f"{heading}: {plan}" if heading and plan else heading or plan, date)
        elif kind in ("DiagnosticReport", "DocumentReference"):
            return self._report(chart, visit, kind, resource, location)
        return None

    def _report(
        self, chart: _PatientChart, visit: Visit, kind: str, resource: dict[str, Any], location: str
    ) -> Reject | None:
        date = date_of(resource)
        if kind == "DiagnosticReport":
            visit.add("reports", text_of(resource.get("code")), date)
            for contained in resource.get("contained") or []:
                if isinstance(contained, dict) and contained.get("resourceType") == "Observation":
                    for lab in observation_labs(contained):
                        visit.add("labs", lab, date)
        if isinstance(resource.get("conclusion"), str):
            visit.add("conclusion", resource["conclusion"], date)
        try:
            texts = attachment_texts(resource)
        except ValueError as exc:
            return Reject(self.source, location, f"invalid_{exc.args[0]}", "content.attachment")
        for text in texts:
            if has_bad_bytes(text):
                return Reject(self.source, location, "bad_encoding", "content.attachment")
            sections, note_lang = section_fields(text)
            for name, body in sections.items():
                visit.add(name if name != "preamble" else "note", body, date)
            chart.lang = chart.lang or note_lang
        return None

    def records(self) -> Iterator[Record]:
        for key, chart in self.charts.items():
            lang = self.lang if self.lang not in (None, "auto") else chart.lang or self.lang or "auto"
            unlinked = chart.unlinked or Visit(chart.location)
            visits, patient_level = split_visits(sorted(chart.visits.values(), key=lambda v: v.start), unlinked)
            parts = [(v, visit_fields(v, visits[:i], patient_level)) for i, v in enumerate(visits)]
            if patient_level.items and (not visits or _has_record_content(patient_level)):
                parts.append((patient_level, visit_fields(patient_level, [], Visit(chart.location))))
            for visit, fields in parts:
                yield self._record(chart, key, visit, fields, lang)

    def _record(self, chart: _PatientChart, key: str, visit: Visit, fields: dict[str, Any], lang: str) -> Record:
        refs = [value for name, value, _ in visit.items if name == "doctor_refs"]
        fields.pop("doctor_refs", None)
        doctors = [self.practitioners[r] for r in refs if r in self.practitioners]
        if doctors:
            fields["doctor"] = doctors[0]
        if chart.patient:
            fields["patient"] = chart.patient
            if (age := age_at(chart.patient.get("birth_date", ""), visit.start)) is not None:
                fields["age"] = age
        return Record(
            source=self.source,
            location=visit.location,
            patient_id=chart.patient_id or key,
            lang=lang,  # type: ignore[arg-type]
            fields=fields,
        )


def age_at(birth_date: str, date: str) -> int | None:
    """Whole years from ``birth_date`` to ``date`` (both ISO), capped at 90 so that an age never singles anyone out;
    None when either is missing or malformed."""
    try:
        born, then = (tuple(int(part) for part in d[:10].split("-")) for d in (birth_date, date))
    except ValueError:
        return None
    if len(born) != 3 or len(then) != 3:
        return None
    years = then[0] - born[0] - ((then[1], then[2]) < (born[1], born[2]))
    return min(years, 90) if years >= 0 else None


def _has_record_content(visit: Visit) -> bool:
    """Whether what stays with the patient (outside every visit) is more than history."""
    return any(name not in ("diagnosis", "icd10", "snomed", "allergies") for name, _, _ in visit.items)


def read_fhir(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject | Skip]:
    """Clinical Records (one per encounter, or per patient) of a FHIR file; broken entries become Rejects at
    ``entry[i]``, entries of no use to a record Skips.

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
        if (outcome := folder.add(location, entry)) is not None:
            yield outcome
    yield from folder.records()
