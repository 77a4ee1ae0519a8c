"""First de-identification pass: replace personal data in free text with typed placeholders.

Two layers find what to replace. The first knows the record's own identifiers (the ``patient``
block and ``doctor``) and finds them wherever and however they are written; it is precise. The
second uses patterns (ID numbers, phones, e-mails, dates, name shapes and cues) to catch people and
numbers the record does not declare, such as relatives. Both report spans; overlapping spans are
merged and each becomes one placeholder, so a name is never half-replaced.

Detectors are plain callables ``text -> spans``: a checksum-aware detector can be passed to
``deidentify`` as ``extra_detectors`` without touching this module. A `Reviewer` (natasha's NER) runs
after them, sees what they found and reads only what is left, for many records in one batch
(`deidentify_many`).
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, NamedTuple

from data_prep.config import DeidConfig
from data_prep.dates import length_of_stay, parse_date
from data_prep.deid._lexicon import GIVEN_NAMES
from data_prep.deid._national_ids import cn_resident_valid, iin_valid, inn_valid, oms_valid, snils_valid
from data_prep.records import DEFAULT_PATIENT_SALT, Record

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

STRUCTURED_IDENTIFIERS: tuple[str, ...] = ("patient", "doctor", "record_id")
DIGIT_KINDS = frozenset({"iin", "snils", "resident_id", "inn", "oms", "passport", "mrn", "phone", "date"})
"""Kinds whose every pattern needs a digit: a text without one skips their detectors."""
"""Fields that are identifiers as a whole; they are dropped, not redacted."""


class Span(NamedTuple):
    """A stretch ``text[start:end]`` of one kind of personal data (a tuple: a note's scan makes dozens)."""

    start: int
    end: int
    kind: str


Detector = Callable[[str], Iterable[Span]]

# --- shared pieces of patterns -------------------------------------------------------------------

CAP = "А-ЯЁӘҒҚҢӨҰҮҺІ"
LOW = "а-яёәғқңөұүһі"
CJK = "\u4e00-\u9fff"
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
EPONYM_STEMS = (
    "бехтерев", "боткин", "коновалов", "вильсон", "паркинсон", "альцгеймер", "аддисон", "иценко",
    "кушинг", "шегрен", "шёгрен", "верльгоф", "базедов", "хашимото", "квинке", "ходжкин", "зимницк",
    "нечипоренк", "панченков", "реберг", "вестергрен", "ортнер", "пастернацк", "щеткин", "кернинг",
)
# fmt: on
ADJECTIVE_ENDINGS = ("ого", "его", "ому", "ему", "ый", "ий", "ая", "яя", "ое", "ее", "ые", "ие", "ых", "их")

RU_MONTHS = "января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря"
RU_MONTHS_IN = "январе|феврале|марте|апреле|мае|июне|июле|августе|сентябре|октябре|ноябре|декабре"
KK_MONTHS = "қаңтар|ақпан|наурыз|сәуір|мамыр|маусым|шілде|тамыз|қыркүйек|қазан|қараша|желтоқсан"

# fmt: off
# Common Chinese surnames. Those that also start everyday clinical words (于, 平, 曾, 双, 左 …) are
# left out, and CHINESE_NOT_NAMES stops the remaining clashes such as 高血压 or 白细胞.
CHINESE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
    "莫孔汤温康施文牛樊葛邢齐乔伍庞颜倪庄聂章鲁岳翟殷詹申耿兰焦俞柳祝宁柯纪童凌毕裴霍涂苗谷盛翁"
    "骆蓝辛靳柴鲍华喻祁蒲滕饶艾穆卓"
)
CHINESE_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "令狐", "司徒")
CHINESE_NOT_NAMES = (
    "高血", "高热", "高脂", "高烧", "高糖", "高钾", "高钠", "高尿", "高龄", "高危", "高度", "高压", "白细",
    "白蛋", "白带", "黄疸", "黄染", "周身", "周围", "余无", "余未", "余均", "谷丙", "谷草", "谷氨", "石膏",
    "凌晨", "华法", "文化", "温度", "康复", "齐全", "苗条", "盛行", "毛细", "贾第", "江浙", "武汉", "龙胆",
    "钟表", "汤剂", "潘生", "金属", "程度", "程序", "范围", "韦格", "孔径", "严重", "严格", "史料", "雷诺",
    "邢台", "段时", "叶酸", "叶片", "付费", "孟鲁", "骆驼", "蒲公", "艾滋", "艾司", "卓越", "陆续",
    "平素", "平时", "于今", "于昨", "于前", "于当", "于次", "于入", "于外", "于本", "于我", "曾于", "曾因",
    "曾有", "曾在", "曾行", "曾患", "曾经", "常年", "常规", "全身", "明显", "明确", "应用", "向其", "时有",
    "安静", "关节", "房颤", "车祸", "管理", "单侧", "尚可", "尚未", "查体", "经治", "经过", "左侧", "方可",
    "连续", "解释", "包括", "任何",
)
# Words after which a name is likely but not certain (患者于3天前…): only unambiguous surnames count.
CHINESE_WEAK_CUES = ("患者", "病人", "患儿", "产妇", "医师", "医生", "大夫", "护士")
# Words after which a name is all but certain (妻子于桂兰): every surname counts.
CHINESE_STRONG_CUES = (
    "姓名", "主治医师", "主任医师", "住院医师", "家属", "联系人", "其儿子", "其女儿", "其子", "其女", "其妻", "其夫",
    "儿子", "女儿", "妻子", "丈夫", "爱人", "老伴", "配偶", "母亲", "父亲", "儿媳", "女婿", "孙子", "孙女", "外孙",
    "外孙女", "哥哥", "姐姐", "弟弟", "妹妹", "侄子", "侄女", "监护人", "陪护",
)
CHINESE_AMBIGUOUS_SURNAMES = "于曾平左方常全明应向时和安解连包关房车管单尚查经任高白黄周余谷"
CHINESE_TITLES = "先生|女士|医生|医师|大夫|主任|护士|老师|阿姨"
CHINESE_AFTER_NAME = (
    "电话", "手机", "联系", "因", "于", "诉", "自", "今", "曾", "在", "已", "无", "有", "为", "是", "的",
    "说", "称", "陪", "同", "男", "女", "先生", "女士", "医生", "医师", "建议", "表示", "年", "岁", "入院",
    "就诊", "来", "到", "近", "主诉", "既往", "反复", "出现", "发现", "签", "知情", "随访", "复诊", "和",
    "及", "与", "等", "查", "嘱", "接诊", "诊断", "住", "家住", "现", "系", "回", "将", "会", "负责",
)
# fmt: on

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


