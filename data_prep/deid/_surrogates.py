"""Consistent per-patient surrogates and date shifting.

Placeholders ([ФИО]) tell the model that something was removed; surrogates keep notes natural
(a name where a name was) without being anyone's. The same original value of the same patient
always becomes the same surrogate, so "Иванов … Иванов П.С." stays one person. Dates move by one
offset per patient, so intervals (length of stay, time since onset) survive de-identification.
"""

from __future__ import annotations

import hashlib
import random
import re
from datetime import date, timedelta

from data_prep.deid._national_ids import fake_cn_resident, fake_iin, fake_inn, fake_oms, fake_snils

# fmt: off
RU_SURNAMES = ("Соколов", "Лебедев", "Козлов", "Новиков", "Морозов", "Волков", "Зайцев", "Павлов", "Семенов",
               "Голубев", "Виноградов", "Богданов", "Воробьев", "Федоров", "Михайлов", "Беляев", "Тарасов")
RU_GIVEN_M = ("Алексей", "Дмитрий", "Сергей", "Андрей", "Михаил", "Николай", "Владимир", "Олег", "Игорь")
RU_GIVEN_F = ("Елена", "Ольга", "Татьяна", "Наталья", "Ирина", "Светлана", "Марина", "Екатерина", "Юлия")
RU_PATRONYMIC_M = ("Иванович", "Петрович", "Сергеевич", "Андреевич", "Николаевич", "Викторович")
RU_PATRONYMIC_F = ("Ивановна", "Петровна", "Сергеевна", "Андреевна", "Николаевна", "Викторовна")
KK_PATRONYMIC_M = ("Серікұлы", "Ерланұлы", "Қайратұлы", "Асқарұлы", "Талғатұлы")
KK_PATRONYMIC_F = ("Серікқызы", "Ерланқызы", "Қайратқызы", "Асқарқызы", "Талғатқызы")
KK_SURNAMES = ("Ахметов", "Жумабеков", "Касымов", "Нургалиев", "Сарсенбаев", "Тулегенов", "Бекмухамбетов",
               "Исмаилов", "Абдрахманов", "Есенов", "Жаксылыков", "Омарбеков")
KK_GIVEN_M = ("Ерлан", "Нұрлан", "Асқар", "Бауыржан", "Дәурен", "Қайрат", "Серік", "Талғат", "Ержан")
KK_GIVEN_F = ("Айгүл", "Гүлнар", "Динара", "Жанар", "Мәдина", "Салтанат", "Әсел", "Ләззат", "Назгүл")
ZH_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
ZH_GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "霞", "平", "刚")
EN_NAMES = ("Alex Morgan", "Sam Taylor", "Jordan Lee", "Casey Brown", "Robin Clarke", "Jamie Walker")
CITIES = {"ru": ("г. Самара", "г. Пермь", "г. Омск"), "kk": ("Қарағанды қ.", "Павлодар қ.", "Ақтөбе қ."),
          "zh": ("成都市", "杭州市", "西安市"), "en": ("Springfield", "Riverton", "Lakeside")}
STREETS = {"ru": ("ул. Садовая", "ул. Лесная", "ул. Школьная"), "kk": ("Жібек жолы көшесі", "Бейбітшілік көшесі"),
           "zh": ("人民路", "解放路", "中山路"), "en": ("Oak Street", "Mill Road", "Park Avenue")}
# fmt: on


