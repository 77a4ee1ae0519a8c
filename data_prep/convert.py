"""One record's way to its examples: language check, de-identification, tasks, measurements.

This is the CPU-heavy part of preparation and the part that runs in worker processes; it is a pure
function of the record and a plan, so running it in one process or several gives the same result.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from data_prep.card import ExampleStub
from data_prep.config import SUPPORTED_LANGS, DeidConfig
from data_prep.dedup import content_text, example_line, signatures
from data_prep.deid import STRUCTURED_IDENTIFIERS, deidentify_many
from data_prep.langid import detect_lang, record_text
from data_prep.records import ChatExample, Example, Record, Reject, TextExample, pseudonymize
from data_prep.tasks import TASKS, Prompts

MessagesTokenCounter = Any  # Callable[[list[dict[str, str]]], int]; Any keeps it picklable-agnostic
STUB_KEYS = ("lang", "task", "source", "group", "eval_only")


@dataclass(frozen=True)
class Plan:
    """What converting the records of one source needs to know, and nothing about files."""

    source_lang: str
    tasks: tuple[str, ...]
    deid: DeidConfig
    lang_check: str
    salt: str
    prompts: Prompts
    near_dup: bool
    entity_types: dict[str, str] = field(default_factory=dict)


class Made(NamedTuple):
    """One example as the main process needs it: the line its output file gets and the facts the card, the
    split and the quality gate need, so the example itself need not travel back from a worker. (Tuples, as
    `Converted`: they are cheap to send between processes.)"""

    stub: ExampleStub
    line: bytes
    """Its JSON line, UTF-8, newline included: encoded here, in parallel, and written as it is (empty once
    written to a spool file, see ``at``)."""
    key: bytes
    answer_chars: int | None
    """Characters of its stripped answer (None: it has none)."""
    minhash: bytes | None = None
    at: tuple[int, int, int] | None = None
    """Where its line was written instead of travelling with it: (process id, offset, length) in that process's
    spool file."""

    def example(self) -> Example:
        """The example back from its line (not once the line is spooled: then read it at ``at``)."""
        row = json.loads(self.line)
        if "text" in row:
            return TextExample(text=row["text"], meta=row["meta"])
        return ChatExample(messages=row["messages"], meta=row["meta"])


class Converted(NamedTuple):
    """A record's outcome: its reject, or its examples (``made``, filled in by `_measure`)."""

    lang: str
    reject: Reject | None
    made: list[Made]
    redactions: dict[str, int]
    """Placeholders written, per kind (a dict: a Counter is rebuilt key by key in Python when unpickled)."""


def _strip_identifiers(record: Record) -> Record:
    """Without de-identification, the structured identifiers are still never needed downstream."""
    return replace(record, fields={k: v for k, v in record.fields.items() if k not in STRUCTURED_IDENTIFIERS})


def _resolve_lang(record: Record, plan: Plan) -> tuple[Record, Reject | None, str | None]:
    """The record with a known language, or the reject that says why it has none; plus lingua's view."""
    fixed = plan.source_lang if plan.source_lang != "auto" else None
    if fixed is not None and record.lang not in ("auto", fixed):
        return record, Reject(record.source, record.location, "lang_mismatch", "lang", stage="read"), None
    detected = None
    if record.lang == "auto" or plan.lang_check != "off":
        detected = detect_lang(record_text(record.fields))
    lang = record.lang if record.lang != "auto" else (fixed or detected)
    if lang is None or lang not in SUPPORTED_LANGS:
        return record, Reject(record.source, record.location, "unknown_lang", "lang", stage="lang"), detected
    if plan.lang_check == "drop" and detected is not None and detected != lang:
        return record, Reject(record.source, record.location, "lang_mismatch_detected", "lang", stage="lang"), detected
    return replace(record, lang=lang), None, detected


def convert_records(
    jobs: Sequence[tuple[Record, Plan]], token_counter: MessagesTokenCounter | None = None
) -> list[Converted]:
    """Records → examples (or rejects), measured for the quality gate that runs afterwards. Records are
    de-identified together, so the named-entity model reads what it must of all of them in one batch."""
    outcomes: list[Converted | None] = []
    resolved: list[tuple[Record, str | None]] = []
    for record, plan in jobs:
        record, reject, detected = _resolve_lang(record, plan)
        outcomes.append(Converted(record.lang, reject, [], {}) if reject is not None else None)
        resolved.append((record if reject is not None else pseudonymize(record, plan.salt), detected))
    to_deid = [i for i, (_, plan) in enumerate(jobs) if outcomes[i] is None and plan.deid.enabled]
    cleaned = deidentify_many([(resolved[i][0], jobs[i][1].deid, jobs[i][1].salt) for i in to_deid])
    redacted = dict(zip(to_deid, cleaned, strict=True))
    made: list[tuple[Converted, Plan, list[Example]]] = []
    for i, (_, plan) in enumerate(jobs):
        if outcomes[i] is None:
            record, detected = resolved[i]
            record, counts = redacted[i] if i in redacted else (_strip_identifiers(record), Counter())
            examples = _examples(record, plan, detected)
            reject = None if examples else Reject(record.source, record.location, "no_examples", stage="task")
            outcomes[i] = Converted(record.lang, reject, [], dict(counts))
            made.append((outcomes[i], plan, examples))
    _measure(made, token_counter)
    return [outcome for outcome in outcomes if outcome is not None]


def _examples(record: Record, plan: Plan, detected: str | None) -> list[Example]:
    """The de-identified record's examples, marked when lingua read another language than the record's."""
    if plan.entity_types:
        record = replace(record, fields={**record.fields, "entity_types": plan.entity_types})
    examples = [example for task in plan.tasks for example in TASKS[task](record, plan.prompts)]
    if detected is not None and detected != record.lang:
        for example in examples:
            example.meta["lang_detected"] = detected
    return examples


def _characters(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"]) for m in messages)


def _instruction(example: Example, prompts: Prompts) -> str | None:
    task = example.meta["task"]
    if task in ("chat", "dialogue_continuation", "text", "preference"):
        return None
    return prompts.instruction(task, example.meta["lang"])


def _text_length(text: str, token_counter: MessagesTokenCounter | None) -> int:
    """A raw text row's length: tokens as one user turn (a few template tokens over the text), or characters."""
    return token_counter([{"role": "user", "content": text}]) if token_counter is not None else len(text)


def _measure(
    made: Sequence[tuple[Converted, Plan, list[Example]]], token_counter: MessagesTokenCounter | None
) -> None:
    """Each outcome's examples as `Made`: length (tokens, or characters without a counter), line, key and,
    where the plan asks for near-duplicate removal, MinHash signature (computed for all texts at once:
    per text, the work is mostly fixed overhead)."""
    texts = [
        content_text(example, _instruction(example, plan.prompts))
        for _, plan, examples in made
        if plan.near_dup
        for example in examples
    ]
    minhashes = iter(signatures(texts))
    for outcome, plan, examples in made:
        for example in examples:
            if isinstance(example, TextExample):  # every token is trained on: the whole text is the answer
                length, answers = _text_length(example.text, token_counter), [example.text]
            else:
                length = (token_counter or _characters)(example.messages)
                answers = [m["content"] for m in example.messages if m["role"] == "assistant"]
            line, key = example_line(example)
            meta = example.meta
            stub = ExampleStub(
                meta={k: meta[k] for k in STUB_KEYS if k in meta}, length=length, answered=bool(answers)
            )
            answer_chars = len("\n".join(answers).strip()) if answers else None
            minhash = next(minhashes) if plan.near_dup else None
            outcome.made.append(Made(stub, line, key, answer_chars, minhash))