# --- pattern layer --------------------------------------------------------------------------------


def _needs_digits(detector: Detector, pattern: str) -> Detector:
    """Mark a detector whose every match contains a digit: text without digits can skip it."""
    probe = re.sub(r"\\d|0-9|\[\d", "", pattern)
    detector.digits_only = probe != pattern and "@" not in pattern  # type: ignore[attr-defined]
    return detector


def _starting_with(first: str, pattern: str) -> str:
    """``pattern`` behind a lookahead for its possible first characters (a superset is fine).

    Python's ``re`` tries a pattern at every position of the text; one that opens with a lookbehind or a
    case-insensitive group costs far more per position than a failing check of one character class. Same
    matches, about twice as fast on text where the class is rare (digits, cue letters). `_led_by` does better
    where the pattern can be written to consume its first character.
    """
    return f"(?={first}){pattern}"


def _led_by(first: str, rest: str, not_after: str = "") -> str:
    """A pattern that consumes one character of class ``first``, not preceded by one of class ``not_after``,
    then matches ``rest`` (which may look behind at that first character to branch on it).

    A leading character class is the one opening that ``re`` searches for in C, skipping the positions where
    it cannot start; the lookbehind of `_starting_with`'s patterns moves after it, widened by one character.
    """
    behind = f"(?<!{not_after}{first})" if not_after else ""
    return f"{first}{behind}{rest}"


