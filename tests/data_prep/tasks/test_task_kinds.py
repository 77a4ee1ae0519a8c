"""Tasks for every record kind and language: answers stated one way, roles alternating, prompts overridable."""

from __future__ import annotations

import json

import pytest

from data_prep.records import Record
from data_prep.tasks._build import TASKS
from data_prep.tasks._prompts import ANSWER_WORD, Prompts

LANGS = ("ru", "kk", "zh", "en")
CLINICAL = {
    "ru": ("Головная боль, головокружение", "Гипертоническая болезнь II стадии", "I11.9", "Контроль АД ежедневно"),
    "kk": ("Бас ауруы, бас айналуы", "Артериялық гипертензия", "I10", "Қан қысымын күнде бақылау"),
    "zh": ("头痛、头晕三天", "高血压病2级", "I10", "每日监测血压"),
    "en": ("Headache and dizziness", "Essential hypertension", "I10", "Check blood pressure daily"),
}


def record(kind: str, lang: str, fields: dict, eval_only: bool = False) -> Record:
    return Record("f.jsonl", "f.jsonl:1", "p1", lang, fields, group="g1", kind=kind, eval_only=eval_only)


def roles(example) -> list[str]:
    return [m["role"] for m in example.messages]


@pytest.mark.parametrize("lang", LANGS)
def test_icd10_coding_and_plain_language(lang: str) -> None:
    complaints, diagnosis, code, advice = CLINICAL[lang]
    rec = record(
        "clinical",
        lang,
        {
            "complaints": complaints,
            "diagnosis": diagnosis,
            "icd10": code,
            "prescriptions": ["Эналаприл 10 мг"],
            "recommendations": advice,
        },
    )
    [coding] = TASKS["icd10_coding"](rec)
    assert coding.messages[-1]["content"] == f"{code} — {diagnosis}"
    assert complaints in coding.messages[1]["content"]
    [plain] = TASKS["plain_language"](rec)
    answer = plain.messages[-1]["content"]
    assert diagnosis in answer and advice in answer and "- Эналаприл 10 мг" in answer
    assert not TASKS["icd10_coding"](record("clinical", lang, {"diagnosis": diagnosis}))


@pytest.mark.parametrize("lang", LANGS)
def test_multiple_choice_and_qa_state_the_answer_the_same_way(lang: str) -> None:
    mc = record(
        "question",
        lang,
        {
            "qtype": "multiple_choice",
            "question": "Q?",
            "options": ["x", "y", "z"],
            "answer_index": 1,
            "explanation": "because",
        },
    )
    [example] = TASKS["multiple_choice"](mc)
    assert example.messages[-1]["content"].splitlines()[0] == f"{ANSWER_WORD[lang]}B) y"
    assert "A) x\nB) y\nC) z" in example.messages[1]["content"]
    yes_no = record("question", lang, {"qtype": "yes_no", "question": "Q?", "answer": "no"})
    [example] = TASKS["qa"](yes_no)
    assert example.messages[-1]["content"].startswith(ANSWER_WORD[lang])
    extractive = record(
        "question", lang, {"qtype": "extractive", "question": "Q?", "context": "ctx span", "answer": "span"}
    )
    [example] = TASKS["qa"](extractive)
    assert (
        example.messages[-1]["content"] == f"{ANSWER_WORD[lang]}span" and "ctx span" in example.messages[1]["content"]
    )


def test_unanswered_questions_are_evaluation_only_examples_without_an_answer() -> None:
    rec = record(
        "question", "ru", {"qtype": "multiple_choice", "question": "Q?", "options": ["a", "b"]}, eval_only=True
    )
    [example] = TASKS["multiple_choice"](rec)
    assert roles(example) == ["system", "user"] and example.meta["eval_only"] is True


@pytest.mark.parametrize("lang", LANGS)
def test_extraction_answers_json_with_every_category(lang: str) -> None:
    text = {
        "ru": "Жалобы на кашель. Диагноз: бронхит. Назначен амоксициллин.",
        "kk": "Жөтелге шағымданады. Диагнозы: бронхит. Амоксициллин тағайындалды.",
        "zh": "主诉咳嗽。诊断：支气管炎。给予阿莫西林。",
        "en": "Complains of cough. Diagnosis: bronchitis. Amoxicillin given.",
    }[lang]
    words = {
        "ru": ("кашель", "бронхит", "амоксициллин"),
        "kk": ("Жөтелге", "бронхит", "Амоксициллин"),
        "zh": ("咳嗽", "支气管炎", "阿莫西林"),
        "en": ("cough", "bronchitis", "Amoxicillin"),
    }[lang]
    entities = [
        {"label": label, "text": word, "codes": codes}
        for label, word, codes in zip(("Symptom", "Disease", "Drug"), words, ([], ["ICD10:J20"], []), strict=True)
    ]
    [example] = TASKS["extraction"](record("annotated", lang, {"text": text, "entities": entities}))
    answer = json.loads(example.messages[-1]["content"])
    assert answer == {
        "symptoms": [words[0]],
        "diagnoses": [{"text": words[1], "codes": ["ICD10:J20"]}],
        "drugs": [words[2]],
        "labs": [],
    }


@pytest.mark.parametrize("lang", LANGS)
def test_dialogue_continuation_alternates_and_ends_with_the_doctor(lang: str) -> None:
    turns = [
        {"role": "patient", "text": "p1"},
        {"role": "patient", "text": "p2"},
        {"role": "doctor", "text": "d1"},
        {"role": "patient", "text": "p3"},
        {"role": "doctor", "text": "d2"},
        {"role": "patient", "text": "bye"},
    ]
    [example] = TASKS["dialogue_continuation"](record("dialogue", lang, {"turns": turns, "description": "desc"}))
    assert roles(example) == ["system", "user", "assistant", "user", "assistant"]
    assert example.messages[1]["content"].endswith("desc\np1\np2") and example.messages[-1]["content"] == "d2"


def test_chat_passes_through_and_glossary_tasks() -> None:
    messages = [
        {"role": "user", "content": "Что такое ЧСС?"},
        {"role": "assistant", "content": "Частота сердечных сокращений."},
    ]
    [example] = TASKS["chat"](record("chat", "ru", {"messages": messages}))
    assert example.messages == messages
    term = record(
        "term",
        "kk",
        {
            "term": "Гипертензия",
            "english": "Hypertension",
            "icd10": "I10",
            "definition": "Қан қысымының тұрақты жоғарылауы.",
        },
    )
    to_en, to_kk = TASKS["term_translation"](term)
    assert (to_en.messages[-1]["content"], to_kk.messages[-1]["content"]) == ("Hypertension", "Гипертензия")
    [definition] = TASKS["term_definition"](term)
    assert definition.messages[-1]["content"] == (
        "Гипертензия — Қан қысымының тұрақты жоғарылауы (ағылш. Hypertension; АХЖ-10: I10)."
    )


def test_prompts_can_be_overridden_per_language_and_task() -> None:
    prompts = Prompts(system={"ru": "СИСТЕМА"}, tasks={"qa": {"ru": "ИНСТРУКЦИЯ"}})
    rec = record("question", "ru", {"qtype": "open", "question": "Q?", "answer": "A"})
    [example] = TASKS["qa"](rec, prompts)
    assert example.messages[0]["content"] == "СИСТЕМА" and example.messages[1]["content"].startswith("ИНСТРУКЦИЯ")
    [default] = TASKS["qa"](record("question", "kk", {"qtype": "open", "question": "Q?", "answer": "A"}), prompts)
    assert default.messages[0]["content"] != "СИСТЕМА"