def _rng(*parts: str) -> random.Random:
    seed = hashlib.sha256("\x00".join(parts).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def date_offset(salt: str, group: str, max_days: int) -> int:
    """The patient's shift in days: never 0, the same for every date of that patient."""
    rng = _rng("date", salt, group)
    return rng.choice([d for d in range(-max_days, max_days + 1) if d != 0])


def _feminine(original: str) -> bool:
    words = original.split()
    return any(w.lower().endswith(("овна", "евна", "ична", "қызы", "кызы", "ова", "ева", "ина", "ская")) for w in words)


def _name(original: str, lang: str, rng: random.Random) -> str:
    if re.search(r"[\u4e00-\u9fff]", original):
        given = "".join(rng.choice(ZH_GIVEN) for _ in range(2 if len(original) > 2 else 1))
        return rng.choice(ZH_SURNAMES) + given
    if re.search(r"[A-Za-z]", original) and not re.search(r"[А-Яа-яЁё]", original):
        return rng.choice(EN_NAMES)
    female = _feminine(original)
    kazakh = lang == "kk" or bool(re.search(r"[ӘҒҚҢӨҰҮҺІәғқңөұүһі]", original))
    surnames = KK_SURNAMES if kazakh else RU_SURNAMES
    surname = rng.choice(surnames) + ("а" if female else "")
    given = rng.choice((KK_GIVEN_F if female else KK_GIVEN_M) if kazakh else (RU_GIVEN_F if female else RU_GIVEN_M))
    words = original.split()
    initials_in = len(re.findall(r"[А-ЯЁӘҒҚҢӨҰҮҺІ]\.", original))
    patronymic = rng.choice(
        (KK_PATRONYMIC_F if female else KK_PATRONYMIC_M) if kazakh else (RU_PATRONYMIC_F if female else RU_PATRONYMIC_M)
    )
    initials = f"{given[0]}.{patronymic[0]}." if initials_in >= 2 else f"{given[0]}."
    if initials_in and len(words) == 1 and re.fullmatch(r"(?:[А-ЯЁӘҒҚҢӨҰҮҺІ]\.\s?)+", original.strip()):
        return initials
    if len(words) == 1 and not initials_in:
        return surname if re.search(r"(ов|ев|ин|ова|ева|ина|ский|ская)$", words[0]) else given
    if initials_in:
        return f"{initials} {surname}" if re.match(r"^[А-ЯЁӘҒҚҢӨҰҮҺІ]\.", original) else f"{surname} {initials}"
    if len(words) >= 3:
        return f"{surname} {given} {patronymic}"
    return f"{surname} {given}"


def _phone(original: str, rng: random.Random) -> str:
    """Same layout, other digits (keeping the country prefix and mobile/landline look)."""
    digits = iter(str(rng.randint(0, 9)) for _ in range(len(original)))
    out, seen = [], 0
    for ch in original:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= 2 else next(digits))
        else:
            out.append(ch)
    return "".join(out)


def surrogate(kind: str, original: str, lang: str, salt: str, group: str) -> str | None:
    """A fake value of ``kind`` for ``original`` (same input, same output); None keeps the placeholder."""
    key = re.sub(r"\s+", " ", original.strip().lower())
    rng = _rng(kind, salt, group, key)
    if kind == "name":
        return _name(original, lang, rng)
    if kind == "iin":
        return fake_iin(rng)
    if kind == "resident_id":
        return fake_cn_resident(rng)
    if kind == "snils":
        return fake_snils(rng)
    if kind == "inn":
        return fake_inn(rng)
    if kind == "oms":
        return fake_oms(rng)
    if kind == "phone":
        return _phone(original, rng)
    if kind == "email":
        return f"patient{rng.randint(1000, 9999)}@example.org"
    if kind == "address":
        number = rng.randint(1, 120)
        if lang == "zh":
            return f"{rng.choice(CITIES['zh'])}{rng.choice(STREETS['zh'])}{number}号"
        return f"{rng.choice(CITIES.get(lang, CITIES['ru']))}, {rng.choice(STREETS.get(lang, STREETS['ru']))}, {number}"
    if kind in ("passport", "mrn"):
        return "".join(str(rng.randint(0, 9)) if c.isdigit() else c for c in original)
    return None


# --- date shifting --------------------------------------------------------------------------------

RU_MONTHS_GEN = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
                 "ноября", "декабря")  # fmt: skip
RU_MONTHS_PREP = ("январе", "феврале", "марте", "апреле", "мае", "июне", "июле", "августе", "сентябре", "октябре",
                  "ноябре", "декабре")  # fmt: skip
KK_MONTHS = ("қаңтар", "ақпан", "наурыз", "сәуір", "мамыр", "маусым", "шілде", "тамыз", "қыркүйек", "қазан",
             "қараша", "желтоқсан")  # fmt: skip