def _regex_detector(kind: str, pattern: str, flags: int = 0, group: int = 0) -> Detector:
    compiled = re.compile(pattern, flags)

    def detect(text: str) -> list[Span]:
        return [Span(m.start(group), m.end(group), kind) for m in compiled.finditer(text) if m.group(group)]

    return _needs_digits(detect, pattern) if kind in DIGIT_KINDS else detect


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
def _is_eponym(text: str) -> bool:
    """Eponyms name diseases and tests (болезнь Бехтерева, проба Реберга), not the people in a note."""
    return any(word.startswith(EPONYM_STEMS) for word in _WORD.findall(text.lower()))


def _trim_leading_non_names(text: str, span: Span) -> Span | None:
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


def _name_shape_detector() -> Detector:
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
            span = _trim_leading_non_names(text, Span(start, end, "name"))
            if span is not None and not _is_eponym(text[span.start : span.end]):
                yield span

    return detect


def _name_cue_detector() -> Detector:
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
                if token.lower() in NOT_NAMES or _is_eponym(token):
                    break
                end = w.end()
                nxt = _SPACES.match(text, end)
                if not nxt:
                    break
                pos = nxt.end()
            if end is not None:
                yield Span(m.end(), end, "name")

    return detect


def _stem(token: str) -> str:
    """The part of a Russian/Kazakh name that survives declension (Петрова → Петров, Анна → Анн)."""
    lower = token.lower()
    if len(token) >= 5 and lower.endswith(("ий", "ый", "ая", "яя")):
        return token[:-2]
    if len(token) >= 4 and lower[-1] in "аяоеиыуюйь":
        return token[:-1]
    return token


def _name_lexicon_detector() -> Detector:
    """Known given names ("Айгүл", "Мария"), with the capitalised names right next to them."""
    exact = {n.lower() for n in GIVEN_NAMES}
    stem_set = {_stem(n).lower() for n in GIVEN_NAMES if len(n) >= 5}

    @lru_cache(maxsize=WORD_MEMO)
    def is_given(word: str) -> bool:
        lower = word.lower()
        return lower in exact or any(lower[:cut] in stem_set for cut in range(max(1, len(lower) - 4), len(lower) + 1))

    capitalised = re.compile(_led_by(f"[{CAP}]", rf"[{LOW}]+(?:-[{CAP}][{LOW}]+)?(?!\w)", not_after=r"[\w.]"))
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
            if first.lower() not in NOT_NAMES and not _is_eponym(first):
                yield Span(words[start].start(), words[end].end(), "name")
            i = end + 1

    return detect


_CHINESE_SURNAME = frozenset(CHINESE_SURNAMES)
_ANY_CHINESE_SURNAME = frozenset(CHINESE_SURNAMES + CHINESE_AMBIGUOUS_SURNAMES)


def _chinese_name_length(text: str, start: int, strong_cue: bool) -> int:
    """How many characters of a cue-introduced Chinese name start at ``start`` (0 if none)."""
    surname = next((s for s in CHINESE_COMPOUND_SURNAMES if text.startswith(s, start)), None)
    if surname is None:
        surnames = _ANY_CHINESE_SURNAME if strong_cue else _CHINESE_SURNAME
        if start >= len(text) or text[start] not in surnames:
            return 0
        surname = text[start]
    if text.startswith(CHINESE_NOT_NAMES, start):
        return 0
    given_start = start + len(surname)

    def is_cjk(pos: int) -> bool:
        return pos < len(text) and "\u4e00" <= text[pos] <= "\u9fff"

    def boundary(pos: int) -> bool:
        return not is_cjk(pos) or text.startswith(CHINESE_AFTER_NAME, pos)

    if given_start < len(text) and text[given_start] == "某":
        return len(surname) + (2 if text.startswith("某某", given_start) else 1)
    cjk_after = 0
    while cjk_after < 2 and is_cjk(given_start + cjk_after):
        cjk_after += 1
    if cjk_after == 0:
        return 0
    for n in (1, 2):
        if n <= cjk_after and boundary(given_start + n):
            return len(surname) + n
    return len(surname) + cjk_after


