"""FHIR beyond encounters: one patient's batch bundle in the shape generated test records come in (urn:uuid
references, SNOMED CT coded conditions, vitals without reference ranges, immunizations, care plans, reports and
billing) becomes one record per encounter with the patient's history beside each; billing and bookkeeping are
skipped and counted, never rejected."""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.config import DataConfig, SourceConfig
from data_prep.prepare import prepare
from data_prep.readers import Skip, read_source
from data_prep.records import Record, Reject

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
PATIENT = "urn:uuid:7c1e-patient"


def _coded(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _sct(code: str, display: str) -> dict:
    return _coded(SNOMED, code, display)


def _lnc(code: str, display: str) -> dict:
    return _coded(LOINC, code, display)


def _entry(uuid: str, resource: dict) -> dict:
    return {"fullUrl": f"urn:uuid:{uuid}", "resource": {"id": uuid, **resource}, "request": {"method": "POST"}}


def _encounter(n: int, start: str, end: str, reason: str) -> dict:
    return _entry(
        f"enc-{n}",
        {
            "resourceType": "Encounter",
            "subject": {"reference": PATIENT},
            "period": {"start": f"{start}T09:00:00+00:00", "end": f"{end}T10:00:00+00:00"},
            "type": [_sct("185345009", "Encounter for symptom")],
            "reasonCode": [_sct("10509002", reason)],
            "participant": [{"individual": {"reference": "urn:uuid:doc-1", "display": "Dr. Lee"}}],
        },
    )


def _linked(n: int, uuid: str, resource: dict) -> dict:
    return _entry(
        uuid, {**resource, "subject": {"reference": PATIENT}, "encounter": {"reference": f"urn:uuid:enc-{n}"}}
    )


def bundle() -> dict:
    entries = [
        _entry("7c1e-patient", {"resourceType": "Patient", "name": [{"family": "Kuhn", "given": ["Ada"]}],
                                "birthDate": "1961-04-02"}),
        _entry("org-1", {"resourceType": "Organization", "name": "General Hospital"}),
        _entry("doc-1", {"resourceType": "Practitioner", "name": [{"family": "Lee", "given": ["Sam"]}]}),
        _encounter(1, "2019-02-01", "2019-02-01", "Acute bronchitis (disorder)"),
        _linked(1, "c1", {"resourceType": "Condition", "code": _sct("10509002", "Acute bronchitis (disorder)"),
                          "onsetDateTime": "2019-02-01"}),
        _linked(1, "o1", {"resourceType": "Observation", "code": _lnc("8310-5", "Body temperature"),
                          "valueQuantity": {"value": 38.699, "unit": "Cel"}, "effectiveDateTime": "2019-02-01"}),
        _linked(1, "i1", {"resourceType": "Immunization", "vaccineCode": _coded("http://hl7.org/fhir/sid/cvx", "140",
                                                                                  "Influenza, seasonal, injectable"),
                          "patient": {"reference": PATIENT}, "occurrenceDateTime": "2019-02-01"}),
        _linked(1, "cp1", {"resourceType": "CarePlan", "category": [_sct("53950000", "Respiratory therapy")],
                           "activity": [{"detail": {"code": _sct("304510005", "Recommendation to avoid exercise")}}]}),
        _entry("claim-1", {"resourceType": "Claim", "patient": {"reference": PATIENT}}),
        _entry("eob-1", {"resourceType": "ExplanationOfBenefit", "patient": {"reference": PATIENT}}),
        _encounter(2, "2020-06-10", "2020-06-12", "Cough (finding)"),
        _linked(2, "c2", {"resourceType": "Condition", "code": _sct("49727002", "Cough (finding)")}),
        _linked(2, "o2", {"resourceType": "Observation", "code": _lnc("2708-6", "Oxygen saturation in Arterial blood"),
                          "valueQuantity": {"value": 85.88, "unit": "%"}}),
        _linked(2, "p2", {"resourceType": "Procedure", "code": _sct("399208008", "Plain chest X-ray (procedure)")}),
        _linked(2, "dr2", {"resourceType": "DiagnosticReport", "code": _lnc("51990-0", "Basic metabolic panel"),
                           "contained": [{"resourceType": "Observation", "code": _lnc("2339-0", "Glucose"),
                                          "valueQuantity": {"value": 5.1, "unit": "mmol/L"}}]}),
        _entry("al", {"resourceType": "AllergyIntolerance", "patient": {"reference": PATIENT},
                      "code": _sct("300916003", "Latex allergy")}),
        _entry("hist", {"resourceType": "Condition", "subject": {"reference": PATIENT},
                        "code": _sct("38341003", "Hypertension"), "onsetDateTime": "2010-01-01"}),
        _entry("cov", {"resourceType": "Coverage", "beneficiary": {"reference": PATIENT}}),
        _entry("prov", {"resourceType": "Provenance"}),
        _entry("img", {"resourceType": "ImagingStudy", "subject": {"reference": PATIENT}}),
        _entry("bad", {"resourceType": "Observation", "code": {"text": "Hb"}, "valueQuantity": {"value": 9}}),
    ]  # fmt: skip
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


def test_one_record_per_encounter_with_the_patients_history_and_billing_skipped(tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(bundle()), encoding="utf-8")
    items: list[Record | Reject | Skip] = []
    for item in read_source(path, SourceConfig(path=str(path), format="auto", lang="en"), items.append)[1]:
        items.append(item)
    first, second = [i for i in items if isinstance(i, Record)]
    assert (first.location, second.location) == ("patient.json:entry[3]", "patient.json:entry[10]")
    assert first.patient_id == second.patient_id == "7c1e-patient"
    one, two = first.fields, second.fields
    assert (one["diagnosis"], one["snomed"], "icd10" in one) == ("Acute bronchitis", "10509002", False)
    assert one["labs"] == [{"name": "Body temperature", "loinc": "8310-5", "value": 38.699, "unit": "Cel"}]
    assert one["immunizations"] == ["Influenza, seasonal, injectable"]
    assert one["recommendations"] == "Respiratory therapy: Recommendation to avoid exercise"
    assert one["past_history"] == "Hypertension" and one["allergies"] == ["Latex allergy"]
    assert (one["admission_date"], one["doctor"], one["patient"]["full_name"]) == ("2019-02-01", "Lee Sam", "Kuhn Ada")
    assert (two["diagnosis"], two["complaints"]) == ("Cough", "Cough")
    assert two["past_history"] == "Acute bronchitis; Hypertension"
    assert [lab["name"] for lab in two["labs"]] == ["Oxygen saturation in Arterial blood", "Glucose"]
    assert two["procedures"] == ["Plain chest X-ray"] and two["reports"] == ["Basic metabolic panel"]
    skipped = sorted((s.reason, s.what) for s in items if isinstance(s, Skip))
    assert skipped == [
        ("administrative_resource", "Claim"),
        ("administrative_resource", "Coverage"),
        ("administrative_resource", "ExplanationOfBenefit"),
        ("administrative_resource", "Organization"),
        ("administrative_resource", "Practitioner"),
        ("administrative_resource", "Provenance"),
        ("unread_resource", "ImagingStudy"),
    ]
    assert [(r.location, r.reason) for r in items if isinstance(r, Reject)] == [
        ("patient.json:entry[20]", "missing_reference")
    ]


def test_the_card_counts_skipped_resources_and_reconciles(tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(bundle()), encoding="utf-8")
    card = prepare(DataConfig(sources=[{"path": str(path), "format": "auto", "lang": "en"}]), tmp_path / "out")
    records = card["records"]
    assert (records["in"], records["converted"], records["rejected"], records["skipped"]) == (10, 2, 1, 7)
    assert card["skip_reasons"]["administrative_resource (Claim)"] == 1
    assert card["sources"][0]["skipped"]["unread_resource (ImagingStudy)"] == 1
    assert all(card["invariants"].values())
