"""A FHIR patient's chart cut into visits: one record per encounter, with the patient's history beside each.

Resources point at their encounter (``encounter``, or ``context`` in older exports); one that does not is placed
in the encounter whose period holds its date, in the only encounter when there is one, and otherwise stays with
the patient: conditions and allergies as history every visit sees, anything else as one more record of the
patient. A chart without encounters is one record, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LIST_FIELDS = ("labs", "prescriptions", "procedures", "allergies", "immunizations", "reports")
DATE_KEYS = (
    "effectiveDateTime",
    "onsetDateTime",
    "performedDateTime",
    "occurrenceDateTime",
    "authoredOn",
    "recordedDate",
    "issued",
    "date",
)
_ENCOUNTER = re.compile(r"(Encounter/[^/\s]+)(?:/_history/[^/]*)?$")


def encounter_key(reference: str) -> str:
    """``http://server/fhir/Encounter/7`` and ``Encounter/7`` name the same encounter (``urn:uuid:`` ones stay)."""
    m = _ENCOUNTER.search(reference)
    return m.group(1) if m else reference.strip()


def encounter_of(resource: dict[str, Any]) -> str | None:
    """The encounter a resource belongs to, as `encounter_key`, or None."""
    for link in ("encounter", "context"):
        ref = resource.get(link)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].strip():
            return encounter_key(ref["reference"])
    return None


def date_of(resource: dict[str, Any]) -> str:
    """The ISO date (``YYYY-MM-DD``) a resource is about, or ''."""
    for key in DATE_KEYS:
        if isinstance(resource.get(key), str):
            return resource[key][:10]
    for key in ("performedPeriod", "effectivePeriod", "period"):
        period = resource.get(key)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return period["start"][:10]
    return ""


@dataclass
class Visit:
    """What has been gathered for one encounter (or for the patient, outside any), with where it starts."""

    location: str
    items: list[tuple[str, Any, str]] = field(default_factory=list)
    """(field, value, date) in the order they came."""
    start: str = ""
    end: str = ""
    is_encounter: bool = False

    def add(self, name: str, value: Any, date: str = "") -> None:
        if value in (None, "", []):
            return
        self.items.append((name, value, date))

    def holds(self, date: str) -> bool:
        return bool(date and self.start and self.start <= date <= (self.end or self.start))


def split_visits(visits: list[Visit], unlinked: Visit) -> tuple[list[Visit], Visit]:
    """Each unlinked item placed in its visit (by date, or the only one); what stays is the patient's."""
    if not visits:
        return [], unlinked
    stays = Visit(unlinked.location)
    for name, value, date in unlinked.items:
        target = next((v for v in visits if v.holds(date)), visits[0] if len(visits) == 1 else None)
        (target or stays).add(name, value, date)
    return visits, stays


def gathered(items: list[tuple[str, Any, str]]) -> dict[str, Any]:
    """Items gathered per field into the record's shapes: joined text, first code, lists."""
    values: dict[str, list[Any]] = {}
    for name, value, _ in items:
        values.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    for name, found in values.items():
        if name in LIST_FIELDS:
            out[name] = found
        elif name in ("icd10", "snomed"):
            out[name] = found[0]
        else:
            unique = list(dict.fromkeys(v for v in found if isinstance(v, str) and v.strip()))
            if unique:
                out[name] = "; ".join(unique) if name == "diagnosis" else "\n".join(unique)
    return out


def visit_fields(visit: Visit, earlier: list[Visit], patient: Visit) -> dict[str, Any]:
    """A visit's record fields, with the patient's history: conditions of earlier visits and of no visit
    (``past_history``), and allergies known anywhere."""
    fields = gathered(visit.items)
    for key, side in (("admission_date", visit.start), ("discharge_date", visit.end)):
        if side:
            fields.setdefault(key, side)
    history = [value for other in (*earlier, patient) for name, value, _ in other.items if name == "diagnosis"]
    own = set(fields.get("diagnosis", "").split("; "))
    past = [d for d in dict.fromkeys(history) if d not in own]
    if past:
        fields["past_history"] = "; ".join(past)
    allergies = [value for name, value, _ in patient.items if name == "allergies"]
    if allergies:
        fields["allergies"] = list(dict.fromkeys([*fields.get("allergies", []), *allergies]))
    return fields