def _chinese_name_detector() -> Detector:
    """Chinese names after cues (患者王建国, 主治医师：李华), before titles (张先生) or before sex and age
    (王建国，男，65岁)."""
    cues = sorted(CHINESE_STRONG_CUES + CHINESE_WEAK_CUES, key=len, reverse=True)
    cue = re.compile(rf"(?P<cue>{'|'.join(cues)})[：:\s（(]*")
    # A titled name starts a word, or follows a verb of contact (请联系徐医生, 由王主任会诊).
    titled = re.compile(
        rf"(?:(?<![{CJK}])|(?<=联系)|(?<=[请找由向给问]))"
        rf"((?:{'|'.join(CHINESE_COMPOUND_SURNAMES)}|[{CHINESE_SURNAMES}])[{CJK}]{{0,2}}?)(?={CHINESE_TITLES})"
    )
    described = re.compile(
        rf"(?<![{CJK}])((?:{'|'.join(CHINESE_COMPOUND_SURNAMES)}|[{CHINESE_SURNAMES}])[{CJK}]{{1,2}})"
        rf"(?=[，,、\s（(]*(?:男|女)[，,、\s）)]|[，,]\s*\d{{1,3}}\s*岁)"
    )

    def detect(text: str) -> Iterator[Span]:
        for m in cue.finditer(text):
            length = _chinese_name_length(text, m.end(), m.group("cue") in CHINESE_STRONG_CUES)
            if length:
                yield Span(m.end(), m.end() + length, "name")
        for m in titled.finditer(text):
            yield Span(m.start(1), m.end(1), "name")
        for m in described.finditer(text):
            if not text.startswith(CHINESE_NOT_NAMES, m.start(1)):
                yield Span(m.start(1), m.end(1), "name")

    return detect


