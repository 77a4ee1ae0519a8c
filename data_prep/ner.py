"""Person names found by natasha's Russian named-entity model (it also knows many Kazakh names).

The model costs milliseconds per sentence, most sentences of a clinical note hold no name, and
sentence-initial names are already caught by the pattern layer's shapes and lexicon; so it only
reads the sentences with a capitalised word inside them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from data_prep.deid import CAP, LOW, NOT_NAMES, Detector, Span, _is_eponym, _trim_leading_non_names

SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
INNER_CAPITAL = re.compile(rf"(?<=[^\s.!?:;\n(«\"]) +[{CAP}][{LOW}]{{2,}}")


@lru_cache(maxsize=1)
def _tagger() -> Any:
    from natasha import NewsEmbedding, NewsNERTagger

    tagger = NewsNERTagger(NewsEmbedding())
    tagger.infer.encoder.batch_size = 128  # slovnet's default of 8 makes every call pay several model passes
    return tagger


def _sentences_to_read(text: str) -> Iterator[tuple[int, str]]:
    for m in SENTENCE.finditer(text):
        if INNER_CAPITAL.search(m.group()):
            yield m.start(), m.group()


_CACHE: dict[str, list[Span]] = {}
"""Spans of the texts last prefetched: the model is far cheaper per sentence in one big batch."""


def _spans(text: str, offsets: list[int], markups: list[Any]) -> list[Span]:
    found = []
    for offset, markup in zip(offsets, markups, strict=True):
        for span in markup.spans:
            if span.type != "PER":
                continue
            candidate = Span(offset + span.start, offset + span.stop, "name")
            words = text[candidate.start : candidate.end]
            if not words[:1].isupper() or words.lower() in NOT_NAMES or _is_eponym(words):
                continue
            trimmed = _trim_leading_non_names(text, candidate)
            if trimmed is not None:
                found.append(trimmed)
    return found


def prefetch(texts: Iterable[str]) -> None:
    """Tag the sentences of many texts in one batch and remember their names until the next prefetch."""
    _CACHE.clear()
    plan = [(text, list(_sentences_to_read(text))) for text in dict.fromkeys(texts)]
    sentences = [sentence for _, chunks in plan for _, sentence in chunks]
    if not sentences:
        return
    markups = iter(list(_tagger().map(sentences)))
    for text, chunks in plan:
        _CACHE[text] = _spans(text, [o for o, _ in chunks], [next(markups) for _ in chunks])


@lru_cache(maxsize=1)
def natasha_detector() -> Detector:
    """A detector of PER spans; loading the model happens once per process, on first use."""

    def detect(text: str) -> Iterator[Span]:
        if text in _CACHE:
            yield from _CACHE[text]
            return
        chunks = list(_sentences_to_read(text))
        if chunks:
            yield from _spans(text, [o for o, _ in chunks], list(_tagger().map([c for _, c in chunks])))

    return detect
