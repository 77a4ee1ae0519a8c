"""What a reader leaves out on purpose: read, sound, and of no use to any task."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Skip:
    """Something a reader read and leaves out on purpose, not because it is broken (a FHIR Claim, a C-CDA section
    or HL7 segment no task reads): counted in the data card, never written to the rejects."""

    source: str
    location: str
    reason: str
    what: str = ""
    """What was skipped, by kind (``Claim``, ``ROL``); never patient text."""
    part: bool = False
    """A part of a record left unread (an HL7 segment, a C-CDA section), not a record: counted apart from records."""