RU_MONTH_STEMS = ("январ", "феврал", "март", "апрел", "июн", "июл", "август", "сентябр", "октябр", "ноябр", "декабр")
DAY_LED = r"(?:(?<=0)[1-9]|(?<=[1-9])|(?<=[12])\d|(?<=3)[01])"
r"""After a consumed first digit, the rest of a day of the month: what ``(?:0?[1-9]|[12]\d|3[01])`` matches, tried in
the same order."""
MONTH_LED = r"(?:(?<=0)[1-9]|(?<=[1-9])|(?<=1)[0-2])"
"""After a consumed first digit, the rest of a month: ``(?:0?[1-9]|1[0-2])``, in the same order."""
DATE_PATTERNS: list[tuple[str, tuple[str, ...] | re.Pattern[str] | None]] = [
    (_led_by(r"\d", rf"{DAY_LED}\.(?:0?[1-9]|1[0-2])\.(?:19|20)?\d{{2}}(?!\.?\d)", not_after=r"[\d.,]"), None),
    (
        _starting_with(r"\d", r"(?<![\d/])(?:0?[1-9]|[12]\d|3[01])/(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\d/])"),
        re.compile(r"/(?:0?[1-9]|1[0-2])/(?:19|20)\d"),
    ),
    (
        _starting_with(
            r"\d",
            r"(?<![\d.\-/])(?:19|20)\d{2}[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])(?![\d.\-/]?\d)",
        ),
        re.compile(r"[-./](?<=(?:19|20)\d\d[-./])\d"),
    ),
    (_led_by(r"\d", rf"{MONTH_LED}\.(?:19|20)\d{{2}}(?!\.?\d)", not_after=r"[\d.,]"), None),
    (_starting_with(r"\d", r"(?:19|20)\d{2}\s*年\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*[日号])?"), ("年",)),
    (_starting_with(r"\d", r"(?<!\d)\d{1,2}\s*月\s*\d{1,2}\s*[日号]"), ("月",)),
    (
        _starting_with(
            r"\d", rf"(?<!\d)\d{{1,2}}\s+(?i:{RU_MONTHS})(?:\s+(?:19|20)\d{{2}}(?:\s*(?:г\.|года?))?)?(?![\w])"
        ),
        (*RU_MONTH_STEMS, "мая"),
    ),
    (
        _starting_with(
            r"\d",
            rf"(?:(?:19|20)\d{{2}}\s*(?:ж\.|жылғы)\s*)?(?<!\d)\d{{1,2}}\s+(?i:{KK_MONTHS})\w*"
            rf"(?:\s+(?:19|20)\d{{2}}(?:\s*ж\.)?)?",
        ),
        tuple(KK_MONTHS.split("|")),
    ),
    (
        _starting_with(r"\d", rf"(?:19|20)\d{{2}}\s*(?:ж\.|жылғы)\s*(?i:{KK_MONTHS})\w*"),
        tuple(KK_MONTHS.split("|")),
    ),
    (
        _starting_with(
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
    _led_by("[УуПпБбМмНн]", STREET_LED, not_after=r"\w")
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
    runs = re.compile(_led_by(r"\d", r"\d{11,}(?!\d)", not_after=r"\d"))

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
    """Detectors that need no knowledge of the record: numbers, contacts, dates, name shapes."""
    return [
        _needs(_long_number_detector(), _LONG_DIGIT_RUN),
        _needs_words(_regex_detector(
            "resident_id", r"身份证(?:号码?)?[：:\s]*([0-9]{15,17}[0-9Xx])(?![0-9A-Za-z])", group=1
        ), "身份证"),
        _needs_words(_regex_detector(
            "iin", _starting_with("[ИиЖжБбIi]", r"(?i:ИИН|ЖСН|БИН|IIN)[\s:№]*(\d(?:[\s-]?\d){11})(?!\d)"), group=1
        ),
                     "иин", "жсн", "бин", "iin"),
        _needs_words(
            _regex_detector("inn", _starting_with("[Ии]", r"(?i:ИНН)[\s:№]*(\d{10}(?:\d{2})?)(?!\d)"), group=1), "инн"
        ),
        _validated_detector(
            "snils", _led_by(r"\d", r"\d{2}-\d{3}-\d{3}[\s-]\d{2}(?![\d\-])", not_after=r"[\d\-]"), snils_valid
        ),
        _needs_words(
            _regex_detector("snils", _starting_with("[Сс]", r"(?i:СНИЛС)[\s:№]*(\d(?:[\s-]?\d){10})(?!\d)"), group=1),
            "снилс",
        ),
        _needs_words(_regex_detector(
            "oms",
            _starting_with("[ПпОоЕе]", r"(?i:полис\w*(?:\s+ОМС)?|ОМС|ЕНП)[\s:№]*(\d(?:[\s-]?\d){15})(?!\d)"),
            group=1,
        ), "полис", "омс", "енп"),
        _needs_words(_regex_detector(
            "passport",
            _starting_with(
                "[Пп]", r"(?i:паспорт\w*(?:\s+РФ)?(?:\s+серии)?)[\s:]*(\d{2}\s?\d{2}\s?(?:№\s?|номер\s)?\d{6})(?!\d)"
            ),
            group=1,
        ), "паспорт"),
        _needs_words(_regex_detector(
            "passport",
            _starting_with("[УуЖж]", r"(?i:удостоверени\w+\s+личности|жеке\s+куәлі\w*)[\s:]*(?:№\s?)?(\d{9})(?!\d)"),
            group=1,
        ), "удостоверени", "жеке"),
        _needs_words(_regex_detector("passport", r"护照(?:号码?)?[：:\s]*([A-Z]{1,2}\d{7,8})(?!\d)", group=1), "护照"),
        _needs_words(
            _regex_detector(
                "mrn",
                _starting_with(MRN_FIRST, rf"(?:{MRN_CUES})[\s:：.№#]*([A-ZА-Я]{{0,3}}[-/]?\d[\d\-/]{{2,15}})(?![\d])"),
                group=1,
            ),
            *MRN_WORDS,
        ),
        _needs_words(_regex_detector("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"), "@"),
        _regex_detector(  # +7 or 8, then ten digits
            "phone",
            _led_by(
                "[+8]",
                r"(?:(?<=\+)\s?7|(?<=8))[\s\-()]{0,3}\d{3}[\s\-()]{0,3}\d{3}[\s\-]{0,2}\d{2}[\s\-]{0,2}\d{2}(?!\d)",
                not_after="[0-9A-Za-z]",
            ),
        ),
        _regex_detector(  # a Chinese mobile, +86 or 86 before it or not
            "phone",
            _led_by(
                "[+81]",
                r"(?:(?<=\+)\s?86[\s\-]?1|(?<=8)6[\s\-]?1|(?<=1))[3-9]\d[\s\-]?\d{4}[\s\-]?\d{4}(?!\d)",
                not_after="[0-9A-Za-z+]",
            ),
        ),
        _needs(_regex_detector("phone", _starting_with("0", r"(?<![\d.,\-])0\d{2,3}-\d{7,8}(?!\d)")), _DASH_SEVEN),
        _regex_detector("phone", _led_by(r"\d", r"\d{2}-\d{2}-\d{2}(?![\d\-])", not_after=r"[\d.,\-/]")),
        *[_gated(_regex_detector("date", p), gate) for p, gate in DATE_PATTERNS],
        *[_needs_words(_regex_detector("address", p), *words) for p, words in zip(ADDRESS_PATTERNS, ADDRESS_WORDS,
                                                                                  strict=True)],
        _needs(_name_shape_detector(), _CYRILLIC_CAPITAL),
        _needs(_name_cue_detector(), _CYRILLIC_CAPITAL),
        _needs(_name_lexicon_detector(), _CYRILLIC_CAPITAL),
        _needs(_chinese_name_detector(), _CJK_CHAR),
    ]


_PATTERN_DETECTORS = pattern_detectors()

# --- known-identifier layer -----------------------------------------------------------------------


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
        stem = _stem(token)
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


# --- applying spans -------------------------------------------------------------------------------


def _merge(text: str, spans: Iterable[Span]) -> list[Span]:
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


_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=1)
def _gate_words() -> tuple[Any, frozenset[str]]:
    """An Aho-Corasick automaton of the pattern detectors' gate words, and those words: one pass over a
    text finds which of them it holds (dozens of substring searches per text cost several times more)."""
    import ahocorasick

    words = frozenset(w for d in _PATTERN_DETECTORS for w in getattr(d, "words", ()))
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


_PATTERN_LAYER = PatternLayer(_PATTERN_DETECTORS)


@dataclass(frozen=True)
class Reviewer:
    """A second-pass detector: it reads each text together with the spans the first pass found there,
    many texts at once (a model is far cheaper per sentence in one big batch, and can skip what is found)."""

    review: Callable[[Sequence[tuple[str, Sequence[Span]]]], list[list[Span]]]


AnyDetector = Detector | Reviewer


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


def redact_spans(
    text: str, lang: str, spans: Iterable[Span], replace_with: Replacer | None = None
) -> tuple[str, Counter[str]]:
    """Replace ``spans`` (merged first) with placeholders of ``lang`` (or ``replace_with``'s values);
    count replacements by kind."""
    merged = _merge(text, spans)
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


def redact_text(
    text: str, lang: str, detectors: Sequence[AnyDetector], replace_with: Replacer | None = None
) -> tuple[str, Counter[str]]:
    """Replace what the detectors find with placeholders of ``lang`` (or ``replace_with``'s values);
    count replacements by kind."""
    return redact_spans(text, lang, find_spans([(text, detectors)])[0], replace_with)


_CONTAINERS = (list, dict)
_TEXT_OR_CONTAINERS = (str, list, dict)


def _strings(value: Any, found: list[str] | None = None) -> list[str]:
    """Every string inside a record's field values, in order (appended to ``found`` when given)."""
    found = [] if found is None else found
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, _CONTAINERS):
        for item in value.values() if isinstance(value, dict) else value:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, _CONTAINERS):
                _strings(item, found)
    return found


