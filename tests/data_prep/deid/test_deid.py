"""De-identification: every known identifier and pattern PII goes, clinical numbers stay."""

from __future__ import annotations

import json
import re

import pytest

from data_prep.deid._patterns import pattern_detectors
from data_prep.deid._records import deidentify
from data_prep.deid._scan import redact_text
from data_prep.deid._spans import PLACEHOLDERS, Span
from data_prep.records import Record

RU = {
    "patient": {
        "full_name": "Иванов Пётр Сергеевич",
        "birth_date": "04.05.1961",
        "national_id": "112-233-445 95",
        "phone": "+7 (916) 123-45-67",
        "email": "p.ivanov61@mail.ru",
        "address": "г. Москва, ул. Профсоюзная, д. 12, кв. 45",
    },
    "doctor": "Петрова Анна Викторовна",
    "record_id": "ru-001",
    "department": "Кардиология",
    "admission_date": "12.03.2024",
    "discharge_date": "20.03.2024",
    "complaints": "Пётр Сергеевич жалуется на одышку при ходьбе и отёки голеней.",
    "history": (
        "Иванов П.С., 04.05.1961 г.р., СНИЛС 112-233-445 95, наблюдается с 12.03.2019. Со слов жены "
        "Ивановой Марии, ухудшение в марте 2024 г. Связь: 8 916 123 45 67, P.Ivanov61@mail.ru. "
        "Проживает: ул. Профсоюзная, д. 12, кв. 45. Сын Иванов Алексей Петрович, тел. +7 903 111-22-33."
    ),
    "labs": [
        {"name": "Гемоглобин", "value": 98, "unit": "г/л", "ref_low": 120, "ref_high": 160},
        {"name": "Глюкоза", "value": 5.6, "unit": "ммоль/л", "ref_low": 3.9, "ref_high": 6.1},
        {"name": "С-реактивный белок", "value": 12.4, "unit": "мг/л", "ref_low": None, "ref_high": 5},
    ],
    "diagnosis": "Гипертоническая болезнь II стадии. ХСН IIА, ФК III (NYHA).",
    "icd10": "I11.0",
    "prescriptions": ["Бисопролол 5 мг 1 раз в сутки утром", "Торасемид 10 мг утром"],
    "recommendations": (
        "Повторный осмотр у Петровой А.В. 01.04.2024. Гемоглобин 98 г/л (норма 120-160), контроль через "
        "2 недели. Дозу бисопролола 2.5-5 мг подбирать по ЧСС 55-60 уд/мин."
    ),
}
RU_GONE = [
    "Иванов",
    "Пётр",
    "Петр",
    "Сергеевич",
    "Петров",
    "Анна",
    "Викторовна",
    "04.05.1961",
    "112-233-445 95",
    "916",
    "123-45-67",
    "mail.ru",
    "Профсоюзн",
    "12.03.2019",
    "01.04.2024",
    "Мари",
    "Алексей",
    "903",
    "марте 2024",
    "ru-001",
]

KK = {
    "patient": {
        "full_name": "Нұрлан Серікұлы Әбенов",
        "birth_date": "12.07.1968",
        "national_id": "680712300125",
        "phone": "+7 701 234 5678",
        "email": None,
        "address": "Алматы қ., Абай даңғылы, 150-үй, 12-пәтер",
    },
    "doctor": "Сейітова Айгүл Қайратқызы",
    "department": "Кардиология",
    "admission_date": "01.02.2024",
    "discharge_date": "09.02.2024",
    "complaints": "Нұрлан Серікұлы кеуде тұсының ауыруына шағымданады.",
    "history": (
        "Әбенов Н.С. 2015 жылдан бері ЖИА-мен ауырады, 12.03.2019 миокард инфарктісін өткерген. ИИН "
        "680712300125. Әйелі Әбенова Гүлшат, тел. 8 (727) 255-12-34. Мекенжайы: Абай даңғылы, 150-үй. "
        "Байланыс: 87012345678."
    ),
    "labs": [
        {"name": "Тропонин I", "value": 0.52, "unit": "нг/мл", "ref_low": None, "ref_high": 0.04},
        {"name": "Калий", "value": 4.2, "unit": "ммоль/л", "ref_low": 3.5, "ref_high": 5.1},
    ],
    "diagnosis": "ЖИА. Жедел миокард инфарктісі.",
    "icd10": "I21.4",
    "prescriptions": ["Клопидогрел 75 мг тәулігіне 1 рет"],
    "recommendations": ("Сейітова А.Қ. дәрігердің бақылауы, 2024 жылғы 15 сәуірде қайта қаралу. Әбеновке диета."),
}
KK_GONE = [
    "Әбенов",
    "Нұрлан",
    "Серікұлы",
    "Сейітов",
    "Айгүл",
    "Қайратқызы",
    "680712300125",
    "701",
    "Абай",
    "255-12-34",
    "Гүлшат",
    "12.03.2019",
    "15 сәуір",
]

