"""First de-identification pass: replace personal data in free text with typed placeholders.

Two layers find what to replace. The first knows the record's own identifiers (the ``patient``
block and ``doctor``) and finds them wherever and however they are written; it is precise. The
second uses patterns (ID numbers, phones, e-mails, dates, name shapes and cues) to catch people and
numbers the record does not declare, such as relatives. Both report spans; overlapping spans are
merged and each becomes one placeholder, so a name is never half-replaced.

Detectors are plain callables ``text -> spans``: a checksum-aware detector can be passed to
``deidentify`` as ``extra_detectors`` without touching this module. A `Reviewer` (natasha's NER) runs
after them, sees what they found and reads only what is left, for many records in one batch
(`deidentify_many`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from data_prep.config import DeidConfig
from data_prep.dates import length_of_stay
from data_prep.deid._known import known_identifier_detector
from data_prep.deid._ner import natasha_reviewer
from data_prep.deid._scan import PATTERN_LAYER, find_spans
from data_prep.deid._spans import FIELD_SEPARATOR, AnyDetector, Replacer, redact_spans
from data_prep.records import DEFAULT_PATIENT_SALT, Record

STRUCTURED_IDENTIFIERS: tuple[str, ...] = ("patient", "doctor", "record_id")
"""Fields that are identifiers as a whole; they are dropped, not redacted."""

_CONTAINERS = (list, dict)
_TEXT_OR_CONTAINERS = (str, list, dict)


def _strings(value: Any, found: list[str] | None = None) -> list[str]:
    """Every string inside a record's field values, in order (appended to ``found`` when given)."""
    found = [] if found is None else found
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, _CONTAINERS):
        for item in value.values() if isinstance(value, dict) else value:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, _CONTAINERS):
                _strings(item, found)
    return found


def _map_strings(value: Any, parts: Iterator[str]) -> Any:
    """``value`` with its strings replaced, in the order `_strings` gives them, by the next of ``parts``."""
    if isinstance(value, str):
        return next(parts)
    if isinstance(value, list):
        return [_map_strings(item, parts) if isinstance(item, _TEXT_OR_CONTAINERS) else item for item in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, parts) if isinstance(v, _TEXT_OR_CONTAINERS) else v for k, v in value.items()}
    return value


def _free_fields(record: Record) -> dict[str, Any]:
    """The record's fields without its structured identifiers, which are dropped, never redacted."""
    return {k: v for k, v in record.fields.items() if k not in STRUCTURED_IDENTIFIERS}


def replacer(record: Record, config: DeidConfig, salt: str) -> Replacer | None:
    """Surrogates and/or shifted dates for this record's patient, per ``config``; None: placeholders only."""
    if config.replace_with == "placeholder" and not config.shift_dates:
        return None
    from data_prep.deid._surrogates import date_offset, shift_date_text, surrogate

    group = record.group or record.patient_id
    offset = date_offset(salt, group, config.max_shift_days) if config.shift_dates else 0

    def replace_with(kind: str, original: str) -> str | None:
        if kind == "date":
            return shift_date_text(original, offset) if config.shift_dates else None
        if config.replace_with == "surrogate":
            return surrogate(kind, original, record.lang, salt, group)
        return None

    return replace_with


def _joined(strings: list[str]) -> str | None:
    """A record's strings as one text to scan, or None when one holds a NUL (then each is scanned alone)."""
    return None if any("\x00" in text for text in strings) else FIELD_SEPARATOR.join(strings)


def detectors_of(record: Record, config: DeidConfig, extra: Sequence[AnyDetector] = ()) -> list[AnyDetector]:
    """The record's own identifiers, the patterns, ``extra`` and, when asked for, the named-entity model."""
    detectors: list[AnyDetector] = [known_identifier_detector(record), PATTERN_LAYER, *extra]
    if config.ner and record.lang == "ru":
        detectors.append(natasha_reviewer())
    return detectors


def deidentify_many(
    jobs: Sequence[tuple[Record, DeidConfig, str]], extra_detectors: Sequence[AnyDetector] = ()
) -> list[tuple[Record, Counter[str]]]:
    """`deidentify` for many ``(record, config, salt)`` at once: the named-entity model reads all their
    sentences in one batch. Same results as one record at a time."""
    texts: list[tuple[str, list[AnyDetector]]] = []
    plans = []
    for record, config, _ in jobs:
        fields = _free_fields(record)
        strings = _strings(fields)
        joined = _joined(strings)
        # one scan of all the record's text: far fewer detector calls than one per field
        scanned = strings if joined is None else [joined]
        detectors = detectors_of(record, config, extra_detectors)
        plans.append((fields, strings, joined, len(texts)))
        texts.extend((text, detectors) for text in scanned)
    spans = find_spans(texts)
    results = []
    for (record, config, salt), (fields, strings, joined, first) in zip(jobs, plans, strict=True):
        replace_with = replacer(record, config, salt)
        counts: Counter[str] = Counter()
        redacted = []
        for i in range(first, first + (len(strings) if joined is None else 1)):
            text, found = redact_spans(texts[i][0], record.lang, spans[i], replace_with)
            redacted.append(text)
            counts.update(found)
        if joined is not None:
            redacted = redacted[0].split(FIELD_SEPARATOR)
            if len(redacted) != len(strings):
                raise AssertionError("de-identification changed the number of fields of a record")
        new_fields = _map_strings(fields, iter(redacted))
        stay = length_of_stay(fields.get("admission_date"), fields.get("discharge_date"))
        if stay is not None:
            new_fields["stay_days"] = stay
        results.append((replace(record, fields=new_fields), counts))
    return results


def deidentify(
    record: Record,
    extra_detectors: Sequence[AnyDetector] = (),
    config: DeidConfig | None = None,
    salt: str = DEFAULT_PATIENT_SALT,
) -> tuple[Record, Counter[str]]:
    """The record with structured identifiers dropped and personal data in its text replaced.

    Returns the redaction counts per kind of personal data, never the values. Numbers outside
    text (lab values, ranges) are left as they are. The length of stay is kept as ``stay_days``
    because the admission and discharge dates themselves are redacted. ``config`` chooses
    placeholders or per-patient surrogates, date shifting and the named-entity model.
    """
    return deidentify_many([(record, config or DeidConfig(ner=False), salt)], extra_detectors)[0]
