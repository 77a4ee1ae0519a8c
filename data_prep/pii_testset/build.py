"""Build the labelled PII test set: realistic notes with every personal datum's span and type.

Run ``python -m data_prep.pii_testset.build`` to regenerate ``{ru,kk,zh}.jsonl`` (fixed seed). Names
and numbers are drawn from pools that differ from medtune's surrogate lists; numbers are valid where
a checksum exists, and the notes carry distractors (doses, lab values, ICD codes, eponyms, accession
numbers that fail the checksums) so that precision is measured too.
"""

from __future__ import annotations

import random
from pathlib import Path

from data_prep.deid import fake_cn_resident, fake_iin, fake_inn, fake_oms, fake_snils
from data_prep.files import write_jsonl

HERE = Path(__file__).parent
NOTES_PER_LANG = 45

# fmt: off
RU_PEOPLE = [
    ("Кузнецов Игорь Валентинович", "Кузнецова И.В.", "Кузнецову", "И.В. Кузнецов"),
    ("Орлова Дарья Сергеевна", "Орлова Д.С.", "Орловой", "Д.С. Орлова"),
    ("Щербаков Артём Олегович", "Щербаков А.О.", "Щербакову", "А.О. Щербаков"),
    ("Гаврилова Надежда Петровна", "Гаврилова Н.П.", "Гавриловой", "Н.П. Гаврилова"),
    ("Миронов Степан Ильич", "Миронов С.И.", "Миронову", "С.И. Миронов"),
    ("Ершова Полина Андреевна", "Ершова П.А.", "Ершовой", "П.А. Ершова"),
    ("Тихонов Глеб Романович", "Тихонов Г.Р.", "Тихонову", "Г.Р. Тихонов"),
    ("Белоусова Кира Максимовна", "Белоусова К.М.", "Белоусовой", "К.М. Белоусова"),
    ("Калинин Роман Юрьевич", "Калинин Р.Ю.", "Калинину", "Р.Ю. Калинин"),
    ("Дорофеева Алина Викторовна", "Дорофеева А.В.", "Дорофеевой", "А.В. Дорофеева"),
]
RU_GIVEN = ["Мария", "Ксения", "Дмитрий", "Анна", "Никита", "Евгения", "Олег", "Людмила"]
KK_PEOPLE = [
    ("Жұмабаев Ерболат Қанатұлы", "Жұмабаев Е.Қ.", "Жұмабаевқа", "Е.Қ. Жұмабаев"),
    ("Сейітқали Әсел Бауыржанқызы", "Сейітқали Ә.Б.", "Сейітқалиға", "Ә.Б. Сейітқали"),
    ("Тоқтаров Дамир Серікұлы", "Тоқтаров Д.С.", "Тоқтаровқа", "Д.С. Тоқтаров"),
    ("Байжанова Гүлмира Ержанқызы", "Байжанова Г.Е.", "Байжановаға", "Г.Е. Байжанова"),
    ("Мұқанов Асхат Төлегенұлы", "Мұқанов А.Т.", "Мұқановқа", "А.Т. Мұқанов"),
    ("Ыбырайқызы Жазира Маратқызы", "Ыбырайқызы Ж.М.", "Ыбырайқызына", "Ж.М. Ыбырайқызы"),
    ("Қасенов Мағжан Болатұлы", "Қасенов М.Б.", "Қасеновке", "М.Б. Қасенов"),
    ("Әлібекова Назерке Ғалымқызы", "Әлібекова Н.Ғ.", "Әлібековаға", "Н.Ғ. Әлібекова"),
]
KK_GIVEN = ["Айгерім", "Нұрсұлтан", "Ботагөз", "Мақсат", "Перизат", "Жандос", "Толқын", "Олжас"]
ZH_PEOPLE = ["张建华", "刘秀兰", "陈志强", "杨丽娟", "赵国庆", "黄晓明", "周玉梅", "吴海涛", "欧阳明", "孙桂英",
             "马文斌", "朱红霞", "郭立新", "林淑芬"]
STREETS_RU = ["ул. Гоголя, д. 14, кв. 3", "пр-т Мира, д. 101, кв. 56", "ул. Пушкина, д. 8", "ул. Чкалова, д. 22, кв. 9"]
STREETS_KK = ["Сәтпаев көшесі, 30-үй, 5-пәтер", "Абылай хан даңғылы, 12-үй", "Достық көшесі, 7-үй, 41-пәтер"]
STREETS_ZH = ["上海市浦东新区张杨路500号", "广州市天河区体育西路103号", "南京市鼓楼区中山北路88号"]
EMAIL_USERS = ["dariya.orl", "kuz_igor", "aselseit", "mir.stepan", "zhanghua1970", "liu.xl"]
EMAIL_DOMAINS = ["mail.ru", "yandex.kz", "gmail.com", "163.com", "qq.com", "inbox.ru"]
# fmt: on