def _map_strings(value: Any, parts: Iterator[str]) -> Any:
    """``value`` with its strings replaced, in the order `_strings` gives them, by the next of ``parts``."""
    if isinstance(value, str):
        return next(parts)
    if isinstance(value, list):
        return [_map_strings(item, parts) if isinstance(item, _TEXT_OR_CONTAINERS) else item for item in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, parts) if isinstance(v, _TEXT_OR_CONTAINERS) else v for k, v in value.items()}
    return value


def _free_fields(record: Record) -> dict[str, Any]:
    """The record's fields without its structured identifiers, which are dropped, never redacted."""
    return {k: v for k, v in record.fields.items() if k not in STRUCTURED_IDENTIFIERS}


def replacer(record: Record, config: DeidConfig, salt: str) -> Replacer | None:
    """Surrogates and/or shifted dates for this record's patient, per ``config``; None: placeholders only."""
    if config.replace_with == "placeholder" and not config.shift_dates:
        return None
    from data_prep.deid._surrogates import date_offset, shift_date_text, surrogate

    group = record.group or record.patient_id
    offset = date_offset(salt, group, config.max_shift_days) if config.shift_dates else 0

    def replace_with(kind: str, original: str) -> str | None:
        if kind == "date":
            return shift_date_text(original, offset) if config.shift_dates else None
        if config.replace_with == "surrogate":
            return surrogate(kind, original, record.lang, salt, group)
        return None

    return replace_with


