"""GRPO rewards on hand-written answers, and their TRL adapters."""

from __future__ import annotations

import json

import pytest

from finetune.train._rewards import (
    REWARD_NAMES,
    answer_format,
    answer_text,
    extraction,
    icd10,
    language,
    length_penalty,
    option_letter,
    reward_functions,
    yes_no,
)

CHOICE = {"kind": "choice", "answer": "B", "options": {"A": "Анемия", "B": "Гастрит", "C": "Пневмония"}}


@pytest.mark.parametrize(("answer", "expected"), [
    ("Ответ: B) Гастрит", 1.0),
    ("Ответ: В", 1.0),  # Cyrillic В, the look-alike of B, read as the eval reads it
    ("Гастрит", 1.0),  # the option text alone
    ("Ответ: A) Анемия", 0.0),
    ("не знаю", 0.0),
])
def test_option_letter_reads_answers_as_the_eval_does(answer: str, expected: float) -> None:
    assert option_letter(answer, CHOICE) == expected


def test_a_reward_for_another_kind_of_example_scores_nothing() -> None:
    icd = {"kind": "icd10", "code": "K29.7"}
    assert option_letter("Ответ: B", icd) == 0.0
    assert icd10("Ответ: B", CHOICE) == 0.0
    assert extraction("[]", CHOICE) == 0.0
    assert yes_no("да", CHOICE) == 0.0


def test_icd10_exact_subcode_and_category() -> None:
    gold = {"kind": "icd10", "code": "I10"}
    assert icd10("I10 — Эссенциальная гипертензия", gold) == 1.0
    assert icd10("І10", gold) == 1.0  # Cyrillic І
    assert icd10("I10.0", gold) == 1.0
    assert icd10("I11.9 — гипертензия с поражением сердца", gold) == 0.0
    assert icd10("K29.7 — гастрит", {"kind": "icd10", "code": "K29.5"}) == 0.5
    assert icd10("J18.9, затем K29.7", {"kind": "icd10", "code": "K29.7"}) == 0.0  # the first code counts
    assert icd10("код не указан", gold) == 0.0


def test_yes_no_in_each_language() -> None:
    assert yes_no("Ответ: да.", {"kind": "yes_no", "answer": "yes"}) == 1.0
    assert yes_no("Жауап: жоқ.", {"kind": "yes_no", "answer": "no"}) == 1.0
    assert yes_no("答案：是", {"kind": "yes_no", "answer": "no"}) == 0.0


def test_extraction_pays_f1_with_a_json_validity_term() -> None:
    gold = {"kind": "entities", "entities": [["symptoms", "кашель"], ["drugs", "амоксициллин"]]}
    assert extraction('{"symptoms": ["кашель"], "drugs": ["амоксициллин"]}', gold) == pytest.approx(1.0)
    half = extraction('{"symptoms": ["кашель"], "drugs": []}', gold)  # P=1, R=1/2: F1=2/3
    assert half == pytest.approx(0.2 + 0.8 * 2 / 3)
    assert extraction('{"symptoms": ["температура"]}', gold) == pytest.approx(0.2)  # valid JSON, nothing right
    assert extraction("кашель, амоксициллин", gold) == 0.0  # not JSON


def test_answer_text_and_format() -> None:
    assert answer_text("Ответ: амоксициллин.", {"kind": "text", "answer": "Амоксициллин"}) == 1.0
    assert answer_text("Ответ: парацетамол.", {"kind": "text", "answer": "Амоксициллин"}) == 0.0
    assert answer_format("Ответ: A", CHOICE) == 1.0  # readable, though wrong
    assert answer_format("трудно сказать", CHOICE) == 0.0
    assert answer_format("K29.7", {"kind": "icd10", "code": "I10"}) == 1.0
    assert answer_format("{not json", {"kind": "entities", "entities": []}) == 0.0


def test_language_fidelity() -> None:
    assert language("Пациенту рекомендован покой и обильное питьё.", "ru") == 1.0
    assert language("Науқасқа демалу және көп су ішу ұсынылады.", "kk") == 1.0
    assert language("Пациенту рекомендован покой и обильное питьё.", "kk") == 0.0
    assert language("建议患者休息并多喝水。", "zh") == 1.0
    assert language("12.5 / 7", "ru") == 0.0


def test_length_penalty() -> None:
    assert length_penalty("a" * 100, 100) == 0.0
    assert length_penalty("a" * 150, 100) == pytest.approx(-0.5)
    assert length_penalty("a" * 1000, 100) == -1.0


def test_reward_functions_score_each_completion_against_its_own_row() -> None:
    functions, weights = reward_functions({"option_letter": 1.0, "language": 0.5, "length": 0.1}, max_chars=20)
    assert [f.__name__ for f in functions] == ["option_letter", "language", "length"]
    assert weights == [1.0, 0.5, 0.1]
    other = {"kind": "choice", "answer": "A", "options": {"A": "Да", "B": "Нет"}}
    columns = {"reference": [json.dumps(CHOICE), json.dumps(other)], "lang": ["ru", "kk"], "prompts": [[], []]}
    completions = [[{"role": "assistant", "content": "Ответ: B) Гастрит"}],
                   [{"role": "assistant", "content": "Ответ: B) Нет, это очень длинный ответ на русском"}]]
    by_name = {f.__name__: f(completions=completions, **columns) for f in functions}
    assert by_name["option_letter"] == [1.0, 0.0]
    assert by_name["language"] == [1.0, 0.0]  # the second row asked in Kazakh
    assert by_name["length"][0] == 0.0 and by_name["length"][1] < 0


def test_unknown_reward_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown reward.*optionletter"):
        reward_functions({"optionletter": 1.0}, max_chars=10)
    assert "option_letter" in REWARD_NAMES