def _phone_ru(rng: random.Random) -> str:
    d = [rng.randint(0, 9) for _ in range(7)]
    code = rng.choice(["916", "903", "701", "777", "727", "495"])
    return rng.choice(
        [
            f"+7 ({code}) {d[0]}{d[1]}{d[2]}-{d[3]}{d[4]}-{d[5]}{d[6]}",
            f"8 {code} {d[0]}{d[1]}{d[2]} {d[3]}{d[4]} {d[5]}{d[6]}",
            f"+7{code}{''.join(map(str, d))}",
            f"8-{code}-{d[0]}{d[1]}{d[2]}-{d[3]}{d[4]}-{d[5]}{d[6]}",
        ]
    )


def _phone_zh(rng: random.Random) -> str:
    digits = f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}"
    return rng.choice(
        [digits, f"{digits[:3]}-{digits[3:7]}-{digits[7:]}", f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"]
    )


def _date_ru(rng: random.Random) -> str:
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2015, 2025)
    months = [
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ]
    return rng.choice(
        [f"{day:02d}.{month:02d}.{year}", f"{day} {months[month - 1]} {year} г.", f"{year}-{month:02d}-{day:02d}"]
    )


def _date_kk(rng: random.Random) -> str:
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2015, 2025)
    months = [
        "қаңтар",
        "ақпан",
        "наурыз",
        "сәуір",
        "мамыр",
        "маусым",
        "шілде",
        "тамыз",
        "қыркүйек",
        "қазан",
        "қараша",
        "желтоқсан",
    ]
    return rng.choice([f"{day:02d}.{month:02d}.{year}", f"{year} жылғы {day} {months[month - 1]}"])


def _date_zh(rng: random.Random) -> str:
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2015, 2025)
    return rng.choice([f"{year}年{month}月{day}日", f"{year}-{month:02d}-{day:02d}", f"{month}月{day}日"])


def _email(rng: random.Random) -> str:
    return f"{rng.choice(EMAIL_USERS)}{rng.randint(1, 99)}@{rng.choice(EMAIL_DOMAINS)}"


# Each template: text with {slot:kind} markers; kinds decide the generator, the marker text is replaced.
RU_TEMPLATES = [
    "Пациент {full:name}, дата рождения {date:date}, СНИЛС {snils:snils}, поступил {date:date} с жалобами на "
    "давящие боли за грудиной, одышку. АД 150/95 мм рт. ст., ЧСС 88.",
    "Лечащий врач {short:name}. Контактный телефон пациента {phone:phone}, e-mail {email:email}.",
    "Со слов жены ({given:name}), ухудшение с {date:date}. Проживает по адресу: г. Тула, {street:address}.",
    "Полис ОМС {oms:oms}, ИНН {inn:inn}. Направлен на консультацию к {dative:name}.",
    "Паспорт {passport:passport}. № истории болезни {mrn:mrn}. Проба Реберга, анализ мочи по Нечипоренко в норме.",
    "Осмотрен заведующим отделением {initials:name}. Гемоглобин 128 г/л, лейкоциты 7.2×10⁹/л, ИИН не указан.",
    "Номер пробирки 123456789012 (лаборатория). Метформин 1000 мг 2 раза в день, диагноз E11.9.",
    "Дочь {given:name} просит связаться по телефону {phone:phone}. Повторный осмотр {date:date}.",
]
KK_TEMPLATES = [
    "Науқас {full:name}, туған күні {date:date}, ЖСН {iin:iin}, {date:date} бас ауруы мен әлсіздікке шағымданып түсті.",
    "Емдеуші дәрігер {short:name}. Байланыс телефоны {phone:phone}, электрондық пошта {email:email}.",
    "Мекенжайы: Алматы қ., {street:address}. Әйелі {given:name} күтім жасайды.",
    "Науқас {dative:name} кардиолог кеңесі ұсынылды. Қан қысымы 140/90 мм с.б.б., гемоглобин 118 г/л.",
    "Медициналық карта № {mrn:mrn}. Жеке куәлік № {idcard:passport}. Метформин 850 мг күніне 2 рет.",
    "Қарады: бөлім меңгерушісі {initials:name}. Ауру анамнезі: 5 жыл бойы артериялық гипертензия, I11.9.",
    "Зертханалық нөмір 987654321098. Қызы {given:name} {phone:phone} телефоны арқылы хабарласады, "
    "келесі қарау {date:date}.",
]
ZH_TEMPLATES = [
    "患者{zh:name}，男，{age}岁，身份证号{cnid:resident_id}，因“胸闷气短3天”于{date:date}入院。",
    "主治医师：{zh:name}。联系电话{phone:phone}，邮箱{email:email}。",
    "家住{street:address}，其妻{zh:name}陪同就诊。血压150/95 mmHg，心率88次/分。",
    "病历号：{mrn:mrn}。既往高血压病史10年，口服氨氯地平5 mg每日一次，诊断I10。",
    "{date:date}复查血常规：白细胞7.2×10⁹/L，血红蛋白128 g/L，检验条码123456789012345678。",
    "{zh:name}医生建议低盐饮食，{date:date}门诊随访，如有不适请拨打{phone:phone}。",
    "家属{zh:name}（{phone:phone}）签署知情同意书，护照号{zhpass:passport}。",
]