def _joined(strings: list[str]) -> str | None:
    """A record's strings as one text to scan, or None when one holds a NUL (then each is scanned alone)."""
    return None if any("\x00" in text for text in strings) else FIELD_SEPARATOR.join(strings)


def detectors_of(record: Record, config: DeidConfig, extra: Sequence[AnyDetector] = ()) -> list[AnyDetector]:
    """The record's own identifiers, the patterns, ``extra`` and, when asked for, the named-entity model."""
    detectors: list[AnyDetector] = [known_identifier_detector(record), _PATTERN_LAYER, *extra]
    if config.ner and record.lang == "ru":
        from data_prep.deid._ner import natasha_reviewer

        detectors.append(natasha_reviewer())
    return detectors


def deidentify_many(
    jobs: Sequence[tuple[Record, DeidConfig, str]], extra_detectors: Sequence[AnyDetector] = ()
) -> list[tuple[Record, Counter[str]]]:
    """`deidentify` for many ``(record, config, salt)`` at once: the named-entity model reads all their
    sentences in one batch. Same results as one record at a time."""
    texts: list[tuple[str, list[AnyDetector]]] = []
    plans = []
    for record, config, _ in jobs:
        fields = _free_fields(record)
        strings = _strings(fields)
        joined = _joined(strings)
        # one scan of all the record's text: far fewer detector calls than one per field
        scanned = strings if joined is None else [joined]
        detectors = detectors_of(record, config, extra_detectors)
        plans.append((fields, strings, joined, len(texts)))
        texts.extend((text, detectors) for text in scanned)
    spans = find_spans(texts)
    results = []
    for (record, config, salt), (fields, strings, joined, first) in zip(jobs, plans, strict=True):
        replace_with = replacer(record, config, salt)
        counts: Counter[str] = Counter()
        redacted = []
        for i in range(first, first + (len(strings) if joined is None else 1)):
            text, found = redact_spans(texts[i][0], record.lang, spans[i], replace_with)
            redacted.append(text)
            counts.update(found)
        if joined is not None:
            redacted = redacted[0].split(FIELD_SEPARATOR)
            if len(redacted) != len(strings):
                raise AssertionError("de-identification changed the number of fields of a record")
        new_fields = _map_strings(fields, iter(redacted))
        stay = length_of_stay(fields.get("admission_date"), fields.get("discharge_date"))
        if stay is not None:
            new_fields["stay_days"] = stay
        results.append((replace(record, fields=new_fields), counts))
    return results


def deidentify(
    record: Record,
    extra_detectors: Sequence[AnyDetector] = (),
    config: DeidConfig | None = None,
    salt: str = DEFAULT_PATIENT_SALT,
) -> tuple[Record, Counter[str]]:
    """The record with structured identifiers dropped and personal data in its text replaced.

    Returns the redaction counts per kind of personal data, never the values. Numbers outside
    text (lab values, ranges) are left as they are. The length of stay is kept as ``stay_days``
    because the admission and discharge dates themselves are redacted. ``config`` chooses
    placeholders or per-patient surrogates, date shifting and the named-entity model.
    """
    return deidentify_many([(record, config or DeidConfig(ner=False), salt)], extra_detectors)[0]
