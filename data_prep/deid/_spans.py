"""Spans of personal data and what is done with them: the detector types that report spans, merging
overlapping spans, cutting them at the separators between a record's fields, and replacing them with
placeholders or surrogates."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from data_prep.deid._regex_parts import CAP

PLACEHOLDERS: dict[str, dict[str, str]] = {
    "ru": {
        "name": "[ФИО]",
        "iin": "[ИИН]",
        "snils": "[СНИЛС]",
        "resident_id": "[ИИН]",
        "phone": "[ТЕЛЕФОН]",
        "email": "[EMAIL]",
        "date": "[ДАТА]",
        "address": "[АДРЕС]",
        "inn": "[ИНН]",
        "oms": "[ПОЛИС]",
        "passport": "[ПАСПОРТ]",
        "mrn": "[НОМЕР КАРТЫ]",
    },
    "zh": {
        "name": "[姓名]",
        "iin": "[身份证号]",
        "snils": "[身份证号]",
        "resident_id": "[身份证号]",
        "phone": "[电话]",
        "email": "[邮箱]",
        "date": "[日期]",
        "address": "[地址]",
        "inn": "[证件号]",
        "oms": "[医保号]",
        "passport": "[护照号]",
        "mrn": "[病历号]",
    },
    "en": {
        "name": "[NAME]",
        "iin": "[ID]",
        "snils": "[ID]",
        "resident_id": "[ID]",
        "phone": "[PHONE]",
        "email": "[EMAIL]",
        "date": "[DATE]",
        "address": "[ADDRESS]",
        "inn": "[ID]",
        "oms": "[ID]",
        "passport": "[ID]",
        "mrn": "[MRN]",
    },
}
PLACEHOLDERS["kk"] = PLACEHOLDERS["ru"]


class Span(NamedTuple):
    """A stretch ``text[start:end]`` of one kind of personal data (a tuple: a note's scan makes dozens)."""

    start: int
    end: int
    kind: str


Detector = Callable[[str], Iterable[Span]]


@dataclass(frozen=True)
class Reviewer:
    """A second-pass detector: it reads each text together with the spans the first pass found there,
    many texts at once (a model is far cheaper per sentence in one big batch, and can skip what is found)."""

    review: Callable[[Sequence[tuple[str, Sequence[Span]]]], list[list[Span]]]


AnyDetector = Detector | Reviewer


def merge_spans(text: str, spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans become one (kind of the longest); names split only by spaces join up."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end <= span.start:
            continue
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            kind = last.kind if last.end - last.start >= span.end - span.start else span.kind
            merged[-1] = Span(last.start, max(last.end, span.end), kind)
        elif merged and span.kind == merged[-1].kind == "name" and text[merged[-1].end : span.start].isspace():
            merged[-1] = Span(merged[-1].start, span.end, "name")
        else:
            merged.append(span)
    return merged


_SENTENCE_GOES_ON = re.compile(rf"$|\n\x00|\s+[{CAP}A-Z]")


Replacer = Callable[[str, str], "str | None"]
"""(kind, original text) → what to write instead; None falls back to the typed placeholder."""


FIELD_SEPARATOR = "\n\x00\n"
"""Joins a record's strings into one text to scan; no detector matches across it (spans that would are cut)."""


def _cut_at_separators(text: str, span: Span) -> Iterator[Span]:
    """A span that runs over a field boundary becomes one span per field it touches."""
    start = span.start
    while True:
        cut = text.find("\x00", start, span.end)
        if cut < 0:
            break
        piece = text[start:cut].rstrip()
        if piece:
            yield Span(start, start + len(piece), span.kind)
        start = cut + 1
        while start < span.end and text[start].isspace():
            start += 1
    if start < span.end:
        yield Span(start, span.end, span.kind)


def redact_spans(
    text: str, lang: str, spans: Iterable[Span], replace_with: Replacer | None = None
) -> tuple[str, Counter[str]]:
    """Replace ``spans`` (merged first) with placeholders of ``lang`` (or ``replace_with``'s values);
    count replacements by kind."""
    merged = merge_spans(text, spans)
    if "\x00" in text:
        merged = [
            piece
            for span in merged
            for piece in (_cut_at_separators(text, span) if "\x00" in text[span.start : span.end] else (span,))
        ]
    labels = PLACEHOLDERS.get(lang, PLACEHOLDERS["ru"])
    counts: Counter[str] = Counter()
    pieces, pos = [], 0
    for span in merged:
        if text[span.end - 1] == "." and _SENTENCE_GOES_ON.match(text, span.end):
            # The dot of "А.В." or "2024 г." also ends the sentence: leave it in place.
            span = Span(span.start, span.end - 1, span.kind)
        pieces.append(text[pos : span.start])
        value = replace_with(span.kind, text[span.start : span.end]) if replace_with is not None else None
        pieces.append(value if value is not None else labels.get(span.kind, f"[{span.kind.upper()}]"))
        counts[span.kind] += 1
        pos = span.end
    pieces.append(text[pos:])
    return "".join(pieces), counts
