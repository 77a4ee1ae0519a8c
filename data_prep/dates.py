"""Calendar dates as clinic exports write them.

Dates identify patients, but the time between two of them (the length of stay) is clinically useful
and does not; this module lets de-identification keep the second while removing the first.
"""

from __future__ import annotations

import re
from datetime import date

_DAY_FIRST = re.compile(r"^\s*(\d{1,2})[./-](\d{1,2})[./-](\d{4})\s*$")
_YEAR_FIRST = re.compile(r"^\s*(\d{4})\s*[./\-年]\s*(\d{1,2})\s*[./\-月]\s*(\d{1,2})\s*[日号]?\s*$")


def parse_date(text: object) -> date | None:
    """A date from DD.MM.YYYY, YYYY-MM-DD or 2024年3月12日 forms; None when it is not one."""
    if not isinstance(text, str):
        return None
    if m := _DAY_FIRST.match(text):
        day, month, year = (int(g) for g in m.groups())
    elif m := _YEAR_FIRST.match(text):
        year, month, day = (int(g) for g in m.groups())
    else:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def length_of_stay(admission: object, discharge: object) -> int | None:
    """Days between admission and discharge, or None when either date is unknown or they disagree."""
    start, end = parse_date(admission), parse_date(discharge)
    if start is None or end is None or end < start:
        return None
    return (end - start).days