ZH = {
    "patient": {
        "full_name": "王建国",
        "birth_date": "1961-05-04",
        "national_id": "110105196105041238",
        "phone": "138 1234 5678",
        "email": "wangjg61@163.com",
        "address": "北京市朝阳区建国路88号院3号楼2单元301室",
    },
    "doctor": "李华",
    "department": "心内科",
    "admission_date": "2024-03-12",
    "discharge_date": "2024-03-19",
    "complaints": "王建国先生因胸闷、气短3天就诊。",
    "history": (
        "患者王建国，男，63岁，身份证号110105196105041238，2019年3月诊断冠心病，1961年5月4日出生。"
        "主治医师：李华。家属王丽（电话+86 139-1234-5678）陪同。家住建国路88号院3号楼2单元301室。"
        "患者于3天前出现胸痛，高血压病史10年，白细胞12.5×10⁹/L。"
    ),
    "labs": [
        {"name": "肌钙蛋白I", "value": 0.52, "unit": "ng/mL", "ref_low": None, "ref_high": 0.04},
        {"name": "血红蛋白", "value": 135, "unit": "g/L", "ref_low": 130, "ref_high": 175},
    ],
    "diagnosis": "急性非ST段抬高型心肌梗死",
    "icd10": "I21.4",
    "prescriptions": ["阿司匹林肠溶片 100 mg 每日一次"],
    "recommendations": "2024年4月1日至心内科李医生门诊复查，联系电话13812345678，邮箱wangjg61@163.com。",
}
ZH_GONE = [
    "王建国",
    "建国",
    "李华",
    "李医生",
    "王丽",
    "13812345678",
    "1234 5678",
    "139-1234",
    "163.com",
    "110105196105041238",
    "2019年3月",
    "2024年4月1日",
    "1961年5月4日",
    "301室",
]


def make(lang: str, fields: dict) -> Record:
    return Record("x.jsonl", "x.jsonl:1", "P-1", lang, json.loads(json.dumps(fields)))


def dump(record: Record) -> str:
    return json.dumps(record.fields, ensure_ascii=False)


@pytest.mark.parametrize(("lang", "fields", "gone"), [("ru", RU, RU_GONE), ("kk", KK, KK_GONE), ("zh", ZH, ZH_GONE)])
def test_known_identifiers_and_pattern_pii_are_removed(lang: str, fields: dict, gone: list[str]) -> None:
    record, counts = deidentify(make(lang, fields))
    text = dump(record)
    for value in gone:
        assert value.lower() not in text.lower(), f"{value!r} survived de-identification"
    assert counts["name"] >= 3 and counts["phone"] >= 2 and counts["date"] >= 2


@pytest.mark.parametrize("fields", [RU, KK, ZH])
def test_structured_identifiers_do_not_reach_the_output(fields: dict) -> None:
    record, _ = deidentify(make("ru" if fields is RU else "kk" if fields is KK else "zh", fields))
    assert {"patient", "doctor", "record_id"}.isdisjoint(record.fields)
    text = dump(record)
    for value in fields["patient"].values():
        if value:
            assert value not in text
    assert fields["doctor"] not in text


def test_lab_values_ranges_and_doses_are_kept() -> None:
    record, _ = deidentify(make("ru", RU))
    assert record.fields["labs"] == RU["labs"]
    recommendations = record.fields["recommendations"]
    for kept in ("98 г/л", "120-160", "2.5-5 мг", "55-60 уд/мин", "2 недели"):
        assert kept in recommendations
    assert record.fields["prescriptions"] == RU["prescriptions"]
    assert record.fields["diagnosis"] == RU["diagnosis"]
    assert record.fields["icd10"] == "I11.0"
    zh, _ = deidentify(make("zh", ZH))
    assert "12.5×10⁹/L" in zh.fields["history"]
    assert "患者于3天前出现胸痛，高血压病史10年" in zh.fields["history"]


def test_placeholders_are_typed_and_in_the_record_language() -> None:
    ru, _ = deidentify(make("ru", RU))
    for label in ("[ФИО]", "[СНИЛС]", "[ТЕЛЕФОН]", "[EMAIL]", "[ДАТА]", "[АДРЕС]"):
        assert label in dump(ru)
    kk, _ = deidentify(make("kk", KK))
    for label in ("[ФИО]", "[ИИН]", "[ТЕЛЕФОН]", "[ДАТА]", "[АДРЕС]"):
        assert label in dump(kk)
    zh, _ = deidentify(make("zh", ZH))
    for label in ("[姓名]", "[身份证号]", "[电话]", "[邮箱]", "[日期]", "[地址]"):
        assert label in dump(zh)
    assert "[ФИО]" not in dump(zh)


