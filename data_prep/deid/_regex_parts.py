"""Pieces the detectors' patterns share: the letters of the scripts they read (Cyrillic with the Kazakh
letters, CJK ideographs) and two ways to open a pattern so that ``re`` can skip the positions where it cannot
start."""

from __future__ import annotations

CAP = "А-ЯЁӘҒҚҢӨҰҮҺІ"
LOW = "а-яёәғқңөұүһі"
CJK = "\u4e00-\u9fff"


def starting_with(first: str, pattern: str) -> str:
    """``pattern`` behind a lookahead for its possible first characters (a superset is fine).

    Python's ``re`` tries a pattern at every position of the text; one that opens with a lookbehind or a
    case-insensitive group costs far more per position than a failing check of one character class. Same
    matches, found faster on text where the class is rare (digits, cue letters). `led_by` does better where
    the pattern can be written to consume its first character.
    """
    return f"(?={first}){pattern}"


def led_by(first: str, rest: str, not_after: str = "") -> str:
    """A pattern that consumes one character of class ``first``, not preceded by one of class ``not_after``,
    then matches ``rest`` (which may look behind at that first character to branch on it).

    A leading character class is the one opening that ``re`` searches for in C, skipping the positions where
    it cannot start; the lookbehind of `starting_with`'s patterns moves after it, widened by one character.
    """
    behind = f"(?<!{not_after}{first})" if not_after else ""
    return f"{first}{behind}{rest}"
