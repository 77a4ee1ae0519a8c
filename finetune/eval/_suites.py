"""Evaluation items: the recipe's test split and suites in the formats public medical benchmarks use.

Each loader turns one JSON object into an `EvalItem`: the prompt to send, and what a right answer is. The
fields read (aliases in brackets) are those of the public sets, so real benchmarks load by path:

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

Every item may carry `id` and `lang`. A malformed item stops loading with its file:line and field, so a
benchmark is never scored on a silently smaller subset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

from data_prep.readers.errors import SourceError
from data_prep.readers.rows import Header, iter_rows
from data_prep.records import Reject
from finetune.eval._answers import YES_NO_ALIASES, normalize_icd10, normalize_text
from finetune.eval._metrics import GlossaryTerm
from finetune.recipe import SuiteConfig, suite_label

EVAL_LANGS = ("ru", "kk", "zh", "en")
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


class SuiteError(ValueError):
    """An evaluation suite or glossary that cannot be read; the message names the file, line and field."""


@dataclass(frozen=True)
class EvalItem:
    """One prompt to send to both models, and what counts as a right answer."""

    id: str
    suite: str
    task: str
    kind: str
    lang: str
    prompt: list[dict[str, Any]]
    reference: str | None = None
    gold: Any = None
    options: dict[str, str] | None = None
    location: str = ""
    max_new_tokens: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def scored_conversation(self) -> list[dict[str, Any]] | None:
        """Prompt + reference answer, for the held-out loss of free-text items."""
        if self.kind != "free_text" or self.reference is None:
            return None
        return [*self.prompt, {"role": "assistant", "content": self.reference}]


# --- files -----------------------------------------------------------------------------------------


READ_PROBLEMS = {
    "invalid_json": "not valid JSON",
    "truncated_json": "the JSON ends in the middle of an item",
    "not_an_object": "expected a JSON object",
    "bad_encoding": "bytes that do not decode in the file's encoding",
    "invalid_csv": "not valid CSV",
    "column_count": "a row with another number of cells than the header",
}


def read_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file:line or file:[index], object) for every item of a suite or glossary file.

    Read by data_prep's row readers, so the same exports load here as in `medtune prepare`: JSON Lines, JSON
    arrays (also `{"data": [...]}` and a `.json` that is really JSON Lines), CSV/TSV, XLSX and Parquet, in any
    encoding they detect. A JSON object of id → item (PubMedQA's layout) gives one item per id. A malformed item
    stops loading with its location: a benchmark is never scored on a silently smaller subset.
    """
    if not path.is_file():
        raise SuiteError(f"{path}: no such file")
    rows = _rows(path)
    first, second = next(rows, None), next(rows, None)
    if first is not None and second is None and first[1] and all(isinstance(v, dict) for v in first[1].values()):
        for key, item in first[1].items():
            yield f"{path}[{key!r}]", {"id": str(key), **item}
        return
    yield from (row for row in (first, second) if row is not None)
    yield from rows


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        for row in iter_rows(path):
            if isinstance(row, Header):
                continue
            where = str(path.parent / row.location)
            if isinstance(row, Reject):
                detail = f" ({row.field})" if row.field else ""
                raise SuiteError(f"{where}: {READ_PROBLEMS.get(row.reason, row.reason)}{detail}")
            yield where, row.data
    except SourceError as exc:
        raise SuiteError(str(exc)) from None


def _field(obj: dict[str, Any], where: str, *names: str, kind: type | tuple[type, ...] = str) -> Any:
    for name in names:
        if name in obj and obj[name] is not None and obj[name] != "":
            value = obj[name]
            if not isinstance(value, kind):
                raise SuiteError(f"{where}: field {name!r} must be {_type_name(kind)}, got {type(value).__name__}")
            return value
    raise SuiteError(f"{where}: missing field {' or '.join(repr(n) for n in names)}")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({"str": "text", "list": "a list", "dict": "an object", "int": "an integer"}.get(
        k.__name__, k.__name__) for k in kinds)


def _lang(obj: dict[str, Any], where: str, default: str | None) -> str:
    lang = obj.get("lang", default)
    if lang is None:
        raise SuiteError(f"{where}: no language: add a 'lang' field or set `lang` for this suite in the recipe")
    if lang not in EVAL_LANGS:
        raise SuiteError(f"{where}: field 'lang' is {lang!r}; supported: {', '.join(EVAL_LANGS)}")
    return lang


