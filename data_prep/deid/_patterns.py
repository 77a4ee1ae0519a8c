"""The pattern detectors: ID numbers (checksums where they have one), phones, e-mails, dates, addresses,
medical record numbers and the name detectors, each marked with the gate that lets a text skip it (a digit,
a word, a script it needs)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from data_prep.deid._chinese_names import chinese_name_detector
from data_prep.deid._names import name_cue_detector, name_lexicon_detector, name_shape_detector
from data_prep.deid._national_ids import cn_resident_valid, iin_valid, inn_valid, oms_valid, snils_valid
from data_prep.deid._regex_parts import CAP, CJK, led_by, starting_with
from data_prep.deid._spans import Detector, Span

DIGIT_KINDS = frozenset({"iin", "snils", "resident_id", "inn", "oms", "passport", "mrn", "phone", "date"})
"""Kinds whose every pattern needs a digit: a text without one skips their detectors."""

RU_MONTHS = "января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря"
RU_MONTHS_IN = "январе|феврале|марте|апреле|мае|июне|июле|августе|сентябре|октябре|ноябре|декабре"
KK_MONTHS = "қаңтар|ақпан|наурыз|сәуір|мамыр|маусым|шілде|тамыз|қыркүйек|қазан|қараша|желтоқсан"


def _needs_digits(detector: Detector, pattern: str) -> Detector:
    """Mark a detector whose every match contains a digit: text without digits can skip it."""
    probe = re.sub(r"\\d|0-9|\[\d", "", pattern)
    detector.digits_only = probe != pattern and "@" not in pattern  # type: ignore[attr-defined]
    return detector


def _regex_detector(kind: str, pattern: str, flags: int = 0, group: int = 0) -> Detector:
    compiled = re.compile(pattern, flags)

    def detect(text: str) -> list[Span]:
        return [Span(m.start(group), m.end(group), kind) for m in compiled.finditer(text) if m.group(group)]

    return _needs_digits(detect, pattern) if kind in DIGIT_KINDS else detect


RU_MONTH_STEMS = ("январ", "феврал", "март", "апрел", "июн", "июл", "август", "сентябр", "октябр", "ноябр", "декабр")
DAY_LED = r"(?:(?<=0)[1-9]|(?<=[1-9])|(?<=[12])\d|(?<=3)[01])"
r"""After a consumed first digit, the rest of a day of the month: what ``(?:0?[1-9]|[12]\d|3[01])`` matches, tried in
the same order."""
MONTH_LED = r"(?:(?<=0)[1-9]|(?<=[1-9])|(?<=1)[0-2])"
"""After a consumed first digit, the rest of a month: ``(?:0?[1-9]|1[0-2])``, in the same order."""
DATE_PATTERNS: list[tuple[str, tuple[str, ...] | re.Pattern[str] | None]] = [
    (led_by(r"\d", rf"{DAY_LED}\.(?:0?[1-9]|1[0-2])\.(?:19|20)?\d{{2}}(?!\.?\d)", not_after=r"[\d.,]"), None),
    (
        starting_with(r"\d", r"(?<![\d/])(?:0?[1-9]|[12]\d|3[01])/(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\d/])"),
        re.compile(r"/(?:0?[1-9]|1[0-2])/(?:19|20)\d"),
    ),
    (
        starting_with(
            r"\d",
            r"(?<![\d.\-/])(?:19|20)\d{2}[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])(?![\d.\-/]?\d)",
        ),
        re.compile(r"[-./](?<=(?:19|20)\d\d[-./])\d"),
    ),
    (led_by(r"\d", rf"{MONTH_LED}\.(?:19|20)\d{{2}}(?!\.?\d)", not_after=r"[\d.,]"), None),
    (starting_with(r"\d", r"(?:19|20)\d{2}\s*年\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*[日号])?"), ("年",)),
    (starting_with(r"\d", r"(?<!\d)\d{1,2}\s*月\s*\d{1,2}\s*[日号]"), ("月",)),
    (
        starting_with(
            r"\d", rf"(?<!\d)\d{{1,2}}\s+(?i:{RU_MONTHS})(?:\s+(?:19|20)\d{{2}}(?:\s*(?:г\.|года?))?)?(?![\w])"
        ),
        (*RU_MONTH_STEMS, "мая"),
    ),
    (
        starting_with(
            r"\d",
            rf"(?:(?:19|20)\d{{2}}\s*(?:ж\.|жылғы)\s*)?(?<!\d)\d{{1,2}}\s+(?i:{KK_MONTHS})\w*"
            rf"(?:\s+(?:19|20)\d{{2}}(?:\s*ж\.)?)?",
        ),
        tuple(KK_MONTHS.split("|")),
    ),
    (
        starting_with(r"\d", rf"(?:19|20)\d{{2}}\s*(?:ж\.|жылғы)\s*(?i:{KK_MONTHS})\w*"),
        tuple(KK_MONTHS.split("|")),
    ),
    (
        starting_with(
            "[ЯяФфМмАаИиСсОоНнДд]", rf"(?<!\w)(?i:{RU_MONTHS_IN})\s+(?:19|20)\d{{2}}(?:\s*(?:г\.|года))?"
        ),
        (*RU_MONTH_STEMS, "мае"),
    ),
]
"""Date patterns, each with words one of which (lower case) its every match contains, or a pattern (opening with
a literal, so cheap to search) that finds a part of every match; None: neither."""


STREET_LED = (
    r"(?:(?<=[Уу])(?i:л\.|лиц[аеы])|(?<=[Пп])(?i:р-т|роспект\w*|ер\.|ереул\w*)|(?<=[Бб])(?i:-р|ульвар\w*)"
    r"|(?<=[Мм])(?i:кр\.?|икрорайон\w*)|(?<=[Нн])(?i:аб\.|абережн\w*))"
)
r"""After a consumed first letter, the rest of a street word: what ``(?i:ул\.|улиц[аеы]|пр-т|проспект\w*|пер\.|переул\w*
|б-р|бульвар\w*|мкр\.?|микрорайон\w*|наб\.|набережн\w*)`` matches, tried in the same order."""
ADDRESS_PATTERNS = [
    led_by("[УуПпБбМмНн]", STREET_LED, not_after=r"\w")
    + rf"\s*[{CAP}\d][\w\-]*(?:\s+[{CAP}][\w\-]*)?"
    rf"(?:,?\s*(?:д\.|дом)\s*\d+[\w/]*)?(?:,?\s*(?:корп\.|к\.|стр\.)\s*\d+\w*)?(?:,?\s*(?:кв\.|квартира)\s*\d+)?",
    rf"[{CAP}][\w\-]*(?:\s+[\w\-]+)?\s+(?:көшесі|даңғылы|шағынауданы|ықшамауданы|шағын\s+ауданы)\w*"
    rf"(?:,?\s*\d+[\w/\-]*(?:\s*үй)?)?(?:,?\s*\d+[\w\-]*\s*пәтер)?",
    r"(?<=住址|地址|家住)[：:\s]*[^，。；,;\n]{4,40}",
    r"(?<=居住于)[：:\s]*[^，。；,;\n]{4,40}",
]


ADDRESS_WORDS = [
    ("ул", "пр-т", "проспект", "пер", "б-р", "бульвар", "мкр", "микрорайон", "наб"),
    ("көше", "даңғыл", "шағын", "ықшам"),
    ("住址", "地址", "家住"),
    ("居住于",),
]
"""For each address pattern, words one of which (lower case) every match contains."""


def _validated_detector(kind: str, pattern: str, valid: Callable[[str], bool]) -> Detector:
    """Numbers of the right shape that also pass their checksum (a lab number rarely does)."""
    compiled = re.compile(pattern)

    def detect(text: str) -> Iterator[Span]:
        for m in compiled.finditer(text):
            if valid(m.group()):
                yield Span(m.start(), m.end(), kind)

    detect.digits_only = True  # type: ignore[attr-defined]
    return detect


def _long_number_detector() -> Detector:
    """Runs of 12 or more digits that pass a checksum: 12 digits a Kazakh ИИН/БИН or a Russian personal ИНН,
    16 an OMS policy, 17 and a check character a Chinese resident ID. One scan finds the runs; each kind
    then checks its own neighbours (a hyphen ends a Chinese ID but not the others' numbers; a Latin letter
    the other way round)."""
    runs = re.compile(led_by(r"\d", r"\d{11,}(?!\d)", not_after=r"\d"))

    latin_or_digit = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

    def detect(text: str) -> Iterator[Span]:
        for m in runs.finditer(text):
            start, end = m.span()
            before = text[start - 1] if start else ""
            after = text[end] if end < len(text) else ""
            number = m.group()
            if after in "Xx" and after and len(number) == 17:
                end, number = end + 1, number + after
                after = text[end] if end < len(text) else ""
            if len(number) == 18:
                alone = before not in latin_or_digit and after not in latin_or_digit
                if alone and number[6:8] in ("19", "20") and cn_resident_valid(number):
                    yield Span(start, end, "resident_id")
            elif before != "-" and after != "-":
                if len(number) == 12 and iin_valid(number):
                    yield Span(start, end, "iin")
                elif len(number) == 12 and inn_valid(number):
                    yield Span(start, end, "inn")
                elif len(number) == 16 and oms_valid(number):
                    yield Span(start, end, "oms")

    detect.digits_only = True  # type: ignore[attr-defined]
    return detect


MRN_CUES = (
    r"(?:№|N|(?i:номер))\s*(?i:истории\s+болезни|медицинской\s+карты|медкарты|амбулаторной\s+карты|карты)"
    r"|(?:(?i:истори[яи]\s+болезни|медицинск\w+\s+карт\w*|амбулаторн\w+\s+карт\w*|медкарт\w*)|МКАБ|МКСБ|ИБ)\s*(?:№|N)"
    r"|(?i:ауру\s+тарихы\w*\s*№|медициналық\s+карта\w*\s*№)|病历号|住院号|门诊号|病案号|ID号|MRN|Med(?:ical)?\s+record\s+(?:no|number)"
)


_CYRILLIC_CAPITAL = re.compile(f"[{CAP}]")
_CJK_CHAR = re.compile(f"[{CJK}]")


_LONG_DIGIT_RUN = re.compile(r"\d{12}")


def _needs(detector: Detector, script: re.Pattern[str]) -> Detector:
    """Mark a detector that only finds anything in text where ``script`` matches."""
    detector.needs = script  # type: ignore[attr-defined]
    return detector


def _needs_words(detector: Detector, *words: str) -> Detector:
    """Mark a detector whose every match contains one of ``words`` (lower case): other text skips it."""
    detector.words = frozenset(words)  # type: ignore[attr-defined]
    return detector


_DASH_SEVEN = re.compile(r"-\d{7}")
"""Part of every Chinese landline number (010-12345678), cheap to search for."""


def _gated(detector: Detector, gate: tuple[str, ...] | re.Pattern[str] | None) -> Detector:
    if isinstance(gate, re.Pattern):
        return _needs(detector, gate)
    return _needs_words(detector, *gate) if gate else detector


MRN_FIRST = "[№NнНиИмМаАкК病住门IM]"
"""Every first character of a medical record number cue (both cases where the cue ignores case)."""
MRN_WORDS = (
    "истори", "карт", "мкаб", "мксб", "иб", "тарих", "病历号", "住院号", "门诊号", "病案号", "id号", "mrn", "record",
)
"""Words one of which (lower case) every medical record number cue contains."""


def pattern_detectors() -> list[Detector]:
    """Detectors that need no knowledge of the record: numbers, contacts, dates, name shapes.

    One list, long as it is: the order matters (of two detectors that find the same stretch, the earlier one's
    kind is kept when their spans merge), and here it reads in one place.
    """
    return [
        _needs(_long_number_detector(), _LONG_DIGIT_RUN),
        _needs_words(_regex_detector(
            "resident_id", r"身份证(?:号码?)?[：:\s]*([0-9]{15,17}[0-9Xx])(?![0-9A-Za-z])", group=1
        ), "身份证"),
        _needs_words(_regex_detector(
            "iin", starting_with("[ИиЖжБбIi]", r"(?i:ИИН|ЖСН|БИН|IIN)[\s:№]*(\d(?:[\s-]?\d){11})(?!\d)"), group=1
        ),
                     "иин", "жсн", "бин", "iin"),
        _needs_words(
            _regex_detector("inn", starting_with("[Ии]", r"(?i:ИНН)[\s:№]*(\d{10}(?:\d{2})?)(?!\d)"), group=1), "инн"
        ),
        _validated_detector(
            "snils", led_by(r"\d", r"\d{2}-\d{3}-\d{3}[\s-]\d{2}(?![\d\-])", not_after=r"[\d\-]"), snils_valid
        ),
        _needs_words(
            _regex_detector("snils", starting_with("[Сс]", r"(?i:СНИЛС)[\s:№]*(\d(?:[\s-]?\d){10})(?!\d)"), group=1),
            "снилс",
        ),
        _needs_words(_regex_detector(
            "oms",
            starting_with("[ПпОоЕе]", r"(?i:полис\w*(?:\s+ОМС)?|ОМС|ЕНП)[\s:№]*(\d(?:[\s-]?\d){15})(?!\d)"),
            group=1,
        ), "полис", "омс", "енп"),
        _needs_words(_regex_detector(
            "passport",
            starting_with(
                "[Пп]", r"(?i:паспорт\w*(?:\s+РФ)?(?:\s+серии)?)[\s:]*(\d{2}\s?\d{2}\s?(?:№\s?|номер\s)?\d{6})(?!\d)"
            ),
            group=1,
        ), "паспорт"),
        _needs_words(_regex_detector(
            "passport",
            starting_with("[УуЖж]", r"(?i:удостоверени\w+\s+личности|жеке\s+куәлі\w*)[\s:]*(?:№\s?)?(\d{9})(?!\d)"),
            group=1,
        ), "удостоверени", "жеке"),
        _needs_words(_regex_detector("passport", r"护照(?:号码?)?[：:\s]*([A-Z]{1,2}\d{7,8})(?!\d)", group=1), "护照"),
        _needs_words(
            _regex_detector(
                "mrn",
                starting_with(MRN_FIRST, rf"(?:{MRN_CUES})[\s:：.№#]*([A-ZА-Я]{{0,3}}[-/]?\d[\d\-/]{{2,15}})(?![\d])"),
                group=1,
            ),
            *MRN_WORDS,
        ),
        _needs_words(_regex_detector("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"), "@"),
        _regex_detector(  # +7 or 8, then ten digits
            "phone",
            led_by(
                "[+8]",
                r"(?:(?<=\+)\s?7|(?<=8))[\s\-()]{0,3}\d{3}[\s\-()]{0,3}\d{3}[\s\-]{0,2}\d{2}[\s\-]{0,2}\d{2}(?!\d)",
                not_after="[0-9A-Za-z]",
            ),
        ),
        _regex_detector(  # a Chinese mobile, +86 or 86 before it or not
            "phone",
            led_by(
                "[+81]",
                r"(?:(?<=\+)\s?86[\s\-]?1|(?<=8)6[\s\-]?1|(?<=1))[3-9]\d[\s\-]?\d{4}[\s\-]?\d{4}(?!\d)",
                not_after="[0-9A-Za-z+]",
            ),
        ),
        _needs(_regex_detector("phone", starting_with("0", r"(?<![\d.,\-])0\d{2,3}-\d{7,8}(?!\d)")), _DASH_SEVEN),
        _regex_detector("phone", led_by(r"\d", r"\d{2}-\d{2}-\d{2}(?![\d\-])", not_after=r"[\d.,\-/]")),
        *[_gated(_regex_detector("date", p), gate) for p, gate in DATE_PATTERNS],
        *[_needs_words(_regex_detector("address", p), *words) for p, words in zip(ADDRESS_PATTERNS, ADDRESS_WORDS,
                                                                                  strict=True)],
        _needs(name_shape_detector(), _CYRILLIC_CAPITAL),
        _needs(name_cue_detector(), _CYRILLIC_CAPITAL),
        _needs(name_lexicon_detector(), _CYRILLIC_CAPITAL),
        _needs(chinese_name_detector(), _CJK_CHAR),
    ]


PATTERN_DETECTORS = pattern_detectors()