_NUMERIC = re.compile(r"^(?P<d>\d{1,2})(?P<s>[./-])(?P<m>\d{1,2})(?P=s)(?P<y>\d{2}|\d{4})$")
_ISO = re.compile(r"^(?P<y>\d{4})(?P<s>[./-])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})$")
_MONTH_YEAR = re.compile(r"^(?P<m>\d{1,2})\.(?P<y>\d{4})$")
_ZH = re.compile(r"^(?:(?P<y>\d{4})\s*年\s*)?(?P<m>\d{1,2})\s*月(?:\s*(?P<d>\d{1,2})\s*(?P<suffix>[日号]))?$")
_RU_WORDS = re.compile(r"^(?P<d>\d{1,2})\s+(?P<month>[а-яё]+)(?:\s+(?P<y>\d{4})(?P<tail>.*))?$", re.IGNORECASE)
_RU_PREP = re.compile(r"^(?P<month>[а-яё]+)\s+(?P<y>\d{4})(?P<tail>.*)$", re.IGNORECASE)
_KK = re.compile(
    r"^(?:(?P<y>\d{4})\s*(?P<yw>ж\.|жылғы)\s*)?(?P<d>\d{1,2})?\s*(?P<month>"
    + "|".join(KK_MONTHS)
    + r")(?P<suffix>\w*)$",
    re.IGNORECASE,
)


def _fit(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def shift_date_text(text: str, days: int) -> str | None:
    """``text`` (a date as found in a note) moved by ``days``, written the same way; None if not parsed."""
    stripped = text.strip()
    delta = timedelta(days=days)
    if m := _NUMERIC.match(stripped):
        year = int(m["y"]) + (2000 if len(m["y"]) == 2 and int(m["y"]) < 50 else 1900 if len(m["y"]) == 2 else 0)
        when = _fit(year, int(m["m"]), int(m["d"]))
        if when is None:
            return None
        new = when + delta
        y = f"{new.year % 100:02d}" if len(m["y"]) == 2 else str(new.year)
        width = 2 if len(m["d"]) == 2 or len(m["m"]) == 2 else 1
        return f"{new.day:0{width}d}{m['s']}{new.month:0{width}d}{m['s']}{y}"
    if m := _ISO.match(stripped):
        when = _fit(int(m["y"]), int(m["m"]), int(m["d"]))
        if when is None:
            return None
        new = when + delta
        return f"{new.year}{m['s']}{new.month:02d}{m['s']}{new.day:02d}"
    if m := _MONTH_YEAR.match(stripped):
        new = date(int(m["y"]), int(m["m"]), 15) + delta
        return f"{new.month:02d}.{new.year}"
    if m := _ZH.match(stripped):
        year = int(m["y"]) if m["y"] else 2000
        when = _fit(year, int(m["m"]), int(m["d"]) if m["d"] else 15)
        if when is None:
            return None
        new = when + delta
        out = f"{new.year}年" if m["y"] else ""
        out += f"{new.month}月"
        if m["d"]:
            out += f"{new.day}{m['suffix']}"
        return out
    if (m := _RU_WORDS.match(stripped)) and m["month"].lower() in RU_MONTHS_GEN:
        when = _fit(int(m["y"]) if m["y"] else 2000, RU_MONTHS_GEN.index(m["month"].lower()) + 1, int(m["d"]))
        if when is None:
            return None
        new = when + delta
        out = f"{new.day} {RU_MONTHS_GEN[new.month - 1]}"
        return out + (f" {new.year}{m['tail']}" if m["y"] else "")
    if (m := _RU_PREP.match(stripped)) and m["month"].lower() in RU_MONTHS_PREP:
        new = date(int(m["y"]), RU_MONTHS_PREP.index(m["month"].lower()) + 1, 15) + delta
        return f"{RU_MONTHS_PREP[new.month - 1]} {new.year}{m['tail']}"
    if (m := _KK.match(stripped)) and m["month"].lower() in KK_MONTHS:
        when = _fit(int(m["y"]) if m["y"] else 2000, KK_MONTHS.index(m["month"].lower()) + 1, int(m["d"] or 15))
        if when is None:
            return None
        new = when + delta
        out = f"{new.year} {m['yw']} " if m["y"] else ""
        out += f"{new.day} " if m["d"] else ""
        return out + KK_MONTHS[new.month - 1] + (m["suffix"] or "")
    return None
