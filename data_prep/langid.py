"""Which language a record's text is in (lingua), to fill in ``lang: auto`` and catch mislabelled files.

Only the four languages medtune works in are considered: that is both faster and more accurate than
asking among all 75, and it tells Kazakh from Russian on short clinical phrases.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

LINGUA_CODES: dict[Language, str] = {
    Language.RUSSIAN: "ru",
    Language.KAZAKH: "kk",
    Language.CHINESE: "zh",
    Language.ENGLISH: "en",
}
SAMPLE_CHARS = 120
"""Enough text to decide: lingua names every bundled sample, PII-test and held-out note right from this much of
it (``tests/test_data_prep_bundled.py``). More only costs time: lingua's cost grows with the text."""
SKIP_KEYS = frozenset({"patient", "doctor", "record_id", "icd10", "labs", "entities", "role", "answer_index"})


@lru_cache(maxsize=1)
def detector() -> LanguageDetector:
    return LanguageDetectorBuilder.from_languages(*LINGUA_CODES).with_preloaded_language_models().build()


def _strings(value: Any, key: str = "") -> Iterator[str]:
    if key in SKIP_KEYS:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def record_text(fields: dict[str, Any], limit: int = SAMPLE_CHARS) -> str:
    """The first ``limit`` characters of a record's free text (identifiers and codes left out)."""
    parts, size = [], 0
    for text in _strings(fields):
        parts.append(text)
        size += len(text)
        if size >= limit:
            break
    return " ".join(parts)[:limit]


def detect_lang(text: str) -> str | None:
    """``ru``/``kk``/``zh``/``en``, or None when the text has too little language to tell."""
    if len(text.strip()) < 3:
        return None
    found = detector().detect_language_of(text)
    return LINGUA_CODES.get(found) if found is not None else None
