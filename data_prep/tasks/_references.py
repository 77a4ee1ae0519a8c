"""Checkable references in example metadata, and the prompt-only form of an example, for GRPO.

A reward scores a sampled answer against what the right answer *is*, not against one wording of it: the option
letter of an exam question, yes/no, the ICD-10 code, the extracted entities. The tasks that have such an answer
write it into `meta.reference` (`with_reference`); GRPO's rewards read it there (`finetune.train._rewards`).
`prompt_only` turns a prepared example line into a prompt-only one (the answer dropped, the reference kept): the
train and validation splits of a GRPO recipe are written that way, while its test split keeps the answers the
before/after evaluation scores against.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from typing import Any

from data_prep.records import ChatExample, Record

REFERENCE_TASKS = ("multiple_choice", "qa", "icd10_coding", "extraction")
"""Tasks whose examples carry `meta.reference`."""


def _extraction_entities(answer: str) -> list[list[str]]:
    """(category, text) pairs of the extraction task's JSON answer (`{category: [text | {text, codes}]}`)."""
    found = json.loads(answer)
    return [[category, item["text"] if isinstance(item, dict) else item]
            for category, items in found.items() for item in items]


def reference_of(task: str, record: Record, answer: str) -> dict[str, Any] | None:
    """The checkable reference of an answered example of `task`, or None when the task has none."""
    fields = record.fields
    if task == "multiple_choice":
        options = {string.ascii_uppercase[i]: str(text) for i, text in enumerate(fields["options"])}
        return {"kind": "choice", "answer": string.ascii_uppercase[fields["answer_index"]], "options": options}
    if task == "qa":
        kind = "yes_no" if fields.get("qtype") == "yes_no" else "text"
        return {"kind": kind, "answer": fields["answer"]}
    if task == "icd10_coding":
        return {"kind": "icd10", "code": str(fields["icd10"]).strip()}
    if task == "extraction":
        return {"kind": "entities", "entities": _extraction_entities(answer)}
    return None


Builder = Callable[..., list[Any]]


def with_reference(task: str, builder: Builder) -> Builder:
    """`builder`, with `meta.reference` added to each answered example it makes."""

    def build(record: Record, prompts: Any = None) -> list[Any]:
        examples = builder(record, prompts)
        for example in examples:
            if isinstance(example, ChatExample) and example.messages[-1]["role"] == "assistant":
                reference = reference_of(task, record, example.messages[-1]["content"])
                if reference is not None:
                    example.meta["reference"] = reference
        return examples

    build.__name__ = getattr(builder, "__name__", task)
    build.__doc__ = builder.__doc__
    return build


def prompt_only(line: bytes) -> bytes:
    """A prepared example line without its answer turn(s): what GRPO samples answers for."""
    row = json.loads(line)
    messages = row["messages"]
    while messages and messages[-1]["role"] == "assistant":
        messages.pop()
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
