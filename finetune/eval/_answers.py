"""Reading a model's free-form answer as an option letter, yes/no, ICD-10 codes or extracted entities.

Models rarely answer "B" and stop: they write "Ответ: Б", "答案是C", "Дұрыс жауап — В) ...", repeat the option
text, or reason first and conclude at the end. Each parser returns None when it cannot tell, so the report can
count unparseable answers instead of silently scoring them as wrong guesses.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence

# Letters that look the same in Latin and Cyrillic: a label written in the "other" alphabet is the same label.
_CYRILLIC_TO_LATIN = str.maketrans("АВСЕНКМОРТХаеос", "ABCEHKMOPTXaeoc")
_LATIN_TO_CYRILLIC = str.maketrans("ABCEHKMOPTX", "АВСЕНКМОРТХ")
# ICD-10 codes typed with Cyrillic look-alikes (К29.7, І10) are common in Russian and Kazakh records.
_ICD_HOMOGLYPHS = str.maketrans("АВСЕНКМОРТХІУЅЈ", "ABCEHKMOPTXIYSJ")

# Phrases after which a model states its final choice, per language. The label follows within a few characters.
ANSWER_MARKERS = (
    r"(?:correct\s+|final\s+|the\s+)?answer(?:\s+is)?|correct\s+option(?:\s+is)?|option",
    r"(?:правильный\s+|верный\s+|итоговый\s+)?ответ(?:\s+[-—–])?|правильн\w*\s+вариант\w*|вариант",
    r"(?:дұрыс\s+)?жауа(?:п|бы)|дұрыс\s+нұсқа(?:сы)?|нұсқа(?:сы)?",
    r"(?:正确|最佳)?答案(?:应该)?(?:是|为)?|正确选项(?:是|为)?|选项|应选|选择|选",
)
_MARKER = "|".join(f"(?:{m})" for m in ANSWER_MARKERS)
_SEPARATORS = r"[\s:：\-—–=是为«»\"'“”()\[\]（）【】*]*"

YES_WORDS = {"en": ("yes",), "ru": ("да",), "kk": ("иә", "ия"), "zh": ("是", "是的", "对", "正确")}
NO_WORDS = {"en": ("no",), "ru": ("нет",), "kk": ("жоқ", "жок"), "zh": ("否", "不是", "不对", "不正确", "不")}
MAYBE_WORDS = {"en": ("maybe",), "ru": ("возможно",), "kk": ("мүмкін",), "zh": ("可能", "也许", "不确定")}
YES_NO_ALIASES: dict[str, str] = {
    **{w: "yes" for words in YES_WORDS.values() for w in words},
    **{w: "no" for words in NO_WORDS.values() for w in words},
    **{w: "maybe" for words in MAYBE_WORDS.values() for w in words},
}

ICD10_PATTERN = re.compile(r"(?<![A-Za-z0-9])([A-Z])(\d{2})(?:\.(\d{1,2}[A-Z0-9]?))?(?![0-9])")


def normalize_text(text: str) -> str:
    """NFKC, casefold, ё→е and collapsed whitespace: the comparison form for option texts and entities."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return re.sub(r"\s+", " ", text).strip(" \t\n.,;:!?。，；：！？\"'«»“”()（）[]【】")


def _label_pattern(labels: Sequence[str]) -> str:
    variants: set[str] = set()
    for label in labels:
        variants.update({label, label.translate(_CYRILLIC_TO_LATIN), label.translate(_LATIN_TO_CYRILLIC)})
        variants.update({v.lower() for v in set(variants) if len(v) == 1 and not v.isdigit()})
    return "|".join(sorted((re.escape(v) for v in variants), key=len, reverse=True))


def _to_label(found: str, labels: Sequence[str]) -> str | None:
    """Map what the model wrote back to one of the item's labels, across case and Latin/Cyrillic look-alikes."""
    for candidate in (found, found.upper()):
        if candidate in labels:
            return candidate
        for label in labels:
            if candidate.translate(_CYRILLIC_TO_LATIN) == label.translate(_CYRILLIC_TO_LATIN):
                return label
    return None


_CYRILLIC_LOWER = "а-яёәғқңөұүһі"


def _is_a_word(body: str, end: int, found: str) -> bool:
    """A Cyrillic label followed by a lower-case word is a preposition or conjunction ("В данном случае")."""
    return bool(re.match(r"[А-ЯЁа-яёӘҒҚҢӨҰҮҺІәғқңөұүһі]", found)) and bool(
        re.match(rf"\s+[{_CYRILLIC_LOWER}]", body[end:])
    )


def parse_choice(text: str, options: Mapping[str, str]) -> str | None:
    """The option label a multiple-choice answer settles on, or None when it cannot be told.

    Tried in order: the last explicit answer phrase ("ответ: Б", "答案是C", "Жауабы: В"); an answer that is only
    a label ("Б", "(C)", "**B.**"); a label opening the answer ("B) ..."); exactly one option text quoted;
    exactly one label written as "Б)" or "(Б)" somewhere.
    """
    labels = list(options)
    if not text or not labels:
        return None
    body = unicodedata.normalize("NFKC", text).replace("*", "").strip()
    label_re = _label_pattern(labels)

    marked = [
        match
        for match in re.finditer(rf"(?:{_MARKER}){_SEPARATORS}({label_re})(?![^\W\d_])", body, flags=re.IGNORECASE)
        if not _is_a_word(body, match.end(), match.group(1))
    ]
    for match in reversed(marked):
        if (label := _to_label(match.group(1), labels)) is not None:
            return label

    only = re.fullmatch(rf"[\s(\[（【]*({label_re})[\s)\]）】.:：。]*", body)
    if only and (label := _to_label(only.group(1), labels)) is not None:
        return label

    opening = re.match(rf"[\s(\[（【]*({label_re})\s*[)\]）】.:：、]", body)
    if opening and (label := _to_label(opening.group(1), labels)) is not None:
        return label

    normalized = normalize_text(body)
    texts = {label: normalize_text(option) for label, option in options.items()}
    quoted = [label for label, option in texts.items() if option and option in normalized]
    # An option text inside another ("КТ" in "КТ и МРТ") does not count as a second answer.
    quoted = [a for a in quoted if not any(a != b and texts[a] in texts[b] for b in quoted)]
    if len(quoted) == 1:
        return quoted[0]

    written = {
        label
        for found in re.findall(rf"(?:^|[\s(（\[])\(?({label_re})[)）\]]", body, flags=re.MULTILINE)
        if (label := _to_label(found, labels)) is not None
    }
    if len(written) == 1:
        return written.pop()
    return None


