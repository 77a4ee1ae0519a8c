"""Tasks: valid chat examples in the record's language, facts taken from the record only."""

from __future__ import annotations

import re

import pytest

from data_prep.records import Record, patient_group, pseudonymize
from data_prep.tasks._build import TASKS, format_number, lab_explanation, lab_status, render_note, structured_summary
from data_prep.tasks._prompts import INSTRUCTIONS, PROMPT_LANGS, SYSTEM_PROMPTS

LABS = {
    "ru": [
        {"name": "Гемоглобин", "value": 98, "unit": "г/л", "ref_low": 120, "ref_high": 160},
        {"name": "Глюкоза", "value": 5.6, "unit": "ммоль/л", "ref_low": 3.9, "ref_high": 6.1},
        {"name": "С-реактивный белок", "value": 12.4, "unit": "мг/л", "ref_low": None, "ref_high": 5},
    ],
    "kk": [
        {
            "name": "Гликирленген гемоглобин (HbA1c)",
            "value": 8.9,
            "unit": "%",
            "ref_low": 4.0,
            "ref_high": 6.0,
        },
        {"name": "Калий", "value": 4.2, "unit": "ммоль/л", "ref_low": 3.5, "ref_high": 5.1},
        {"name": "Натрий", "value": 128, "unit": "ммоль/л", "ref_low": 136, "ref_high": 145},
    ],
    "zh": [
        {"name": "白细胞计数", "value": 13.2, "unit": "×10⁹/L", "ref_low": 3.5, "ref_high": 9.5},
        {"name": "C反应蛋白", "value": 45, "unit": "mg/L", "ref_low": None, "ref_high": 10},
        {"name": "血红蛋白", "value": 135, "unit": "g/L", "ref_low": 130, "ref_high": 175},
    ],
}
TEXT = {
    "ru": (
        "Кардиология",
        "Одышка при ходьбе.",
        "Гипертония 10 лет.",
        "Гипертоническая болезнь II стадии",
        ["Бисопролол 5 мг утром"],
        "Контроль АД ежедневно.",
    ),
    "kk": (
        "Эндокринология",
        "Шөлдеу, жиі зәр шығару.",
        "Қант диабеті 5 жыл бұрын анықталған.",
        "2 типті қант диабеті",
        ["Метформин 1000 мг тәулігіне 2 рет"],
        "Диета, глюкозаны бақылау.",
    ),
    "zh": (
        "呼吸内科",
        "咳嗽、发热3天。",
        "患者3天前受凉后出现咳嗽。",
        "社区获得性肺炎",
        ["头孢曲松 2 g 静脉滴注 每日一次"],
        "注意休息，1周后复查胸片。",
    ),
}
ICD = {"ru": "I11.9", "kk": "E11.9", "zh": "J18.9"}
HEADINGS = {
    "ru": ["Жалобы:", "Диагноз:", "Отклонения в анализах:", "Назначения:", "Рекомендации:"],
    "kk": ["Шағымдары:", "Диагнозы:", "Талдаулардағы ауытқулар:", "Тағайындаулар:", "Ұсынымдар:"],
    "zh": ["主诉：", "诊断：", "异常检验结果：", "处方用药：", "医嘱建议："],
}
KAZAKH_LETTERS = re.compile("[әғқңөұүһі]")
CJK = re.compile("[\u4e00-\u9fff]")
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


def make(lang: str, **overrides: object) -> Record:
    department, complaints, history, diagnosis, prescriptions, recommendations = TEXT[lang]
    fields = {
        "department": department,
        "admission_date": "[ДАТА]" if lang != "zh" else "[日期]",
        "discharge_date": "[ДАТА]" if lang != "zh" else "[日期]",
        "stay_days": 8,
        "complaints": complaints,
        "history": history,
        "labs": LABS[lang],
        "diagnosis": diagnosis,
        "icd10": ICD[lang],
        "prescriptions": prescriptions,
        "recommendations": recommendations,
    }
    fields.update(overrides)
    return pseudonymize(Record(f"{lang}.jsonl", f"{lang}.jsonl:3", f"{lang.upper()}-P0001", lang, fields), "salt")


