"""Verifiable rewards for GRPO: plain functions of one answer and the reference its example carries.

Data prep writes the reference into each example's `meta.reference` (see `data_prep.tasks`):
`{"kind": "choice", "answer": "B", "options": {"A": ..., ...}}`, `{"kind": "yes_no", "answer": "yes"}`,
`{"kind": "icd10", "code": "K29.7"}`, `{"kind": "entities", "entities": [[type, text], ...]}` or
`{"kind": "text", "answer": ...}`. Answers are read with the evaluation's own parsers, so training rewards exactly
what the before/after report scores. A reward that does not apply to an example's kind scores 0.0 for every
completion of its group: GRPO compares completions within a group, so a constant moves no advantage.

`reward_functions` turns the recipe's `train.grpo.rewards` (name → weight) into what TRL's GRPOTrainer calls:
one function per reward, named after it (TRL logs `rewards/<name>/mean`), reading the `reference` and `lang`
columns of the batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from finetune.eval import (
    detect_language,
    entity_counts,
    icd10_matches,
    normalize_text,
    parse_choice,
    parse_entities,
    parse_icd10_codes,
    parse_yes_no,
)

Reference = Mapping[str, Any]
JSON_VALIDITY_SHARE = 0.2
"""Part of the extraction reward paid for valid JSON alone; the rest is entity F1."""
ICD10_CATEGORY_CREDIT = 0.5
"""Reward of a top code in the right three-character category but not the right code."""


def option_letter(text: str, reference: Reference) -> float:
    """1.0 when the answer settles on the reference option (the eval's `parse_choice`), else 0.0."""
    if reference.get("kind") != "choice":
        return 0.0
    return float(parse_choice(text, reference.get("options") or {}) == reference.get("answer"))


def yes_no(text: str, reference: Reference) -> float:
    """1.0 when the answer reads as the reference yes/no/maybe (the eval's `parse_yes_no`), else 0.0."""
    if reference.get("kind") != "yes_no":
        return 0.0
    return float(parse_yes_no(text) == reference.get("answer"))


def icd10(text: str, reference: Reference) -> float:
    """1.0 when the first code given is the reference (or a subcode of it), 0.5 for its category, else 0.0."""
    if reference.get("kind") != "icd10":
        return 0.0
    codes = parse_icd10_codes(text)
    if not codes:
        return 0.0
    if icd10_matches(codes[0], reference["code"]):
        return 1.0
    return ICD10_CATEGORY_CREDIT if icd10_matches(codes[0], reference["code"], "category") else 0.0


def extraction(text: str, reference: Reference) -> float:
    """Entity F1 against the reference, with `JSON_VALIDITY_SHARE` paid for a parseable JSON answer."""
    if reference.get("kind") != "entities":
        return 0.0
    entities = parse_entities(text)
    if entities is None:
        return 0.0
    gold = [(kind, span) for kind, span in reference.get("entities") or []]
    tp, fp, fn = entity_counts(entities, gold)
    f1 = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return JSON_VALIDITY_SHARE + (1 - JSON_VALIDITY_SHARE) * f1


def answer_text(text: str, reference: Reference) -> float:
    """1.0 when a short-answer reference (extractive QA) appears in the answer, compared as the eval normalises."""
    if reference.get("kind") != "text" or not reference.get("answer"):
        return 0.0
    return float(normalize_text(str(reference["answer"])) in normalize_text(text))


def answer_format(text: str, reference: Reference) -> float:
    """1.0 when the answer can be read at all, right or wrong: an option, a yes/no, a code, valid JSON, some text.

    It is the first thing a small model learns, and it keeps answers scorable by the evaluation."""
    kind = reference.get("kind")
    if kind == "choice":
        return float(parse_choice(text, reference.get("options") or {}) is not None)
    if kind == "yes_no":
        return float(parse_yes_no(text) is not None)
    if kind == "icd10":
        return float(bool(parse_icd10_codes(text)))
    if kind == "entities":
        return float(parse_entities(text) is not None)
    return float(bool(text.strip()))


def language(text: str, lang: str) -> float:
    """1.0 when lingua reads the answer as the language the question was asked in (a Kazakh question answered in
    Russian scores 0.0); an answer without words scores 0.0."""
    return float(detect_language(text) == lang)


def length_penalty(text: str, max_chars: int) -> float:
    """0.0 up to `max_chars`, then falling linearly to -1.0 at twice that: rambling costs, brevity does not."""
    over = len(text.strip()) - max_chars
    return 0.0 if over <= 0 else -min(1.0, over / max_chars)


ANSWER_REWARDS: dict[str, Callable[[str, Reference], float]] = {
    "option_letter": option_letter,
    "yes_no": yes_no,
    "icd10": icd10,
    "extraction": extraction,
    "answer_text": answer_text,
    "format": answer_format,
}
"""Rewards that read the reference."""
REWARD_NAMES: tuple[str, ...] = (*ANSWER_REWARDS, "language", "length")
"""Every reward a recipe can weight (`train.grpo.rewards`)."""


def completion_text(completion: Any) -> str:
    """The decoded answer TRL hands over: a string, or (conversational data) a list holding one assistant turn."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content") or "") for message in completion)


def parse_reference(value: Any) -> Reference:
    """A row's reference: stored as JSON text in the dataset column (Arrow needs one type per column)."""
    if isinstance(value, str):
        return json.loads(value)
    return value or {}


def _named(name: str, score: Callable[[str, Any], float], column: str,
           convert: Callable[[Any], Any] = lambda value: value) -> Callable[..., list[float]]:
    def reward(completions: Sequence[Any], **columns: Any) -> list[float]:
        values = columns[column]
        return [score(completion_text(c), convert(v)) for c, v in zip(completions, values, strict=True)]

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


def reward_functions(weights: Mapping[str, float], max_chars: int) -> tuple[list[Callable[..., list[float]]],
                                                                          list[float]]:
    """TRL reward functions and their weights for the recipe's `train.grpo.rewards` (name → weight)."""
    unknown = sorted(set(weights) - set(REWARD_NAMES))
    if unknown:
        raise ValueError(f"unknown reward(s) {', '.join(unknown)}; choose from {', '.join(REWARD_NAMES)}")
    functions: list[Callable[..., list[float]]] = []
    for name in weights:
        if name == "language":
            functions.append(_named(name, language, "lang"))
        elif name == "length":
            functions.append(_named(name, lambda text, _: length_penalty(text, max_chars), "lang"))
        else:
            functions.append(_named(name, ANSWER_REWARDS[name], "reference", parse_reference))
    return functions, [float(w) for w in weights.values()]