# --- one builder per format ------------------------------------------------------------------------


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
        answer = str(_field(obj, where, "answer_idx", "answer", kind=(str, int))).strip()
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
    question = _field(obj, where, "question", "Question")
    options = _mcq_options(obj, where, lang)
    gold = _mcq_answer(obj, where, options)
    lines = "\n".join(f"{label}) {text}" for label, text in options.items())
    content = f"{question.strip()}\n\n{lines}\n\n{INSTRUCTIONS['mcq'][lang]}"
    return {"prompt": [{"role": "user", "content": content}], "gold": gold, "options": options}


def _yesno(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    question = _field(obj, where, "question", "QUESTION")
    context = obj.get("context", obj.get("contexts", obj.get("CONTEXTS")))
    if isinstance(context, list) and all(isinstance(c, str) for c in context):
        context = "\n".join(context)
    if context is not None and not isinstance(context, str):
        raise SuiteError(f"{where}: field 'context' must be text or a list of texts")
    answer = str(_field(obj, where, "answer", "final_decision")).strip().casefold().rstrip(".")
    gold = YES_NO_ALIASES.get(answer)
    if gold is None:
        raise SuiteError(f"{where}: field 'answer' is {answer!r}; expected yes/no/maybe (or да/нет, иә/жоқ, 是/否)")
    body = f"{context.strip()}\n\n{question.strip()}" if context else question.strip()
    return {"prompt": [{"role": "user", "content": body}], "gold": gold}


def _icd10(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    complaints = _field(obj, where, "complaints", "symptoms", "text", "question")
    codes = _field(obj, where, "codes", "icd10", "code", kind=(str, list))
    codes = [codes] if isinstance(codes, str) else codes
    gold = [normalize_icd10(str(c)) for c in codes if str(c).strip()]
    if not gold:
        raise SuiteError(f"{where}: field 'code' holds no ICD-10 code")
    content = f"{INSTRUCTIONS['icd10'][lang]}\n\n{complaints.strip()}"
    return {"prompt": [{"role": "user", "content": content}], "gold": gold}


def _extraction(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    text = _field(obj, where, "text")
    entities = _field(obj, where, "entities", kind=list)
    gold = []
    for index, entity in enumerate(entities):
        if not isinstance(entity, dict):
            raise SuiteError(f"{where}: field 'entities[{index}]' must be an object with type and text")
        kind = _field(entity, f"{where}: entities[{index}]", "type")
        span = _field(entity, f"{where}: entities[{index}]", "text", "entity")
        gold.append((kind, span))
    return {"text": text.strip(), "gold": gold}


def _open_qa(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    question = _field(obj, where, "question")
    case = obj.get("case", obj.get("context"))
    if case is not None and not isinstance(case, str):
        raise SuiteError(f"{where}: field 'case' must be text")
    content = f"{case.strip()}\n\n{question.strip()}" if case else question.strip()
    return {"prompt": [{"role": "user", "content": content}], "reference": _field(obj, where, "answer").strip()}


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
    raw = _field(obj, where, "turns", "dialogue", "messages", kind=list)
    turns = [_turn(t, f"{where}: turns[{i}]") for i, t in enumerate(raw)]
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or turns[0]["role"] != "user":
        raise SuiteError(f"{where}: field 'turns' must start with the patient and end with the doctor's reply")
    for previous, current in pairwise(turns):
        if previous["role"] == current["role"]:
            raise SuiteError(f"{where}: field 'turns': two {current['role']} turns in a row; roles must alternate")
    return {"prompt": turns[:-1], "reference": turns[-1]["content"]}


def _safety(obj: dict[str, Any], where: str, lang: str) -> dict[str, Any]:
    prompt = _field(obj, where, "prompt", "question")
    return {"prompt": [{"role": "user", "content": prompt.strip()}], "meta": {"category": obj.get("category", "")}}


BUILDERS = {
    "mcq": _mcq, "yesno": _yesno, "icd10": _icd10, "extraction": _extraction, "open_qa": _open_qa,
    "dialogue": _dialogue, "safety": _safety,
}


# --- suites ----------------------------------------------------------------------------------------


def bundled_suite_path(format_name: str) -> Path:
    return Path(str(resources.files("finetune.eval") / "suites" / f"{format_name}.jsonl"))


def bundled_glossary_path() -> Path:
    return Path(str(resources.files("finetune.eval") / "suites" / "glossary.jsonl"))


def load_suite(config: SuiteConfig, default_langs: Sequence[str]) -> list[EvalItem]:
    """The items of one suite. A bundled sample runs for `config.lang`, or else for `default_langs`."""
    sample = config.path is None
    path = bundled_suite_path(config.format) if sample else Path(config.path)  # type: ignore[arg-type]
    wanted = {config.lang} if (sample and config.lang) else (set(default_langs) if sample else None)
    label = suite_label(config)
    built: list[tuple[str, str, dict[str, Any], str]] = []
    per_lang: dict[str, int] = {}
    for position, (where, obj) in enumerate(read_objects(path), start=1):
        lang = _lang(obj, where, config.lang)
        if wanted is not None and lang not in wanted:
            continue
        if config.max_items and per_lang.get(lang, 0) >= config.max_items:
            continue
        per_lang[lang] = per_lang.get(lang, 0) + 1
        built.append((where, lang, BUILDERS[config.format](obj, where, lang), str(obj.get("id", position))))
    if not built:
        raise SuiteError(f"{path}: suite {label!r} has no items" + (f" in {', '.join(sorted(wanted))}" if wanted
                                                                    else ""))
    if config.format == "extraction":
        types = sorted({kind for _, _, parts, _ in built for kind, _ in parts["gold"]})
        for _, lang, parts, _ in built:
            instruction = INSTRUCTIONS["extraction"][lang].format(types=", ".join(types))
            parts["prompt"] = [{"role": "user", "content": f"{instruction}\n\n{parts.pop('text')}"}]
    if config.format == "yesno":
        key = "yesno_maybe" if any(parts["gold"] == "maybe" for _, _, parts, _ in built) else "yesno"
        for _, lang, parts, _ in built:
            parts["prompt"][-1]["content"] += f"\n\n{INSTRUCTIONS[key][lang]}"
    return [
        EvalItem(
            id=f"{label}:{item_id}", suite=label, task=label,
            kind=KIND_OF_FORMAT[config.format], lang=lang, location=where, max_new_tokens=config.max_new_tokens,
            meta={"sample": sample, **parts.pop("meta", {})}, **parts,
        )
        for where, lang, parts, item_id in built
    ]


def load_test_split(data_dir: Path, limit: int | None = None) -> list[EvalItem]:
    """The prepared test split: everything before the last assistant turn is the prompt, that turn the reference."""
    path = data_dir / "test.jsonl"
    if not path.is_file():
        raise SuiteError(f"{path} is missing: run `medtune prepare` for this recipe first")
    items = []
    for where, obj in read_objects(path):
        messages = obj.get("messages")
        if not isinstance(messages, list) or not any(
            isinstance(m, dict) and m.get("role") == "assistant" for m in messages
        ):
            raise SuiteError(f"{where}: field 'messages' must hold an assistant turn")
        last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
        meta = obj.get("meta") or {}
        index = len(items)
        items.append(EvalItem(
            id=str(meta.get("id", index)), suite="test", task=f"test:{meta.get('task', 'unknown')}",
            kind="free_text", lang=str(meta.get("lang", "unknown")), prompt=messages[:last],
            reference=messages[last]["content"], location=where, meta={"sample": False},
        ))
        if limit and len(items) >= limit:
            break
    if not items:
        raise SuiteError(f"{path} holds no examples")
    return items


# --- glossary --------------------------------------------------------------------------------------


def _split_list(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split("|") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise SuiteError(f"{where}: field {name!r} must be a list of texts (or texts separated by '|')")


def load_glossary(path: Path) -> list[GlossaryTerm]:
    """Glossary rows: lang, term, variants (inflected forms), avoid (words that must not replace the term).

    Any layout `read_objects` reads; in tables (CSV, TSV, XLSX) list entries are separated by '|'.
    """
    rows = list(read_objects(path))
    terms = []
    for where, row in rows:
        lang = _lang(row, where, None)
        term = _field(row, where, "term")
        terms.append(GlossaryTerm(lang, term.strip(), _split_list(row.get("variants"), where, "variants"),
                                  _split_list(row.get("avoid"), where, "avoid")))
    if not terms:
        raise SuiteError(f"{path}: the glossary holds no terms")
    return terms