def assert_valid_chat(messages: list[dict]) -> None:
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in messages)
    assert set().union(*messages) == {"role", "content"}


def assert_in_language(text: str, lang: str) -> None:
    if lang == "zh":
        assert CJK.search(text) and not CYRILLIC.search(text)
    else:
        assert CYRILLIC.search(text) and not CJK.search(text)
        assert bool(KAZAKH_LETTERS.search(text)) == (lang == "kk")


@pytest.mark.parametrize("lang", ["ru", "kk", "zh"])
def test_structured_summary_has_fixed_headings_and_abnormal_labs(lang: str) -> None:
    [example] = structured_summary(make(lang))
    assert_valid_chat(example.messages)
    system, user, answer = (m["content"] for m in example.messages)
    assert system == SYSTEM_PROMPTS[lang]
    assert user.startswith(INSTRUCTIONS["structured_summary"][lang])
    for part in TEXT[lang][:4]:
        assert part in user
    positions = [answer.index(h) for h in HEADINGS[lang]]
    assert positions == sorted(positions)
    assert ICD[lang] in answer
    abnormal = [lab for lab in LABS[lang] if lab_status(lab) != "within"]
    normal = [lab for lab in LABS[lang] if lab_status(lab) == "within"]
    for lab in abnormal:
        line = next(line for line in answer.splitlines() if line.startswith(f"- {lab['name']}"))
        assert format_number(lab["value"]) in line and lab["unit"] in line
        assert format_number(lab["ref_high"]) in line
    for lab in normal:
        assert lab["name"] not in answer.split(HEADINGS[lang][2])[1].split(HEADINGS[lang][3])[0]
    assert_in_language(answer.replace(ICD[lang], ""), lang)


@pytest.mark.parametrize("lang", ["ru", "kk", "zh"])
def test_lab_explanation_has_one_line_per_lab_and_ends_with_the_doctor(lang: str) -> None:
    [example] = lab_explanation(make(lang))
    assert_valid_chat(example.messages)
    _, user, answer = (m["content"] for m in example.messages)
    assert user.startswith(INSTRUCTIONS["lab_explanation"][lang])
    assert TEXT[lang][1] not in user  # only the lab table, not the note
    lines = answer.splitlines()
    lab_lines = [line for line in lines if line.startswith("- ")]
    assert len(lab_lines) == len(LABS[lang])
    status_words = {
        "ru": {"below": "ниже нормы", "within": "в пределах нормы", "above": "выше нормы"},
        "kk": {
            "below": "қалыпты деңгейден төмен",
            "within": "қалыпты шекте",
            "above": "қалыпты деңгейден жоғары",
        },
        "zh": {"below": "低于参考范围", "within": "在参考范围内", "above": "高于参考范围"},
    }[lang]
    for lab, line in zip(LABS[lang], lab_lines, strict=True):
        assert line.startswith(f"- {lab['name']}")
        assert f"{format_number(lab['value'])} {lab['unit']}" in line
        assert status_words[lab_status(lab)] in line
        sentences = re.split(r"(?<=\.)\s+|(?<=。)", line.strip())
        assert len([s for s in sentences if s]) == (1 if lab_status(lab) == "within" else 2), line
    doctor = {"ru": "врач", "kk": "дәрігер", "zh": "医生"}[lang]
    assert doctor in lines[-1]
    assert_in_language(answer, lang)


def test_lab_meanings_are_specific_where_known() -> None:
    [ru] = lab_explanation(make("ru"))
    assert "анемии" in ru.messages[2]["content"]
    assert "воспаления" in ru.messages[2]["content"]
    [kk] = lab_explanation(make("kk"))
    assert "қант" in kk.messages[2]["content"]
    [zh] = lab_explanation(make("zh"))
    assert "炎症或感染" in zh.messages[2]["content"]


