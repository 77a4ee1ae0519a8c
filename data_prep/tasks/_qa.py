"""Question tasks: multiple choice and QA (yes/no, extractive, open), answers always stated one way.

A consistent answer line ("Ответ: B) …", "答案：是") is what lets an evaluation score the model by
reading one line, and what the model learns to produce; explanations, when the source has them,
follow on the next line.
"""

from __future__ import annotations

import string

from data_prep.records import ChatExample, Record
from data_prep.tasks._examples import make_example
from data_prep.tasks._prompts import ANSWER_WORD, BUILT_IN, Prompts

YES_NO_WORDS: dict[str, dict[str, str]] = {
    "ru": {"yes": "да", "no": "нет", "maybe": "возможно"},
    "kk": {"yes": "иә", "no": "жоқ", "maybe": "мүмкін"},
    "zh": {"yes": "是", "no": "否", "maybe": "可能"},
    "en": {"yes": "yes", "no": "no", "maybe": "maybe"},
}
CONTEXT_LABEL = {"ru": "Текст", "kk": "Мәтін", "zh": "文本", "en": "Text"}
QUESTION_LABEL = {"ru": "Вопрос", "kk": "Сұрақ", "zh": "问题", "en": "Question"}
EXPLANATION_LABEL = {"ru": "Пояснение", "kk": "Түсініктеме", "zh": "解析", "en": "Explanation"}


def _colon(lang: str) -> str:
    return "：" if lang == "zh" else ": "


def _stop(lang: str) -> str:
    return "。" if lang == "zh" else "."


def option_line(index: int, text: str) -> str:
    return f"{string.ascii_uppercase[index]}) {text}"


def _prompt(record: Record, task: str, prompts: Prompts | None, with_options: bool) -> str:
    fields, lang = record.fields, record.lang
    colon = _colon(lang)
    parts = [(prompts or BUILT_IN).instruction(task, lang)]
    if context := fields.get("context"):
        parts.append(f"{CONTEXT_LABEL[lang]}{colon}{context}")
    parts.append(f"{QUESTION_LABEL[lang]}{colon}{fields['question']}")
    if with_options:
        parts.append("\n".join(option_line(i, o) for i, o in enumerate(fields["options"])))
    return "\n\n".join(parts)


def _with_explanation(answer: str, record: Record) -> str:
    explanation = record.fields.get("explanation")
    if not explanation:
        return answer
    return f"{answer}\n{EXPLANATION_LABEL[record.lang]}{_colon(record.lang)}{explanation}"


def multiple_choice(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Question and lettered options in; ``Ответ: B) text`` out (no answer: evaluation only)."""
    if record.fields.get("qtype") != "multiple_choice":
        return []
    user = _prompt(record, "multiple_choice", prompts, with_options=True)
    index = record.fields.get("answer_index")
    if index is None:
        return [make_example(record, "multiple_choice", user, None, prompts=prompts)]
    answer = ANSWER_WORD[record.lang] + option_line(index, record.fields["options"][index])
    return [make_example(record, "multiple_choice", user, _with_explanation(answer, record), prompts=prompts)]


def qa(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Yes/no, extractive and open questions; yes/no and extractive answers start with the answer word."""
    qtype = record.fields.get("qtype")
    if qtype not in ("yes_no", "extractive", "open"):
        return []
    user = _prompt(record, "qa", prompts, with_options=False)
    answer = record.fields.get("answer")
    if answer is None:
        return [make_example(record, "qa", user, None, prompts=prompts)]
    if qtype == "yes_no":
        answer = ANSWER_WORD[record.lang] + YES_NO_WORDS[record.lang][answer] + _stop(record.lang)
    elif qtype == "extractive":
        answer = ANSWER_WORD[record.lang] + answer
    return [make_example(record, "qa", user, _with_explanation(answer, record), prompts=prompts)]
