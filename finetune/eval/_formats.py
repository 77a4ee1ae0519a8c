"""The prompt and the right answer of one item, per suite format, with the field names public benchmarks use.

Each builder turns one JSON object into the parts of an `EvalItem`. The fields read (aliases in brackets) are
those of the public sets, so real benchmarks load by path:

- mcq:        question, options [option, choices] (dict label→text, list, MedMCQA's opa…ope, or top-level
              "1"…"9" keys), answer (label or option text) [answer_idx (MedQA letter), cop (MedMCQA, 1-based),
              answer_index (0-based)]
- yesno:      question, context (text or list) [contexts, CONTEXTS], answer [final_decision] in yes/no/maybe,
              да/нет, иә/жоқ, 是/否 — PubMedQA (also its {id: item} JSON) and RuMedDaNet
- icd10:      complaints [symptoms, text, question], code(s) [icd10, code, codes] — RuMedTop3-style
- extraction: text, entities: [{type, text|entity}] — CMeEE-style
- open_qa:    question [+ case/context], answer
- dialogue:   turns [dialogue, messages]: [{role|speaker, content|text}] or "speaker: text" lines; the last
              turn is the doctor's reply to predict
- safety:     prompt [question], category (dosing, emergency, …)
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from finetune.eval._answers import YES_NO_ALIASES, normalize_icd10, normalize_text
from finetune.eval._suite_files import SuiteError, require_field

KIND_OF_FORMAT = {
    "mcq": "mcq", "yesno": "yesno", "icd10": "icd10", "extraction": "extraction",
    "open_qa": "free_text", "dialogue": "free_text", "safety": "safety",
}
DEFAULT_LABELS = {"ru": "АБВГДЕЖ", "kk": "АБВГДЕЖ", "zh": "ABCDEFG", "en": "ABCDEFG"}

INSTRUCTIONS: dict[str, dict[str, str]] = {
    "mcq": {
        "ru": "Выберите один правильный ответ и напишите только букву варианта.",
        "kk": "Бір дұрыс жауапты таңдап, тек нұсқаның әрпін жазыңыз.",
        "zh": "请选择一个正确答案，只写出选项字母。",
        "en": "Choose the one correct answer and reply with the option's letter only.",
    },
    "yesno": {
        "ru": "Ответьте на вопрос по тексту одним словом: «да» или «нет».",
        "kk": "Мәтін бойынша сұраққа бір сөзбен жауап беріңіз: «иә» немесе «жоқ».",
        "zh": "请根据上文回答问题，只回答“是”或“否”。",
        "en": "Answer the question from the text with one word: yes or no.",
    },
    "yesno_maybe": {
        "ru": "Ответьте на вопрос по тексту одним словом: «да», «нет» или «возможно».",
        "kk": "Мәтін бойынша сұраққа бір сөзбен жауап беріңіз: «иә», «жоқ» немесе «мүмкін».",
        "zh": "请根据上文回答问题，只回答“是”、“否”或“可能”。",
        "en": "Answer the question from the text with one word: yes, no or maybe.",
    },
    "icd10": {
        "ru": "Определите код МКБ-10 по жалобам и данным пациента. Перечислите до трёх наиболее вероятных "
              "кодов, самый вероятный первым.",
        "kk": "Пациенттің шағымдары мен деректері бойынша АХЖ-10 кодын анықтаңыз. Ең ықтимал үш кодқа дейін "
              "жазыңыз, ең ықтималын бірінші көрсетіңіз.",
        "zh": "请根据患者的主诉和资料给出ICD-10编码。最多列出三个最可能的编码，最可能的放在第一位。",
        "en": "Give the ICD-10 code for this patient's complaints and findings. List up to three most likely "
              "codes, the most likely first.",
    },
    "extraction": {
        "ru": "Выделите из текста медицинские сущности типов: {types}. Ответьте только JSON-списком вида "
              '[{{"type": "тип", "text": "фрагмент текста"}}].',
        "kk": "Мәтіннен мына түрдегі медициналық атауларды бөліп алыңыз: {types}. Тек JSON тізімі түрінде жауап "
              'беріңіз: [{{"type": "түрі", "text": "мәтін үзіндісі"}}].',
        "zh": "请从文本中抽取以下类型的医学实体：{types}。只输出JSON列表，格式为"
              '[{{"type": "类型", "text": "原文片段"}}]。',
        "en": "Extract the medical entities of these types from the text: {types}. Reply with a JSON list only: "
              '[{{"type": "type", "text": "span of the text"}}].',
    },
}


def _mcq_options(obj: dict[str, Any], where: str, lang: str) -> dict[str, str]:
    raw = obj.get("options", obj.get("option", obj.get("choices")))
    if raw is None and "opa" in obj:
        raw = [obj[k] for k in ("opa", "opb", "opc", "opd", "ope") if obj.get(k) not in (None, "")]
    if raw is None and "1" in obj and "2" in obj:  # options as top-level "1", "2", … keys
        raw = {k: obj[k] for k in map(str, range(1, 10)) if obj.get(k) not in (None, "")}
    if isinstance(raw, list):
        if len(raw) > len(DEFAULT_LABELS[lang]):
            raise SuiteError(f"{where}: field 'options' has {len(raw)} options; at most {len(DEFAULT_LABELS[lang])}")
        raw = dict(zip(DEFAULT_LABELS[lang], raw, strict=False))
    if not isinstance(raw, dict) or len(raw) < 2:
        raise SuiteError(f"{where}: field 'options' must list at least two options (object label→text or list)")
    options = {str(label).strip(): value for label, value in raw.items()}
    for label, value in options.items():
        if not isinstance(value, str | int | float) or not str(value).strip():
            raise SuiteError(f"{where}: field 'options.{label}' must be non-empty text")
    return {label: str(value).strip() for label, value in options.items()}


def _mcq_answer(obj: dict[str, Any], where: str, options: dict[str, str]) -> str:
    labels = list(options)
    if "cop" in obj and "answer" not in obj:
        index, origin, name = obj["cop"], 1, "cop"
    elif "answer_index" in obj:
        index, origin, name = obj["answer_index"], 0, "answer_index"
    else:
        answer = str(require_field(obj, where, "answer_idx", "answer", kind=(str, int))).strip()
        for label in labels:
            if answer.upper() == label.upper():
                return label
        by_text = [label for label, text in options.items() if normalize_text(text) == normalize_text(answer)]
        if len(by_text) == 1:
            return by_text[0]
        raise SuiteError(f"{where}: field 'answer' is {answer!r}: neither an option label ({', '.join(labels)}) "
                         "nor the text of exactly one option")
    if not isinstance(index, int) or not origin <= index < len(labels) + origin:
        raise SuiteError(f"{where}: field {name!r} must be an option number from {origin} to "
                         f"{len(labels) + origin - 1}, got {index!r}")
    return labels[index - origin]


def _mcq(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    question = require_field(obj, where, "question", "Question")
    options = _mcq_options(obj, where, lang)
    gold = _mcq_answer(obj, where, options)
    lines = "\n".join(f"{label}) {text}" for label, text in options.items())
    content = f"{question.strip()}\n\n{lines}\n\n{INSTRUCTIONS['mcq'][lang]}"
    return {"prompt": [{"role": "user", "content": content}], "gold": gold, "options": options}


def _yesno(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    question = require_field(obj, where, "question", "QUESTION")
    context = obj.get("context", obj.get("contexts", obj.get("CONTEXTS")))
    if isinstance(context, list) and all(isinstance(c, str) for c in context):
        context = "\n".join(context)
    if context is not None and not isinstance(context, str):
        raise SuiteError(f"{where}: field 'context' must be text or a list of texts")
    answer = str(require_field(obj, where, "answer", "final_decision")).strip().casefold().rstrip(".")
    gold = YES_NO_ALIASES.get(answer)
    if gold is None:
        raise SuiteError(f"{where}: field 'answer' is {answer!r}; expected yes/no/maybe (or да/нет, иә/жоқ, 是/否)")
    body = f"{context.strip()}\n\n{question.strip()}" if context else question.strip()
    return {"prompt": [{"role": "user", "content": body}], "gold": gold}


def _icd10(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    complaints = require_field(obj, where, "complaints", "symptoms", "text", "question")
    codes = require_field(obj, where, "codes", "icd10", "code", kind=(str, list))
    codes = [codes] if isinstance(codes, str) else codes
    gold = [normalize_icd10(str(c)) for c in codes if str(c).strip()]
    if not gold:
        raise SuiteError(f"{where}: field 'code' holds no ICD-10 code")
    content = f"{INSTRUCTIONS['icd10'][lang]}\n\n{complaints.strip()}"
    return {"prompt": [{"role": "user", "content": content}], "gold": gold}


def _extraction(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    text = require_field(obj, where, "text")
    entities = require_field(obj, where, "entities", kind=list)
    gold = []
    for index, entity in enumerate(entities):
        if not isinstance(entity, dict):
            raise SuiteError(f"{where}: field 'entities[{index}]' must be an object with type and text")
        kind = require_field(entity, f"{where}: entities[{index}]", "type")
        span = require_field(entity, f"{where}: entities[{index}]", "text", "entity")
        gold.append((kind, span))
    return {"text": text.strip(), "gold": gold}


def _open_qa(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    question = require_field(obj, where, "question")
    case = obj.get("case", obj.get("context"))
    if case is not None and not isinstance(case, str):
        raise SuiteError(f"{where}: field 'case' must be text")
    content = f"{case.strip()}\n\n{question.strip()}" if case else question.strip()
    return {"prompt": [{"role": "user", "content": content}], "reference": require_field(obj, where, "answer").strip()}


USER_ROLES = {"user", "patient", "пациент", "науқас", "病人", "患者"}
ASSISTANT_ROLES = {"assistant", "doctor", "model", "врач", "доктор", "дәрігер", "医生"}


def _turn(turn: Any, where: str) -> dict[str, str]:
    if isinstance(turn, str):
        speaker, sep, text = turn.partition(":")
        if not sep:
            speaker, sep, text = turn.partition("：")
        turn = {"role": speaker, "content": text}
    if not isinstance(turn, dict):
        raise SuiteError(f"{where}: must be an object with role and content, or a 'speaker: text' line")
    role = str(turn.get("role", turn.get("speaker", ""))).strip().casefold()
    content = turn.get("content", turn.get("text"))
    if role in USER_ROLES:
        role = "user"
    elif role in ASSISTANT_ROLES:
        role = "assistant"
    else:
        raise SuiteError(f"{where}: role {role!r} is neither a patient/user nor a doctor/assistant")
    if not isinstance(content, str) or not content.strip():
        raise SuiteError(f"{where}: turn has no text")
    return {"role": role, "content": content.strip()}


def _dialogue(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    raw = require_field(obj, where, "turns", "dialogue", "messages", kind=list)
    turns = [_turn(t, f"{where}: turns[{i}]") for i, t in enumerate(raw)]
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or turns[0]["role"] != "user":
        raise SuiteError(f"{where}: field 'turns' must start with the patient and end with the doctor's reply")
    for previous, current in pairwise(turns):
        if previous["role"] == current["role"]:
            raise SuiteError(f"{where}: field 'turns': two {current['role']} turns in a row; roles must alternate")
    return {"prompt": turns[:-1], "reference": turns[-1]["content"]}


def _safety(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    prompt = require_field(obj, where, "prompt", "question")
    return {"prompt": [{"role": "user", "content": prompt.strip()}], "meta": {"category": obj.get("category", "")}}


BUILDERS = {
    "mcq": _mcq, "yesno": _yesno, "icd10": _icd10, "extraction": _extraction, "open_qa": _open_qa,
    "dialogue": _dialogue, "safety": _safety,
}


def finish_prompts(format_name: str, built: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Complete the prompts that depend on the whole suite, given each item's (lang, parts).

    Extraction asks for the entity types found anywhere in the suite; yes/no offers "maybe" only where some
    item's answer is "maybe".
    """
    if format_name == "extraction":
        types = sorted({kind for _, parts in built for kind, _ in parts["gold"]})
        for lang, parts in built:
            instruction = INSTRUCTIONS["extraction"][lang].format(types=", ".join(types))
            parts["prompt"] = [{"role": "user", "content": f"{instruction}\n\n{parts.pop('text')}"}]
    if format_name == "yesno":
        key = "yesno_maybe" if any(parts["gold"] == "maybe" for _, parts in built) else "yesno"
        for lang, parts in built:
            parts["prompt"][-1]["content"] += f"\n\n{INSTRUCTIONS[key][lang]}"
