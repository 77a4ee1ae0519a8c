"""Tasks over annotated text, dialogues, existing chats and glossary terms."""

from __future__ import annotations

import json
import re
from typing import Any

from data_prep.records import ChatExample, Record
from data_prep.tasks._examples import example_meta, make_example
from data_prep.tasks._prompts import BUILT_IN, Prompts

CATEGORIES: tuple[str, ...] = ("symptoms", "diagnoses", "drugs", "labs")
LABEL_HINTS: dict[str, tuple[str, ...]] = {
    "symptoms": ("symptom", "sign", "complaint", "симптом", "жалоб", "признак", "белгі", "症状", "体征"),
    "diagnoses": ("disease", "diagnos", "disorder", "problem", "condition", "заболев", "диагноз", "болезн",
                  "ауру", "疾病", "诊断"),
    "drugs": ("drug", "medic", "chemical", "препарат", "лекарств", "дәрі", "药"),
    "labs": ("lab", "test", "analys", "measure", "анализ", "показател", "талдау", "检验", "检查"),
}  # fmt: skip


def entity_category(label: str, overrides: dict[str, str] | None = None) -> str | None:
    """The extraction category of a BRAT label: the recipe's mapping first, else a guess from its name."""
    if overrides and label in overrides:
        found = overrides[label]
        return None if found == "ignore" else found
    lower = label.lower()
    for category, hints in LABEL_HINTS.items():
        if any(hint in lower for hint in hints):
            return category
    return None


def extraction_answer(entities: list[dict[str, Any]], overrides: dict[str, str] | None = None) -> str:
    """JSON with every category present (possibly empty), entities in text order, codes when normalised."""
    found: dict[str, list[Any]] = {c: [] for c in CATEGORIES}
    for entity in entities:
        category = entity_category(entity["label"], overrides)
        if category is None:
            continue
        item: Any = entity["text"]
        if entity.get("codes"):
            item = {"text": entity["text"], "codes": entity["codes"]}
        if item not in found[category]:
            found[category].append(item)
    return json.dumps(found, ensure_ascii=False)


def extraction(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Annotated text in, the annotated entities as JSON out; entities lost to redaction are left out."""
    text = record.fields.get("text", "")
    entities = [e for e in record.fields.get("entities", []) if e.get("text") and e["text"] in text]
    if not entities:
        return []
    overrides = record.fields.get("entity_types") or None
    user = f"{(prompts or BUILT_IN).instruction('extraction', record.lang)}\n\n{text}"
    return [make_example(record, "extraction", user, extraction_answer(entities, overrides), prompts=prompts)]


def dialogue_continuation(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """The consultation as alternating turns, patient as user and doctor as assistant, ending on the doctor.

    Consecutive turns of one speaker are joined; the description (the patient's written question)
    opens the first user turn; a doctor who speaks first answers the instruction.
    """
    prompts = prompts or BUILT_IN
    turns = list(record.fields.get("turns") or [])
    while turns and turns[-1]["role"] != "doctor":
        turns.pop()
    if not turns:
        return []
    opening = prompts.instruction("dialogue_continuation", record.lang)
    if description := record.fields.get("description"):
        opening = f"{opening}\n\n{description}"
    messages = [{"role": "system", "content": prompts.system_prompt(record.lang)}]
    messages.append({"role": "user", "content": opening})
    for turn in turns:
        role = "assistant" if turn["role"] == "doctor" else "user"
        if messages[-1]["role"] == role:
            messages[-1]["content"] += "\n" + turn["text"]
        else:
            messages.append({"role": role, "content": turn["text"]})
    return [ChatExample(messages=messages, meta=example_meta(record, "dialogue_continuation"))]


def chat(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """An existing conversation as it is (already validated and role-mapped by the reader)."""
    messages = [dict(m) for m in record.fields.get("messages") or []]
    if not messages or messages[-1]["role"] != "assistant":
        return []
    return [ChatExample(messages=messages, meta=example_meta(record, "chat"))]


LANG_NAMES: dict[str, dict[str, str]] = {
    "ru": {"en": "английский", "ru": "русский", "kk": "казахский", "zh": "китайский"},
    "kk": {"en": "ағылшын тіліне", "ru": "орыс тіліне", "kk": "қазақ тіліне", "zh": "қытай тіліне"},
    "zh": {"en": "英文", "ru": "俄文", "kk": "哈萨克文", "zh": "中文"},
    "en": {"en": "English", "ru": "Russian", "kk": "Kazakh", "zh": "Chinese"},
}
INTO = {"ru": "Язык перевода: {0}.", "kk": "Аударма тілі: {0}.", "zh": "目标语言：{0}。", "en": "Into: {0}."}
ICD_LABEL = {"ru": "МКБ-10", "kk": "АХЖ-10", "zh": "ICD-10", "en": "ICD-10"}
ENGLISH_LABEL = {"ru": "англ.", "kk": "ағылш.", "zh": "英文", "en": "English"}


def term_translation(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Local term → English term, and back: two examples per glossary row that has an English term."""
    fields, lang = record.fields, record.lang
    english = fields.get("english")
    if not english or lang == "en":
        return []
    instruction = (prompts or BUILT_IN).instruction("term_translation", lang)
    to_en = f"{instruction} {INTO[lang].format(LANG_NAMES[lang]['en'])}\n\n{fields['term']}"
    to_local = f"{instruction} {INTO[lang].format(LANG_NAMES[lang][lang])}\n\n{english}"
    return [
        make_example(record, "term_translation", to_en, english, 0, prompts),
        make_example(record, "term_translation", to_local, fields["term"], 1, prompts),
    ]


def term_definition(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Term in; ``term — definition (English; ICD-10)`` out, for rows with a definition."""
    fields, lang = record.fields, record.lang
    definition = fields.get("definition")
    if not definition:
        return []
    notes = []
    if fields.get("english") and lang != "en":
        notes.append(f"{ENGLISH_LABEL[lang]} {fields['english']}")
    if fields.get("icd10"):
        notes.append(f"{ICD_LABEL[lang]}: {fields['icd10']}")
    answer = f"{fields['term']} — {definition.rstrip()}"
    if notes:
        answer = re.sub(r"[.。]$", "", answer)
        answer += f"（{'；'.join(notes)}）" if lang == "zh" else f" ({'; '.join(notes)})."
    user = f"{(prompts or BUILT_IN).instruction('term_definition', lang)}\n\n{fields['term']}"
    return [make_example(record, "term_definition", user, answer, prompts=prompts)]