def _is_cjk(text: str) -> bool:
    return bool(re.match(r"[\u4e00-\u9fff]", text))


def parse_yes_no(text: str) -> str | None:
    """"yes", "no" or "maybe" from an answer in en/ru/kk/zh, or None.

    An explicit answer phrase wins; then the word the answer opens with; then, for alphabetic languages, yes/no
    words anywhere when only one kind is present. Chinese 是 and 不 are everywhere in ordinary sentences, so they
    count only where the answer opens with them or after an answer phrase.
    """
    if not text:
        return None
    body = unicodedata.normalize("NFKC", text).replace("*", "").strip().casefold()
    words = sorted(YES_NO_ALIASES, key=len, reverse=True)
    alternatives = "|".join(re.escape(w) for w in words)

    def standalone(match: re.Match[str]) -> bool:
        return _is_cjk(match.group(1)) or not re.match(r"[^\W\d_]", body[match.end() : match.end() + 1])

    marked = [m for m in re.finditer(rf"(?:{_MARKER}){_SEPARATORS}({alternatives})", body) if standalone(m)]
    if marked:
        return YES_NO_ALIASES[marked[-1].group(1)]
    opening = re.match(rf"[\s\"'«“(]*({alternatives})", body)
    if opening and standalone(opening):
        return YES_NO_ALIASES[opening.group(1)]
    alphabetic = "|".join(re.escape(w) for w in words if not _is_cjk(w))
    kinds = {YES_NO_ALIASES[m] for m in re.findall(rf"(?<![^\W\d_])({alphabetic})(?![^\W\d_])", body)}
    if len(kinds) == 1:
        return kinds.pop()
    return None


def normalize_icd10(code: str) -> str:
    """Upper case, Latin letters, no spaces: "к 29.7" and "K29.7" are the same code."""
    code = unicodedata.normalize("NFKC", code).upper().translate(_ICD_HOMOGLYPHS)
    return re.sub(r"\s+", "", code)


def parse_icd10_codes(text: str) -> list[str]:
    """ICD-10 codes in the order the answer gives them (first = the model's top choice), without repeats."""
    body = unicodedata.normalize("NFKC", text or "").upper().translate(_ICD_HOMOGLYPHS)
    codes: list[str] = []
    for letter, digits, sub in ICD10_PATTERN.findall(body):
        code = f"{letter}{digits}" + (f".{sub}" if sub else "")
        if code not in codes:
            codes.append(code)
    return codes


def icd10_matches(predicted: str, gold: str, level: str = "code") -> bool:
    """Whether a predicted code counts as the gold one.

    level "code": the gold code itself or a subcode of it (gold I10 accepts I10 and I10.0; gold J18.9 only
    J18.9); level "category": the same three-character category (J18.0 for J18.9).
    """
    predicted, gold = normalize_icd10(predicted), normalize_icd10(gold)
    if level == "category":
        return predicted[:3] == gold[:3]
    return predicted == gold or ("." not in gold and predicted.startswith(gold + "."))


def _json_candidates(text: str) -> list[str]:
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.DOTALL)
    candidates = [c.strip() for c in fenced]
    stripped = text.strip()
    candidates.append(stripped)
    for opener, closer in (("[", "]"), ("{", "}")):
        start, end = stripped.find(opener), stripped.rfind(closer)
        if 0 <= start < end:
            candidates.append(stripped[start : end + 1])
    return candidates


def parse_entities(text: str) -> list[tuple[str, str]] | None:
    """(type, text) pairs from a JSON answer, or None when no valid JSON of an accepted shape is found.

    Accepted: a list of {"type": ..., "text"|"entity": ...} objects, {"entities": [...]} around such a list, or
    an object mapping each type to a list of strings. Markdown code fences and prose around the JSON are ignored.
    """
    for candidate in _json_candidates(text or ""):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        entities = _entities_from(data)
        if entities is not None:
            return entities
    return None


def _entities_from(data: object) -> list[tuple[str, str]] | None:
    if isinstance(data, dict) and isinstance(data.get("entities"), list):
        data = data["entities"]
    if isinstance(data, list):
        pairs = []
        for entry in data:
            if not isinstance(entry, dict):
                return None
            kind, span = entry.get("type"), entry.get("text", entry.get("entity"))
            if not isinstance(kind, str) or not isinstance(span, str):
                return None
            pairs.append((kind, span))
        return pairs
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        pairs = []
        for kind, spans in data.items():
            if not all(isinstance(s, str) for s in spans):
                return None
            pairs.extend((str(kind), s) for s in spans)
        return pairs
    return None
