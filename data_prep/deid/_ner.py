"""Person names in Russian text found by natasha's Russian named-entity model.

Kazakh text is left to the pattern layer (patronymics in -ұлы/-қызы, surname endings, the name
lexicon): on the labelled Kazakh notes the model found no name the patterns missed, and it took
capitalised Kazakh words (Артериялық) for names.

The model costs far more per word than every pattern together, and most of a clinical note needs it
not: it reads only the capitalised words inside sentences (sentence-initial names are the pattern
layer's job) that the first pass has not already explained, e.g. "Обсуждено с Эрастом Фандориным" but
not "Лечащий врач Петров И.И.", each with a few words of context. All such passages of a batch of
texts go to the model at once.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from data_prep.deid._names import NOT_NAMES, is_eponym, trim_leading_non_names
from data_prep.deid._regex_parts import CAP, LOW
from data_prep.deid._spans import Reviewer, Span

SENTENCE_ENDS = ".!?\n"
INNER_CAPITAL = re.compile(rf" (?<=[^\s.!?:;\n(«\"] ) *([{CAP}])[{LOW}]{{2,}}")
"""A capitalised word after a space inside a sentence (opening with the space lets ``re`` skip to spaces)."""
CONTEXT_WORDS = 4
LEFT_CONTEXT = re.compile(rf"(?<!\S)(?:\S+\s+){{1,{CONTEXT_WORDS}}}$")
RIGHT_CONTEXT = re.compile(rf"\S+(?:\s+\S+){{0,{CONTEXT_WORDS}}}")
DOSE_AFTER = re.compile(r"\s+\d+(?:[.,]\d+)?\s*(?:мг|мкг|г|мл|ЕД|ед|МЕ|ME)(?![\w])")
"""A dose right after a capitalised word makes it a drug ("Конкор 5 мг"), never a person: the model is not asked."""
BATCH = 128
"""Passages per model pass; slovnet's default of 8 makes a batch pay many more passes."""
MEMO_SIZE = 1 << 14
"""Passages whose person spans each process remembers (see `_person_spans`)."""

PersonSpans = tuple[tuple[int, int], ...]
_MEMO: dict[str, PersonSpans] = {}


@lru_cache(maxsize=1)
def _tagger() -> Any:
    from natasha import NewsEmbedding, NewsNERTagger

    tagger = NewsNERTagger(NewsEmbedding())
    tagger.batch_size = BATCH
    tagger.infer.encoder.batch_size = BATCH
    return tagger


def load_model() -> None:
    """Load the model now rather than on first use (e.g. once before forking worker processes)."""
    _tagger()


def _covered(starts: list[int], ends: list[int], pos: int) -> bool:
    """Whether ``pos`` lies inside one of the merged, sorted spans given by ``starts``/``ends``."""
    i = bisect.bisect_right(starts, pos) - 1
    return i >= 0 and pos < ends[i]


def _intervals(spans: Sequence[Span]) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for span in sorted(spans, key=lambda s: s.start):
        if starts and span.start <= ends[-1]:
            ends[-1] = max(ends[-1], span.end)
        else:
            starts.append(span.start)
            ends.append(span.end)
    return starts, ends


def passages_to_read(text: str, found: Sequence[Span] = ()) -> Iterator[tuple[int, str, tuple[int, ...]]]:
    """(offset, passage, capitals) around each capitalised word inside a sentence that no span of ``found``
    covers: the word with up to `CONTEXT_WORDS` words either side, within its sentence (the model's own
    view reaches a few words either way; a whole long sentence costs it several times more), and the
    positions of those capitalised words in ``text``."""
    starts, ends = _intervals(found)
    window: list[int] | None = None
    asked: list[int] = []
    for capital in INNER_CAPITAL.finditer(text):
        pos = capital.start(1)
        if _covered(starts, ends, pos) or DOSE_AFTER.match(text, capital.end()):
            continue
        begin = max(text.rfind(mark, 0, pos) for mark in SENTENCE_ENDS) + 1
        finish = min((i for i in (text.find(mark, pos) for mark in SENTENCE_ENDS) if i >= 0), default=len(text) - 1)
        before = LEFT_CONTEXT.search(text, begin, pos)
        after = RIGHT_CONTEXT.match(text, pos, finish + 1)
        low = before.start() if before else pos
        high = after.end() if after else pos
        if window is not None and low <= window[1]:
            window[1] = max(window[1], high)
            asked.append(pos)
            continue
        if window is not None:
            yield window[0], text[window[0] : window[1]], tuple(asked)
        window, asked = [low, high], [pos]
    if window is not None:
        yield window[0], text[window[0] : window[1]], tuple(asked)


def _person_spans(passages: list[str]) -> list[PersonSpans]:
    """(start, stop) of each person the model finds in each passage. Exports repeat template sentences
    ("из препаратов называет Конкор"), so each process remembers the answers for the passages it has read:
    the model tags a passage the same way whatever else is in its batch (a test checks it on the PII test set's
    passages), so a remembered answer is the one a new pass would give."""
    unseen = list(dict.fromkeys(p for p in passages if p not in _MEMO))
    if unseen:
        if len(_MEMO) + len(unseen) > MEMO_SIZE:
            _MEMO.clear()
        for passage, markup in zip(unseen, _tagger().map(unseen), strict=True):
            _MEMO[passage] = tuple((s.start, s.stop) for s in markup.spans if s.type == "PER")
    return [_MEMO[p] for p in passages]


def _spans(text: str, passages: list[tuple[int, str, tuple[int, ...]]], persons: list[PersonSpans]) -> list[Span]:
    """The model's person spans that hold one of the capitalised words it was asked about (a span of
    sentence-initial words only is more often "Артериялық гипертензия" than a name the patterns missed)."""
    found = []
    for (offset, _, asked), spans in zip(passages, persons, strict=True):
        for start, stop in spans:
            candidate = Span(offset + start, offset + stop, "name")
            if not any(candidate.start <= pos < candidate.end for pos in asked):
                continue
            words = text[candidate.start : candidate.end]
            if not words[:1].isupper() or words.lower() in NOT_NAMES or is_eponym(words):
                continue
            trimmed = trim_leading_non_names(text, candidate)
            if trimmed is not None:
                found.append(trimmed)
    return found


def review(items: Sequence[tuple[str, Sequence[Span]]]) -> list[list[Span]]:
    """Names in each text that the first pass (its spans given alongside) did not already find."""
    plan = [(text, list(passages_to_read(text, found))) for text, found in items]
    persons = iter(_person_spans([passage for _, chunks in plan for _, passage, _ in chunks]))
    return [_spans(text, chunks, [next(persons) for _ in chunks]) for text, chunks in plan]


@lru_cache(maxsize=1)
def natasha_reviewer() -> Reviewer:
    """The model as a second-pass detector; loading it happens once per process, on first use."""
    return Reviewer(review)
