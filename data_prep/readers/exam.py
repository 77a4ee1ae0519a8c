"""Exam and QA items: multiple choice, yes/no and extractive (SQuAD-style) questions.

Options come as a list, a dict keyed by letter or separate columns (A…E, opa…ope); the answer as
a letter, a 0-based index or the option's text. A question without an answer key is kept for
evaluation only, so that nothing guesses an answer and trains on it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prep.config import SourceConfig
from data_prep.readers.base import declared_lang, missing, read_rows, row_options, text_of
from data_prep.records import Record, Reject

LETTERS = string.ascii_uppercase
# fmt: off
QUESTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "question": ("question", "вопрос", "сұрақ", "问题", "题目", "stem", "query"),
    "options": ("options", "choices", "варианты", "варианты ответа", "нұсқалар", "жауап нұсқалары", "选项"),
    "answer": ("answer", "answer_idx", "answer_index", "correct", "correct_answer", "cop", "label", "ответ",
               "правильный ответ", "жауап", "дұрыс жауап", "答案", "正确答案", "final_decision"),
    "explanation": ("explanation", "exp", "rationale", "обоснование", "пояснение", "түсініктеме", "解析"),
    "context": ("context", "passage", "контекст", "мәтін", "上下文", "材料"),
}
# fmt: on
OPTION_COLUMNS = (tuple("ABCDEFGH"), ("opa", "opb", "opc", "opd", "ope"), tuple(f"option_{c}" for c in "abcdefgh"))
YES_NO: dict[str, str] = {
    "yes": "yes", "no": "no", "maybe": "maybe", "да": "yes", "нет": "no", "возможно": "maybe",
    "иә": "yes", "жоқ": "no", "мүмкін": "maybe", "是": "yes", "否": "no", "对": "yes", "错": "no", "可能": "maybe",
    "true": "yes", "false": "no",
}  # fmt: skip


def _options(obj: dict[str, Any]) -> list[str] | None:
    options = obj.get("options")
    if isinstance(options, dict):
        return [text_of(options[k]) for k in sorted(options, key=str)]
    if isinstance(options, list):
        return [text_of(o) for o in options]
    if isinstance(options, str) and options.strip().startswith(("[", "{")):
        import json

        try:
            return _options({"options": json.loads(options)})
        except ValueError:
            return None
    for columns in OPTION_COLUMNS:
        lower = {str(k).lower(): k for k in obj}
        present = [lower[c.lower()] for c in columns if c.lower() in lower and not missing(obj[lower[c.lower()]])]
        if len(present) >= 2:
            return [text_of(obj[c]) for c in present]
    return None


def _answer_index(answer: Any, options: list[str]) -> int | None:
    """Letter (``B``, ``b)``), 0-based index, or the option text itself → option index."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float) and float(answer).is_integer():
        return int(answer) if 0 <= int(answer) < len(options) else None
    text = text_of(answer)
    letter = re.fullmatch(r"\(?([A-Za-z])[).:]?", text)
    if letter and LETTERS.index(letter.group(1).upper()) < len(options):
        return LETTERS.index(letter.group(1).upper())
    if text.isdigit():
        return int(text) if int(text) < len(options) else None
    normalized = [re.sub(r"\s+", " ", o).strip().lower() for o in options]
    key = re.sub(r"\s+", " ", text).strip().lower()
    return normalized.index(key) if key in normalized else None


def _context(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("contexts"), list):
        return "\n".join(text_of(c) for c in value["contexts"])
    if isinstance(value, list):
        return "\n".join(text_of(c) for c in value)
    return text_of(value)


def instruction_item(obj: dict[str, Any]) -> dict[str, Any]:
    """An instruction row ({input, target, answer_choices}) as a question: multiple choice where the target is one
    of its choices, else an open question whose answer is the target (the input then lists the choices itself)."""
    choices = obj.get("answer_choices")
    item = {k: v for k, v in obj.items() if k not in ("input", "target", "answer_choices")}
    item["question"], item["answer"] = obj.get("input"), obj.get("target")
    if (
        isinstance(choices, list)
        and len(choices) >= 2
        and _answer_index(obj.get("target"), [text_of(c) for c in choices]) is not None
    ):
        item["options"] = choices
    item.setdefault("id", obj.get("sample_id"))
    return item


