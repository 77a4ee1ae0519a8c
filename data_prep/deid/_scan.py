"""Running detectors over text: each detector's gate checked in line, the pattern layer that remembers the
spans of short field values, and the reviewers' second pass over many texts at once."""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from data_prep.deid._patterns import PATTERN_DETECTORS
from data_prep.deid._spans import (
    FIELD_SEPARATOR,
    AnyDetector,
    Detector,
    Replacer,
    Reviewer,
    Span,
    redact_spans,
)

_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=1)
def _gate_words() -> tuple[Any, frozenset[str]]:
    """An Aho-Corasick automaton of the pattern detectors' gate words, and those words: one pass over a
    text finds which of them it holds (dozens of substring searches per text cost several times more)."""
    import ahocorasick

    words = frozenset(w for d in PATTERN_DETECTORS for w in getattr(d, "words", ()))
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton, words


class _Facts:
    """What detectors' gates ask of one text, each worked out once however many detectors ask."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lowered = text.lower()
        self.has_digit = _DIGIT.search(text) is not None
        self._searched: dict[re.Pattern[str], bool] = {}
        self._present: set[str] | None = None

    def present(self) -> set[str]:
        """The pattern detectors' gate words that the text (in lower case) holds."""
        if self._present is None:
            automaton, _ = _gate_words()
            self._present = {word for _, word in automaton.iter(self.lowered)}
        return self._present

    def holds_any(self, words: Iterable[str]) -> bool:
        """Whether the text (in lower case) holds one of ``words``."""
        if not self.present().isdisjoint(words):
            return True
        _, known = _gate_words()
        if known.issuperset(words):
            return False
        return any(word in self.lowered for word in words if word not in known)  # words the automaton lacks

    def matches(self, needs: re.Pattern[str]) -> bool:
        if needs not in self._searched:
            self._searched[needs] = needs.search(self.text) is not None
        return self._searched[needs]


GatedDetector = tuple[Detector, bool, "Iterable[str] | None", "re.Pattern[str] | None", bool]


def _with_gates(detectors: Iterable[Detector]) -> list[GatedDetector]:
    """Each detector with its gate: whether it needs a digit, words one of which it needs, a pattern it needs, and
    whether those words go beyond the gate-word automaton's."""
    _, known = _gate_words()
    gated: list[GatedDetector] = []
    for detect in detectors:
        words = getattr(detect, "words", None)
        needs = getattr(detect, "needs", None)
        unknown = words is not None and not known.issuperset(words)
        gated.append((detect, getattr(detect, "digits_only", False), words, needs, unknown))
    return gated


def _scan_gated(gated: Sequence[GatedDetector], text: str) -> list[Span]:
    """What the detectors find in ``text``, skipping those that cannot match: number patterns on text without
    digits, script-specific ones on text without that script, cue-led ones on text without any of their cue
    words. (The gates are checked here in line, not in a call per detector: this runs for every detector on
    every text scanned.)"""
    facts = _Facts(text)
    present: set[str] | None = None
    spans: list[Span] = []
    for detect, digits_only, words, needs, unknown_words in gated:
        if digits_only and not facts.has_digit:
            continue
        if words is not None:
            present = facts.present() if present is None else present
            if present.isdisjoint(words) and not (unknown_words and facts.holds_any(words)):
                continue
        if needs is not None and not facts.matches(needs):
            continue
        spans.extend(detect(text))
    return spans


MEMO_CHARS = 200
"""Field values up to this long are remembered with their spans (see `PatternLayer`)."""
MEMO_SIZE = 1 << 15


class PatternLayer:
    """The pattern detectors over a record's joined text (`FIELD_SEPARATOR` between its fields), field by
    field: a short field value seen before gets the spans remembered for it, the other fields are scanned
    together as one text. Exports repeat lab names, units, drugs, diagnoses and advice thousands of times;
    each is scanned once. No pattern matches across a separator, so the spans are the ones a scan of the
    whole text finds."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self._detectors = list(detectors)
        self._gated: list[GatedDetector] | None = None  # worked out on first use (the automaton is built then)
        self._memo: dict[str, tuple[tuple[int, int, str], ...]] = {}

    def _scan(self, text: str) -> list[Span]:
        if self._gated is None:
            self._gated = _with_gates(self._detectors)
        return _scan_gated(self._gated, text)

    def __call__(self, text: str) -> list[Span]:
        fields = text.split(FIELD_SEPARATOR)
        known = [self._memo.get(value) for value in fields]
        unseen = [i for i, spans in enumerate(known) if spans is None]
        if unseen:
            found = self._scan_fields([fields[i] for i in unseen])
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            for i, spans in zip(unseen, found, strict=True):
                known[i] = spans
                if len(fields[i]) <= MEMO_CHARS:
                    self._memo[fields[i]] = spans
        spans, start = [], 0
        for value, relative in zip(fields, known, strict=True):
            if relative:
                spans.extend(Span(start + begin, start + end, kind) for begin, end, kind in relative)
            start += len(value) + len(FIELD_SEPARATOR)
        return spans

    def _scan_fields(self, fields: list[str]) -> list[tuple[tuple[int, int, str], ...]]:
        """Spans of each field, relative to it, from one scan of the fields joined."""
        offsets = [0]
        for value in fields[:-1]:
            offsets.append(offsets[-1] + len(value) + len(FIELD_SEPARATOR))
        found: list[list[tuple[int, int, str]]] = [[] for _ in fields]
        for span in self._scan(FIELD_SEPARATOR.join(fields)):
            j = bisect.bisect_right(offsets, span.start) - 1
            # (a span over a separator, were there one, would be cut at it)
            end = min(span.end, offsets[j] + len(fields[j]))
            if span.start < end:
                found[j].append((span.start - offsets[j], end - offsets[j], span.kind))
        return [tuple(spans) for spans in found]


PATTERN_LAYER = PatternLayer(PATTERN_DETECTORS)


def find_spans(jobs: Sequence[tuple[str, Sequence[AnyDetector]]]) -> list[list[Span]]:
    """Unmerged spans of each ``(text, detectors)`` job: plain detectors first, then each reviewer once
    over every text that asks for it."""
    found: list[list[Span]] = []
    for text, detectors in jobs:
        found.append(_scan_gated(_with_gates(d for d in detectors if not isinstance(d, Reviewer)), text))
    reviewers = {id(d): d for _, detectors in jobs for d in detectors if isinstance(d, Reviewer)}
    for reviewer in reviewers.values():
        asking = [i for i, (_, detectors) in enumerate(jobs) if any(d is reviewer for d in detectors)]
        more = reviewer.review([(jobs[i][0], found[i]) for i in asking])
        for i, spans in zip(asking, more, strict=True):
            found[i] = found[i] + spans
    return found


def redact_text(
    text: str, lang: str, detectors: Sequence[AnyDetector], replace_with: Replacer | None = None
) -> tuple[str, Counter[str]]:
    """Replace what the detectors find with placeholders of ``lang`` (or ``replace_with``'s values);
    count replacements by kind."""
    return redact_spans(text, lang, find_spans([(text, detectors)])[0], replace_with)
