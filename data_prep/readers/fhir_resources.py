"""What medtune reads of single FHIR R4 resources: the text of coded concepts, ICD-10 codes, names, a Patient's
identity, an Observation's lab entries, a medication with its dosage, base64 text attachments, and the patient a
resource belongs to."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from data_prep.config import SUPPORTED_LANGS
from data_prep.readers.rows import MAX_FIELD_CHARS

PATIENT_LINKS = ("subject", "patient", "beneficiary")


SEMANTIC_TAG = re.compile(
    r"\s*\((?:finding|disorder|procedure|situation|qualifier value|observable entity|morphologic abnormality|"
    r"regime/therapy|body structure|substance|product|event|record artifact|physical object)\)\s*$"
)
"""The tag that ends a SNOMED CT fully specified name ("Cough (finding)"): a label for terminologists."""
CODE_SYSTEMS: tuple[tuple[str, str], ...] = (
    ("icd-10", "ICD-10"),
    ("icd10", "ICD-10"),
    ("snomed", "SNOMED CT"),
    ("loinc", "LOINC"),
    ("rxnorm", "RxNorm"),
    ("cvx", "CVX"),
)
"""A coding's system URL (any part) → the code system's name."""


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def system_name(system: Any) -> str | None:
    """The name of a coding's code system (``http://snomed.info/sct`` → ``SNOMED CT``), or None."""
    lowered = str(system or "").lower()
    return next((name for part, name in CODE_SYSTEMS if part in lowered), None)


def text_of(concept: Any) -> str:
    """The human text of a CodeableConcept: its text, else the first display (a SNOMED CT one without its tag)."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return SEMANTIC_TAG.sub("", concept["text"].strip())
    for coding in _codings(concept):
        if isinstance(coding.get("display"), str) and coding["display"].strip():
            return SEMANTIC_TAG.sub("", coding["display"].strip())
    return ""


def code_of(concept: Any, system: str) -> str | None:
    """The code from the named code system (``ICD-10``, ``SNOMED CT``, ``LOINC``) among a concept's codings."""
    for coding in _codings(concept):
        if system_name(coding.get("system")) == system and str(coding.get("code", "")).strip():
            return str(coding["code"]).strip()
    return None


def icd10_of(concept: Any) -> str | None:
    """The ICD-10 code among a CodeableConcept's codings, or None."""
    return code_of(concept, "ICD-10")


def human_name(names: Any) -> str:
    """The first usable HumanName: its text, else family name then given names."""
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


def patient_details(resource: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """A Patient's identity (name, birth date, first ID, phone, e-mail, address) and its language, if one is known."""
    patient: dict[str, str] = {}
    if name := human_name(resource.get("name")):
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


def observation_labs(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Lab entries of an Observation (its components too), with unit and reference range."""
    name = text_of(resource.get("code"))
    labs = []
    for part_name, part in [(name, resource)] + [
        (text_of(c.get("code")) or name, c) for c in resource.get("component") or [] if isinstance(c, dict)
    ]:
        lab: dict[str, Any] = {"name": part_name}
        if loinc := code_of(part.get("code"), "LOINC"):
            lab["loinc"] = loinc
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
            lab["value"] = text_of(part["valueCodeableConcept"])
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


def medication(resource: dict[str, Any]) -> str:
    """A medication request or statement as "name dosage"; '' when it names no drug."""
    name = text_of(resource.get("medicationCodeableConcept")) or str(
        (resource.get("medicationReference") or {}).get("display") or ""
    )
    dosage = ""
    for item in resource.get("dosageInstruction") or resource.get("dosage") or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            dosage = item["text"]
            break
    return f"{name} {dosage}".strip() if name else ""


def attachment_texts(resource: dict[str, Any]) -> list[str]:
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


def normal_ref(reference: str) -> str:
    """``http://server/fhir/Patient/7/_history/2`` and ``Patient/7`` name the same patient."""
    m = re.search(r"(Patient/[^/\s]+)(?:/_history/[^/]*)?$", reference)
    return m.group(1) if m else reference.strip()


def patient_reference(resource: dict[str, Any]) -> str | None:
    """The ``Patient/<id>`` a resource belongs to (subject, patient or beneficiary), or None."""
    for link in PATIENT_LINKS:
        ref = resource.get(link)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].strip():
            return normal_ref(ref["reference"])
    return None
