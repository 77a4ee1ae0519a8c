"""Russian and Kazakh person names in free text, found by shape (initials, patronymics, surname endings), by
a person word before them (врач, әйелі) and by the given-names lexicon, with the words that are never names
(eponyms of diseases and tests, "Пациентка")."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache

from data_prep.deid._lexicon import GIVEN_NAMES
from data_prep.deid._regex_parts import CAP, LOW, led_by
from data_prep.deid._spans import Detector, Span

CAPWORD = rf"[{CAP}][{LOW}]+(?:-[{CAP}][{LOW}]+)?"
INITIALS = rf"[{CAP}]\.(?:\s?[{CAP}]\.)?"
TWO_INITIALS = rf"[{CAP}]\.\s?[{CAP}]\."
KZ_CASE = r"(?:ке|ка|қа|ға|ге|тің|тың|нің|ның|дің|дың|пен|мен|бен|ты|ті|ны|ні|та|те|да|де|тан|тен|дан|ден|нан|нен)"
SURNAME_WORD = (
    rf"[{CAP}][{LOW}]+?(?:(?:ов|ев|ёв|ин|ын)(?:а|у|ым|ом|е|ой|ою)?|(?:ск|цк)(?:ий|ая|ого|ому|им|ом|ой|ую))"
    rf"{KZ_CASE}?(?![{LOW}])"
)
SURNAME_OV_WORD = (
    rf"[{CAP}][{LOW}]+?(?:(?:ов|ев|ёв)(?:а|у|ым|ом|е|ой|ою)?|(?:ск|цк)(?:ий|ая|ого|ому|им|ом|ой|ую))"
    rf"{KZ_CASE}?(?![{LOW}])"
)
PATRONYMIC_WORD = (
    rf"(?:[{CAP}][{LOW}]+?(?:ич(?:а|у|ем|е)?|(?:вн|ичн)(?:а|ы|е|у|ой|ою))"
    rf"|[{CAP}][{LOW}]+?(?:ұлы|қызы|улы|кызы){KZ_CASE}?)(?![{LOW}])"
)
# fmt: off
NOT_NAMES = frozenset(
    {
        "пациент", "пациентка", "пациента", "пациенту", "больной", "больная", "больного", "врач", "доктор",
        "выписан", "выписана", "осмотрен", "осмотрена", "консультирован", "консультирована",
        "госпитализирован", "госпитализирована", "направлен", "направлена", "повторно", "контроль",
        "консультация", "осмотр", "прием", "приём", "науқас", "дәрігер", "емделуші", "наблюдение",
        "рекомендовано", "назначено", "болезнь", "синдром", "симптом", "шкала", "проба", "по",
    }
)
"""Words (lower case) that a name pattern or the name model may sweep in but that never name a person: the
patient, the doctor, verbs of care, disease words."""
EPONYM_STEMS = (
    "бехтерев", "боткин", "коновалов", "вильсон", "паркинсон", "альцгеймер", "аддисон", "иценко",
    "кушинг", "шегрен", "шёгрен", "верльгоф", "базедов", "хашимото", "квинке", "ходжкин", "зимницк",
    "нечипоренк", "панченков", "реберг", "вестергрен", "ортнер", "пастернацк", "щеткин", "кернинг",
)
# fmt: on
ADJECTIVE_ENDINGS = ("ого", "его", "ому", "ему", "ый", "ий", "ая", "яя", "ое", "ее", "ые", "ие", "ых", "их")

# Words after which a person's name usually follows (doctor, patient, relatives).
RU_CUES = (
    r"врач\w*|доктор\w*|пациент\w*|больн(?:ой|ая|ого|ому|ым|ую)|медсестр\w*|жен(?:а|ы|е|ой|у)|муж(?:а|у|ем)?"
    r"|сын(?:а|у|ом)?|доч(?:ь|ери|ерью)|мат(?:ь|ери|ерью)|мам(?:а|ы|е|ой)|от(?:ец|ца|цу|цом)|пап(?:а|ы|е|ой)"
    r"|брат(?:а|у|ом)?|сестр(?:а|ы|е|ой|у)|бабушк\w*|дедушк\w*|внук\w*|внучк\w*|супруг\w*|родственни\w*"
    r"|опекун\w*|сиделк\w*|\w+лог(?:а|у|ом)?|терапевт\w*|хирург\w*|педиатр\w*|фельдшер\w*|заведующ\w*"
)
KK_CUES = (
    r"дәрігер\w*|науқас\w*|емделуші\w*|мейіргер\w*|әйелі\w*|күйеуі\w*|ұлы|қызы|анасы\w*|әкесі\w*|ағасы\w*"
    r"|інісі\w*|апасы\w*|сіңлісі\w*|қарындасы\w*|баласы\w*|немересі\w*|туысы\w*|жұбайы\w*|әжесі\w*|атасы\w*"
    r"|келіні\w*|жиені\w*|бауыры\w*|күйеу\s+баласы\w*"
)
_CUE_WORD = re.compile(rf"(?i:{RU_CUES}|{KK_CUES})")
WORD_MEMO = 1 << 16
"""Words whose checks each process remembers: clinical notes repeat their vocabulary."""
_is_cue_word = lru_cache(maxsize=WORD_MEMO)(_CUE_WORD.fullmatch)


_WORD = re.compile(r"\w+")
_NON_SPACE = re.compile(r"\S+")
_SPACES = re.compile(r"\s+")


def _spaced_pairs(text: str, words: Sequence[re.Match[str]]) -> Callable[[int], bool]:
    """For matches in text order: whether match i and match i + 1 are separated by spaces only."""

    def next_to(i: int) -> bool:
        gap = text[words[i].end() : words[i + 1].start()]
        return bool(gap) and gap.isspace()

    return next_to


@lru_cache(maxsize=WORD_MEMO)
def is_eponym(text: str) -> bool:
    """Eponyms name diseases and tests (болезнь Бехтерева, проба Реберга), not the people in a note."""
    return any(word.startswith(EPONYM_STEMS) for word in _WORD.findall(text.lower()))


def trim_leading_non_names(text: str, span: Span) -> Span | None:
    """Drop leading words such as "Пациентка" that a name pattern swept in."""
    start = span.start + _non_name_lead(text[span.start : span.end])
    return Span(start, span.end, span.kind) if start < span.end else None


@lru_cache(maxsize=WORD_MEMO)
def _non_name_lead(candidate: str) -> int:
    """How many leading characters of a name candidate are words such as "Пациентка" and the spaces after."""
    lead = 0
    for word in _NON_SPACE.finditer(candidate):
        bare = word.group().lower().strip(".,")
        if bare not in NOT_NAMES and not _CUE_WORD.fullmatch(bare):
            break
        lead = word.end()
    while lead < len(candidate) and candidate[lead].isspace():
        lead += 1
    return lead


def name_shape_detector() -> Detector:
    """Russian/Kazakh person names by shape: initials, patronymics, surname endings."""
    with_initials = [
        re.compile(p)
        for p in (
            rf"{SURNAME_WORD}\s+{INITIALS}",
            rf"{CAPWORD}\s+{TWO_INITIALS}",
            rf"{INITIALS}\s?{SURNAME_WORD}",
            rf"{TWO_INITIALS}\s?{CAPWORD}",
        )
    ]
    initial = re.compile(rf"[{CAP}]\.")
    capitalised = re.compile(CAPWORD)
    # The word checks are remembered: a note's vocabulary repeats across notes.
    is_surname = lru_cache(maxsize=WORD_MEMO)(re.compile(SURNAME_WORD).fullmatch)
    is_ov_surname = lru_cache(maxsize=WORD_MEMO)(re.compile(SURNAME_OV_WORD).fullmatch)
    is_patronymic = lru_cache(maxsize=WORD_MEMO)(re.compile(PATRONYMIC_WORD).fullmatch)

    def candidates(text: str) -> Iterator[tuple[int, int]]:
        # Initials next to a surname or word, each pattern on its own: overlapping candidates must all be
        # found and merged, not the first one only.
        if initial.search(text) is not None:
            for regex in with_initials:
                for m in regex.finditer(text):
                    yield m.start(), m.end()
        # Patronymics (with up to two names before and a surname after) and -ов/-ев/-ский surnames next to
        # another capitalised word, over the text's capitalised words found once.
        words = list(capitalised.finditer(text))
        tokens = [word.group() for word in words]
        next_to = _spaced_pairs(text, words)

        for i, token in enumerate(tokens):
            if is_patronymic(token):
                first = i
                while first > max(0, i - 2) and next_to(first - 1):
                    first -= 1
                last = i + 1 if i + 1 < len(words) and next_to(i) and is_surname(tokens[i + 1]) else i
                yield words[first].start(), words[last].end()
            if i + 1 < len(words) and (is_ov_surname(token) or is_ov_surname(tokens[i + 1])) and next_to(i):
                yield words[i].start(), words[i + 1].end()

    def detect(text: str) -> Iterator[Span]:
        for start, end in candidates(text):
            if start and text[start - 1].isalpha():
                continue
            span = trim_leading_non_names(text, Span(start, end, "name"))
            if span is not None and not is_eponym(text[span.start : span.end]):
                yield span

    return detect


def name_cue_detector() -> Detector:
    """Capitalised words right after a person word ("врач Петрова", "әйелі Айгүл")."""
    # Words before a capital first, the cue check on those few: one alternation of cues tried at every
    # position of the text costs several times more.
    # (Possessive: a word is never matched in part, so giving back characters could only fail again, slowly.)
    before_capital = re.compile(rf"(?<!\w)(\w++)\s++(?=[{CAP}])")
    word = re.compile(rf"(?:{INITIALS}\s?)?(?P<word>{CAPWORD})(?:\s+{INITIALS})?")
    name_like = re.compile(rf"(?:{SURNAME_WORD}|{PATRONYMIC_WORD})")

    def detect(text: str) -> Iterator[Span]:
        for m in before_capital.finditer(text):
            if not _is_cue_word(m.group(1)):
                continue
            pos, end = m.end(), None
            for _ in range(3):
                w = word.match(text, pos)
                if not w:
                    break
                token = w.group("word")
                if token.lower().endswith(ADJECTIVE_ENDINGS) and not name_like.fullmatch(token):
                    break
                if token.lower() in NOT_NAMES or is_eponym(token):
                    break
                end = w.end()
                nxt = _SPACES.match(text, end)
                if not nxt:
                    break
                pos = nxt.end()
            if end is not None:
                yield Span(m.end(), end, "name")

    return detect


def name_stem(token: str) -> str:
    """The part of a Russian/Kazakh name that survives declension (Петрова → Петров, Анна → Анн)."""
    lower = token.lower()
    if len(token) >= 5 and lower.endswith(("ий", "ый", "ая", "яя")):
        return token[:-2]
    if len(token) >= 4 and lower[-1] in "аяоеиыуюйь":
        return token[:-1]
    return token


def name_lexicon_detector() -> Detector:
    """Known given names ("Айгүл", "Мария"), with the capitalised names right next to them."""
    exact = {n.lower() for n in GIVEN_NAMES}
    stem_set = {name_stem(n).lower() for n in GIVEN_NAMES if len(n) >= 5}

    @lru_cache(maxsize=WORD_MEMO)
    def is_given(word: str) -> bool:
        lower = word.lower()
        return lower in exact or any(lower[:cut] in stem_set for cut in range(max(1, len(lower) - 4), len(lower) + 1))

    capitalised = re.compile(led_by(f"[{CAP}]", rf"[{LOW}]+(?:-[{CAP}][{LOW}]+)?(?!\w)", not_after=r"[\w.]"))
    name_like = lru_cache(maxsize=WORD_MEMO)(re.compile(rf"{SURNAME_WORD}|{PATRONYMIC_WORD}").fullmatch)

    def detect(text: str) -> Iterator[Span]:
        words = list(capitalised.finditer(text))
        tokens = [word.group() for word in words]
        given = list(map(is_given, tokens))
        if not any(given):
            return
        next_to = _spaced_pairs(text, words)

        i = 0
        while i < len(words):
            if not given[i]:
                i += 1
                continue
            start = i - 1 if i > 0 and name_like(tokens[i - 1]) and next_to(i - 1) else i
            end = i
            while (
                end + 1 < len(words)
                and end - i < 2
                and (given[end + 1] or name_like(tokens[end + 1]))
                and next_to(end)
            ):
                end += 1
            first = tokens[start]
            if first.lower() not in NOT_NAMES and not is_eponym(first):
                yield Span(words[start].start(), words[end].end(), "name")
            i = end + 1

    return detect
