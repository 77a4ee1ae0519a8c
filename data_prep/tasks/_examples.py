"""Building a ChatExample from a record: the system prompt, the turns and the metadata to trace it."""

from __future__ import annotations

import hashlib

from data_prep.records import ChatExample, Record, patient_group
from data_prep.tasks._prompts import BUILT_IN, Prompts


def example_meta(record: Record, task: str, index: int = 0) -> dict[str, object]:
    """id (stable over runs), language, task, source location, patient group and evaluation-only flag."""
    digest = hashlib.sha256(f"{record.location}\x00{task}\x00{index}".encode()).hexdigest()
    meta: dict[str, object] = {
        "id": f"{record.lang}-{digest[:12]}",
        "lang": record.lang,
        "task": task,
        "source": record.location,
        "group": record.group or patient_group(record.patient_id),
    }
    if record.eval_only:
        meta["eval_only"] = True
    return meta


def make_example(
    record: Record,
    task: str,
    user: str,
    assistant: str | None,
    index: int = 0,
    prompts: Prompts | None = None,
) -> ChatExample:
    """system + user (+ assistant): an example without an answer is for evaluation only."""
    prompts = prompts or BUILT_IN
    messages = [
        {"role": "system", "content": prompts.system_prompt(record.lang)},
        {"role": "user", "content": user},
    ]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    meta = example_meta(record, task, index)
    if assistant is None:
        meta["eval_only"] = True
    return ChatExample(messages=messages, meta=meta)
