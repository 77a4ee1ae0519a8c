"""The record's own identifiers (the ``patient`` block and ``doctor``) found wherever and however a text
writes them: regexes built from the record's values that tolerate declension, spacing, е/ё spelling, digit
grouping and the usual date forms."""

from __future__ import annotations

import re
from collections.abc import Iterator

from data_prep.dates import parse_date
from data_prep.deid._chinese_names import CHINESE_COMPOUND_SURNAMES, CHINESE_TITLES
from data_prep.deid._names import INITIALS, KZ_CASE, name_stem
from data_prep.deid._patterns import RU_MONTHS
from data_prep.deid._regex_parts import CJK
from data_prep.deid._spans import Detector, Span
from data_prep.records import Record


def _flexible(text: str) -> str:
    """Regex for ``text`` that tolerates different spacing and е/ё spelling."""
    parts = []
    for ch in text:
        if ch.isspace():
            parts.append(r"\s*")
        elif ch in "еёЕЁ":
            parts.append("[её]")
        else:
            parts.append(re.escape(ch))
    return "".join(parts)


def _cyrillic_name_regex(full_name: str) -> re.Pattern[str] | None:
    """One regex matching every part of a name in any case form, with initials next to it."""
    tokens = [t for t in re.findall(r"[^\s.,]+", full_name) if len(t) >= 2 and t[0].isupper()]
    if not tokens:
        return None
    alternatives = []
    for token in tokens:
        stem = name_stem(token)
        suffix = r"\w{0,4}" if len(stem) >= 3 else f"{KZ_CASE}?(?:а|у|ом|е|ым|ой)?"
        alternatives.append(_flexible(stem) + suffix)
    body = "|".join(sorted(alternatives, key=len, reverse=True))
    initials = rf"(?-i:{INITIALS})"
    return re.compile(rf"(?<!\w)(?:{initials}\s?)?(?:{body})(?!\w)(?:\s+{initials})?", re.IGNORECASE)


def _chinese_name_regex(full_name: str) -> re.Pattern[str] | None:
    name = re.sub(r"\s+", "", full_name)
    if len(name) < 2:
        return None
    surname = next((s for s in CHINESE_COMPOUND_SURNAMES if name.startswith(s)), name[0])
    given = name[len(surname) :]
    alternatives = [re.escape(name), rf"{re.escape(surname)}(?:某某|某|(?={CHINESE_TITLES}))"]
    if len(given) >= 2:
        alternatives.append(re.escape(given))
    return re.compile("|".join(alternatives))


def _digits_regex(value: str, prefixes: str = "") -> str:
    """Digits of ``value`` in any grouping: spaces, hyphens or brackets between them."""
    separator = r"[\s\-()]{0,3}"
    body = separator.join(re.escape(c) for c in value if c.isdigit() or c in "Xx")
    return rf"(?<!\d){prefixes}{body}(?!\d)"


def _phone_regex(phone: str) -> str | None:
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 6:
        return None
    if len(digits) == 11 and digits[0] in "78":
        digits = digits[1:]
    elif len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return _digits_regex(digits, prefixes=r"(?:(?:\+\s?7|8|\+?\s?86)[\s\-()]{0,3})?")


def _birth_date_regex(birth_date: str) -> str | None:
    when = parse_date(birth_date)
    if when is None:
        return None
    d, m, y = when.day, when.month, when.year
    month_word = RU_MONTHS.split("|")[m - 1]
    forms = [
        rf"0?{d}[./-]0?{m}[./-]{y}",
        rf"{y}[./-]0?{m}[./-]0?{d}",
        rf"{y}\s*年\s*0?{m}\s*月\s*0?{d}\s*[日号]?",
        rf"0?{d}\s+{month_word}\s+{y}(?:\s*(?:г\.|года))?",
    ]
    return rf"(?<!\d)(?:{'|'.join(forms)})(?!\d)"


def _address_regexes(address: str, lang: str) -> list[str]:
    address = address.strip()
    if not address:
        return []
    patterns = [_flexible(address)]
    if lang == "zh":
        tail = re.split(r"[市区县]", address)[-1]
        if len(tail) >= 4 and tail != address:
            patterns.append(re.escape(tail))
    else:
        for part in re.split(r"[,，;]", address):
            part = part.strip()
            if part != address and re.search(r"[^\W\d_]{4,}", part):
                patterns.append(rf"(?<!\w){_flexible(part)}(?!\w)")
    return patterns


def known_identifier_detector(record: Record) -> Detector:
    """Finds the record's own identifiers (patient block, doctor) in any of their usual written forms."""
    patient = record.fields.get("patient") or {}
    doctor = record.fields.get("doctor")
    found: list[tuple[str, re.Pattern[str]]] = []

    def add(kind: str, pattern: str | None, flags: int = 0) -> None:
        if pattern:
            found.append((kind, re.compile(pattern, flags)))

    for name in (patient.get("full_name"), doctor):
        if not isinstance(name, str) or not name.strip():
            continue
        regex = _chinese_name_regex(name) if re.search(f"[{CJK}]", name) else _cyrillic_name_regex(name)
        if regex is not None:
            found.append(("name", regex))
    national_id = patient.get("national_id")
    if isinstance(national_id, str):
        digits = re.sub(r"[^\dXx]", "", national_id)
        kind = {12: "iin", 11: "snils", 18: "resident_id"}.get(len(digits), "iin")
        if len(digits) >= 6:
            add(kind, _digits_regex(digits), re.IGNORECASE)
    if isinstance(patient.get("phone"), str):
        add("phone", _phone_regex(patient["phone"]))
    if isinstance(patient.get("email"), str) and patient["email"].strip():
        add("email", re.escape(patient["email"].strip()), re.IGNORECASE)
    if isinstance(patient.get("birth_date"), str):
        add("date", _birth_date_regex(patient["birth_date"]), re.IGNORECASE)
    if isinstance(patient.get("address"), str):
        for pattern in _address_regexes(patient["address"], record.lang):
            add("address", pattern)

    def detect(text: str) -> Iterator[Span]:
        for kind, regex in found:
            for m in regex.finditer(text):
                if kind == "name" and m.group()[0].islower():
                    continue
                yield Span(m.start(), m.end(), kind)

    return detect