def test_meta_is_stable_and_never_holds_the_raw_patient_id() -> None:
    record = make("ru")
    first = [e.meta for name in TASKS for e in TASKS[name](record)]
    again = [e.meta for name in TASKS for e in TASKS[name](record)]
    assert first == again
    assert {m["task"] for m in first} == {
        "structured_summary", "lab_explanation", "icd10_coding", "plain_language", "text",
    }
    assert len({m["id"] for m in first}) == 5
    for meta in first:
        checkable = {"reference"} if meta["task"] == "icd10_coding" else set()  # the code, for GRPO's rewards
        assert set(meta) == {"id", "lang", "task", "source", "group", *checkable}
        assert meta["group"] == patient_group("RU-P0001", "salt")
        assert re.fullmatch("[0-9a-f]{16}", meta["group"])
        assert meta["source"] == "ru.jsonl:3"
        assert "RU-P0001" not in str(meta)


def test_unsalted_records_still_get_a_hashed_group() -> None:
    record = Record("ru.jsonl", "ru.jsonl:1", "RU-P7", "ru", make("ru").fields)
    [example] = structured_summary(record)
    assert example.meta["group"] == patient_group("RU-P7")


def test_records_without_labs_make_no_lab_explanation_and_say_so_in_the_summary() -> None:
    record = make("ru", labs=[], prescriptions=None, recommendations=None)
    assert lab_explanation(record) == []
    [summary] = structured_summary(record)
    answer = summary.messages[2]["content"]
    assert "Отклонения в анализах: нет данных" in answer  # nothing was judged: never "no abnormalities"
    assert "отклонений не выявлено" not in answer
    assert "Назначения: нет данных" in answer
    assert "Рекомендации: нет данных" in answer


def test_note_shows_stay_and_labs_without_inventing_fields() -> None:
    note = render_note(make("ru", history=None))
    assert "Период лечения: [ДАТА] — [ДАТА] (8 дней)" in note
    assert "- Гемоглобин: 98 г/л (норма: 120–160)" in note
    assert "- С-реактивный белок: 12.4 мг/л (норма: не выше 5)" in note
    assert "Анамнез" not in note
    zh = render_note(make("zh"))
    assert "住院时间：[日期] 至 [日期]（共8天）" in zh
    assert "诊断：社区获得性肺炎（ICD-10：J18.9）" in zh


@pytest.mark.parametrize(
    ("lab", "status"),
    [
        ({"value": 98, "ref_low": 120, "ref_high": 160}, "below"),
        ({"value": 120, "ref_low": 120, "ref_high": 160}, "within"),
        ({"value": 161, "ref_low": 120, "ref_high": 160}, "above"),
        ({"value": 12.4, "ref_low": None, "ref_high": 5}, "above"),
        ({"value": 2.0, "ref_low": 3.5, "ref_high": None}, "below"),
        ({"value": "5,6", "ref_low": 3.9, "ref_high": 6.1}, "within"),
        ({"value": "отрицательный", "ref_low": None, "ref_high": None}, "unknown"),
        ({"value": 7, "ref_low": None, "ref_high": None}, "unknown"),
    ],
)
def test_lab_status(lab: dict, status: str) -> None:
    assert lab_status(lab) == status


def test_numbers_are_written_as_in_the_source() -> None:
    assert [format_number(v) for v in (98, 5.6, 0.04, 4.0, "12,5")] == ["98", "5.6", "0.04", "4.0", "12,5"]


def test_unknown_ranges_are_explained_without_guessing() -> None:
    record = make("kk", labs=[{"name": "Иммуноглобулин E", "value": "теріс", "unit": None}])
    [example] = lab_explanation(record)
    line = example.messages[2]["content"].splitlines()[1]
    assert "қалыпты мәні көрсетілмеген" in line and "дәрігерден" in line


def test_prompts_exist_for_every_language_and_task() -> None:
    assert set(SYSTEM_PROMPTS) == set(PROMPT_LANGS) == {"ru", "kk", "zh", "en"}
    for task in TASKS:
        if task not in ("chat", "text", "preference"):  # conversations and pairs bring their own prompts; raw text
            # asks nothing
            assert set(INSTRUCTIONS[task]) == set(PROMPT_LANGS)
    assert KAZAKH_LETTERS.search(SYSTEM_PROMPTS["kk"]) and KAZAKH_LETTERS.search(INSTRUCTIONS["lab_explanation"]["kk"])
    assert CJK.search(SYSTEM_PROMPTS["zh"]) and not CJK.search(SYSTEM_PROMPTS["ru"])