def test_counts_are_per_type_and_never_values() -> None:
    _, counts = deidentify(make("ru", RU))
    assert set(counts) <= set(PLACEHOLDERS["ru"])
    assert all(isinstance(n, int) and n > 0 for n in counts.values())


def test_length_of_stay_survives_the_redacted_dates() -> None:
    record, _ = deidentify(make("ru", RU))
    assert record.fields["admission_date"] == "[ДАТА]"
    assert record.fields["stay_days"] == 8


def test_replacements_keep_the_sentence_readable() -> None:
    record, _ = deidentify(make("ru", RU))
    assert "[ФИО] жалуется" in record.fields["complaints"]
    assert "у [ФИО] [ДАТА]" in record.fields["recommendations"]
    assert "[ФИО] [ФИО]" not in dump(record)
    assert "ухудшение в [ДАТА]. Связь" in record.fields["history"]  # the dot of "г." ends the sentence
    zh, _ = deidentify(make("zh", ZH))
    assert "邮箱[邮箱]" in zh.fields["recommendations"]


PATTERN_CASES = [
    ("ru", "Осмотрен врачом Сидоровым П.П., связь с дочерью Смирнова Елена Петровна.", "[ФИО]", 2),
    ("ru", "Тел.: +7 (926) 455-18-02, 8 903 640 12 88, +79161736025, 255-12-34.", "[ТЕЛЕФОН]", 4),
    ("ru", "СНИЛС 200-321-598 91, e-mail ivan.petrov@yandex.ru.", "[СНИЛС]", 1),
    ("ru", "Госпитализирован 12.03.2024, ранее в 2019-03-12 и 5 мая 2022 года.", "[ДАТА]", 3),
    ("ru", "Адрес: ул. Ленина, д. 5, кв. 12.", "[АДРЕС]", 1),
    ("kk", "Науқас Ахметов Б.К. ИИН 860504300123, тел. +7 777 123 45 67.", "[ИИН]", 1),
    ("kk", "Әйелі Айгүл Қайратқызы Сейітова күтім жасайды.", "[ФИО]", 1),
    ("kk", "Төле би көшесі, 45 үй мекенжайында тұрады, 2024 жылғы 12 наурызда қаралды.", "[ДАТА]", 1),
    ("zh", "患者张伟，男，56岁，身份证号370202197510083598，电话+86 181-9240-6618。", "[姓名]", 1),
    ("zh", "妻子于桂兰（13305187742）发现后送医，2024年3月6日入院，12月9日复查。", "[日期]", 2),
]


@pytest.mark.parametrize(("lang", "text", "label", "times"), PATTERN_CASES)
def test_pattern_layer_finds_pii_the_record_does_not_declare(lang: str, text: str, label: str, times: int) -> None:
    redacted, _ = redact_text(text, lang, pattern_detectors())
    assert redacted.count(label) == times, redacted
    for digits in re.findall(r"\d{7,}", re.sub(r"[\s\-()+]", "", text)):
        assert digits not in re.sub(r"[\s\-()+]", "", redacted)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("ru", "Болезнь Бехтерева. Анализ мочи по Нечипоренко. Симптом Щёткина-Блюмберга отрицательный."),
        (
            "ru",
            "Аторвастатин 20 мг, Инсулин Лантус 12 ЕД, Метформин 1000 мг. Гемоглобин 98 г/л (норма 120-160).",
        ),
        ("ru", "АД 140/90 мм рт. ст., ЧСС 72, СОЭ 12.5 мм/ч, глюкоза 5.6-6.1 ммоль/л, МНО 2.35."),
        ("kk", "Гликирленген гемоглобин 8.9 %, қалыпты мәні 4.0-6.0. Метформин 1000 мг тәулігіне 2 рет."),
        ("zh", "患者平素体健，高血压病史10年，白细胞12.5×10⁹/L，患者周身乏力，余无不适，关节疼痛。"),
        ("zh", "血红蛋白98 g/L（参考范围130-175），阿司匹林100 mg每日一次，3个月后复查。"),
    ],
)
def test_clinical_text_without_pii_is_left_alone(lang: str, text: str) -> None:
    redacted, counts = redact_text(text, lang, pattern_detectors())
    assert redacted == text
    assert not counts


def test_extra_detectors_plug_in_without_changing_the_module() -> None:
    def ward_numbers(text: str) -> list[Span]:
        return [Span(m.start(), m.end(), "address") for m in re.finditer(r"палата №\d+", text)]

    record = make("ru", {**RU, "history": "Лежит в палата №7."})
    redacted, counts = deidentify(record, extra_detectors=[ward_numbers])
    assert redacted.fields["history"] == "Лежит в [АДРЕС]."
    assert counts["address"] == 1