def _value(slot: str, kind: str, lang: str, rng: random.Random) -> str:
    people = RU_PEOPLE if lang == "ru" else KK_PEOPLE
    if slot == "full":
        return rng.choice(people)[0]
    if slot == "short":
        return rng.choice(people)[1]
    if slot == "dative":
        return rng.choice(people)[2]
    if slot == "initials":
        return rng.choice(people)[3]
    if slot == "given":
        return rng.choice(RU_GIVEN if lang == "ru" else KK_GIVEN)
    if slot == "zh":
        return rng.choice(ZH_PEOPLE)
    if kind == "date":
        return {"ru": _date_ru, "kk": _date_kk, "zh": _date_zh}[lang](rng)
    if kind == "phone":
        return _phone_zh(rng) if lang == "zh" else _phone_ru(rng)
    if kind == "email":
        return _email(rng)
    if kind == "address":
        return rng.choice({"ru": STREETS_RU, "kk": STREETS_KK, "zh": STREETS_ZH}[lang])
    if slot == "snils":
        return fake_snils(rng)
    if slot == "oms":
        return fake_oms(rng)
    if slot == "inn":
        return fake_inn(rng)
    if slot == "iin":
        return fake_iin(rng)
    if slot == "cnid":
        return fake_cn_resident(rng)
    if slot == "passport":
        return f"{rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(100000, 999999)}"
    if slot == "idcard":
        return f"{rng.randint(100000000, 999999999)}"
    if slot == "zhpass":
        return f"E{rng.randint(10000000, 99999999)}"
    if slot == "mrn":
        return (
            f"{rng.randint(1000, 99999)}/{rng.randint(20, 25)}" if lang != "zh" else f"ZY{rng.randint(100000, 999999)}"
        )
    raise ValueError(slot)


def fill(template: str, lang: str, rng: random.Random) -> tuple[str, list[list]]:
    """The template with every marker replaced, and the [start, end, kind] of each replacement."""
    import re

    out, spans, pos = [], [], 0
    for m in re.finditer(r"\{(\w+)(?::(\w+))?\}", template):
        out.append(template[pos : m.start()])
        length = sum(len(p) for p in out)
        slot, kind = m.group(1), m.group(2)
        if kind is None:
            out.append(str(rng.randint(25, 85)))
        else:
            value = _value(slot, kind, lang, rng)
            out.append(value)
            spans.append([length, length + len(value), kind])
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), spans


def build(seed: int = 20240312) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    notes: dict[str, list[dict]] = {}
    for lang, templates in (("ru", RU_TEMPLATES), ("kk", KK_TEMPLATES), ("zh", ZH_TEMPLATES)):
        notes[lang] = []
        for i in range(NOTES_PER_LANG):
            chosen = rng.sample(templates, 3)
            text, spans = "", []
            for template in chosen:
                piece, piece_spans = fill(template, lang, rng)
                offset = len(text) + (1 if text else 0)
                text = f"{text}\n{piece}" if text else piece
                spans.extend([s + offset, e + offset, k] for s, e, k in piece_spans)
            notes[lang].append({"id": f"{lang}-{i:03d}", "text": text, "spans": spans})
    return notes


def main() -> None:
    for lang, rows in build().items():
        write_jsonl(HERE / f"{lang}.jsonl", rows)
        print(lang, len(rows), "notes,", sum(len(r["spans"]) for r in rows), "spans")


if __name__ == "__main__":
    main()
