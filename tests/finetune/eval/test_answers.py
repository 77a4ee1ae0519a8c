"""Reading answers the way models write them in ru, kk, zh and en."""

from __future__ import annotations

import pytest

from finetune.eval._answers import (
    icd10_matches,
    parse_choice,
    parse_entities,
    parse_icd10_codes,
    parse_yes_no,
)

RU = {"А": "Адреналин", "Б": "Дексаметазон", "В": "Хлоропирамин", "Г": "Сальбутамол"}
ZH = {"A": "肾上腺素", "B": "地塞米松", "C": "氯苯那敏", "D": "沙丁胺醇"}
EN = {"A": "Epinephrine", "B": "Dexamethasone", "C": "Chlorphenamine", "D": "Salbutamol"}
DIGITS = {"1": "КТ", "2": "МРТ", "3": "УЗИ", "4": "ЭКГ"}


@pytest.mark.parametrize(("answer", "options", "expected"), [
    ("Ответ: Б", RU, "Б"),
    ("Правильный ответ — Б) Дексаметазон", RU, "Б"),
    ("Рассуждаю… вариант А не подходит. Итоговый ответ: Г", RU, "Г"),
    ("В данном случае правильный вариант — Г", RU, "Г"),  # "В" opening a sentence is a preposition
    ("В данном случае нужен адреналин.", RU, "А"),  # option text quoted
    ("**В.**", RU, "В"),
    ("B", RU, "В"),  # Latin look-alike of Cyrillic В
    ("Жауабы: В", RU, "В"),
    ("Дұрыс жауап: А", RU, "А"),
    ("答案是C", ZH, "C"),
    ("根据分析，故选B。", ZH, "B"),
    ("正确答案为：D. 沙丁胺醇", ZH, "D"),
    ("首选肾上腺素。", ZH, "A"),
    ("The answer is (C).", EN, "C"),
    ("C) Chlorphenamine, because …", EN, "C"),
    ("I would give epinephrine.", EN, "A"),
    ("Answer: А", EN, "A"),  # Cyrillic look-alike of Latin A
    ("Ответ: 3", DIGITS, "3"),
    ("(Г)", RU, "Г"),
])
def test_choice_is_read_from_how_models_answer(answer: str, options: dict[str, str], expected: str) -> None:
    assert parse_choice(answer, options) == expected


@pytest.mark.parametrize("answer", [
    "Ответ: в первую очередь нужно оценить состояние",  # "в" here is a preposition, not option В
    "Нужен адреналин или хлоропирамин",  # two options named: no single answer
    "Не знаю",
    "",
])
def test_unreadable_choices_are_none(answer: str) -> None:
    assert parse_choice(answer, RU) is None


@pytest.mark.parametrize(("answer", "expected"), [
    ("Да, это так.", "yes"), ("Нет.", "no"), ("Ответ: нет", "no"), ("Иә, сәйкес келеді.", "yes"),
    ("Жоқ", "no"), ("Жауабы: жоқ", "no"), ("是的，符合。", "yes"), ("不是。", "no"), ("答案：否", "no"),
    ("不建议使用。", "no"), ("Yes.", "yes"), ("No, because the target is 130/80.", "no"), ("Maybe", "maybe"),
    ("Возможно", "maybe"), ("Скорее всего да", "yes"),
])
def test_yes_no_in_four_languages(answer: str, expected: str) -> None:
    assert parse_yes_no(answer) == expected


@pytest.mark.parametrize("answer", ["Когда-то да, а сейчас нет", "нетрудно сказать", "这是一个问题", ""])
def test_unreadable_yes_no_is_none(answer: str) -> None:
    assert parse_yes_no(answer) is None


def test_icd10_codes_keep_their_order_and_cyrillic_lookalikes_are_read() -> None:
    assert parse_icd10_codes("Код: I10, затем К29.7 (кириллица) и E11.9; также I10") == ["I10", "K29.7", "E11.9"]
    assert parse_icd10_codes("诊断：高血压（ICD-10：I10）") == ["I10"]
    assert parse_icd10_codes("МКБ-10 не определить") == []


def test_icd10_matching_levels() -> None:
    assert icd10_matches("E11.9", "E11") and icd10_matches("I10", "I10")
    assert not icd10_matches("J18", "J18.9")  # less specific than the gold code
    assert not icd10_matches("E110", "E11")
    assert icd10_matches("J18.0", "J18.9", level="category")
    assert not icd10_matches("J15.0", "J18.9", level="category")


def test_entities_from_fenced_json_prose_and_type_maps() -> None:
    assert parse_entities('```json\n[{"type": "drug", "text": "фуросемид"}]\n```') == [("drug", "фуросемид")]
    assert parse_entities('Вот: {"disease": ["ХСН"], "drug": []} готово') == [("disease", "ХСН")]
    assert parse_entities('[{"type": "symptom", "entity": "咽痛"}]') == [("symptom", "咽痛")]
    assert parse_entities("[]") == []
    assert parse_entities("нет JSON") is None
    assert parse_entities('[{"type": "drug"}]') is None  # wrong shape is not valid extraction JSON