def question_record(source: str, location: str, obj: dict[str, Any], lang: str | None) -> Record | Reject:
    """One item as a question Record; unanswerable-by-key items are marked evaluation-only."""
    if "input" in obj and "target" in obj and "question" not in obj:
        obj = instruction_item(obj)
    question = text_of(obj.get("question"))
    if not question:
        return Reject(source, location, "missing_field", "question")
    fields: dict[str, Any] = {"question": question}
    context = _context(obj.get("context"))
    if context:
        fields["context"] = context
    if explanation := text_of(obj.get("explanation")):
        fields["explanation"] = explanation
    answer = obj.get("answer")
    answers = obj.get("answers")
    options = _options(obj)
    if options is not None:
        if len(options) < 2 or any(not o for o in options):
            return Reject(source, location, "invalid_field", "options")
        fields.update(qtype="multiple_choice", options=options)
        if not missing(answer):
            index = _answer_index(answer, options)
            if index is None:
                return Reject(source, location, "answer_not_in_options", "answer")
            fields["answer_index"] = index
    elif isinstance(answers, dict | list) and context:
        texts = (
            answers.get("text")
            if isinstance(answers, dict)
            else [text_of(a.get("text")) for a in answers if isinstance(a, dict)]
        )
        texts = [text_of(t) for t in texts or [] if text_of(t)]
        fields["qtype"] = "extractive"
        if texts:
            if texts[0] not in context:
                return Reject(source, location, "answer_not_in_context", "answers")
            fields["answer"] = texts[0]
    elif not missing(answer) and text_of(answer).lower() in YES_NO:
        fields.update(qtype="yes_no", answer=YES_NO[text_of(answer).lower()])
    else:
        fields["qtype"] = "extractive" if context and text_of(answer) and text_of(answer) in context else "open"
        if not missing(answer):
            fields["answer"] = text_of(answer)
    has_answer = "answer_index" in fields or "answer" in fields
    ident = text_of(obj.get("id")) or location.rsplit(":", 1)[-1]
    return Record(
        source=source,
        location=location,
        patient_id=f"{source}#{ident}",
        lang=declared_lang(obj, lang) or "auto",
        fields=fields,
        kind="question",
        eval_only=not has_answer,
    )


def _squad_items(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Questions of one SQuAD article ({title, paragraphs: [{context, qas}]}), with their path."""
    for p, paragraph in enumerate(obj.get("paragraphs") or []):
        for q, qa in enumerate((paragraph or {}).get("qas") or []):
            if isinstance(qa, dict):
                item = {**qa, "context": paragraph.get("context")}
                if qa.get("is_impossible"):
                    item["answers"] = []
                yield f"/paragraphs[{p}]/qas[{q}]", item


def read_exam(
    path: str | Path, lang: str | None = None, source: SourceConfig | None = None
) -> Iterator[Record | Reject]:
    """Stream exam/QA items from JSONL, JSON (arrays or SQuAD files), CSV, XLSX or Parquet."""
    path = Path(path)
    options = row_options(source)

    def convert(name: str, location: str, obj: dict[str, Any]) -> Record | Reject:
        return question_record(name, location, obj, lang)

    for item in read_rows(path, _Passthrough.convert, synonyms=QUESTION_SYNONYMS, **options):
        if isinstance(item, Reject):
            yield item
            continue
        location, obj = item.location, item.fields
        if "paragraphs" in obj and "question" not in obj:
            for suffix, qa in _squad_items(obj):
                yield convert(item.source, location + suffix, qa)
        else:
            yield convert(item.source, location, obj)


class _Passthrough:
    """Rows as they are, wrapped so read_rows' mapping and size checks apply before expansion."""

    @staticmethod
    def convert(name: str, location: str, obj: dict[str, Any]) -> Record:
        return Record(name, location, "", "", obj)
