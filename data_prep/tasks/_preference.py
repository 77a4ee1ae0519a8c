"""Preference pairs for DPO: the prompt, the answer a clinician chose and the one they did not.

A pair is written as the chosen conversation (system prompt, question, chosen answer) with the rejected answer in
`meta.rejected`, so it passes the same language check, de-identification (both answers are record fields), quality
gate, split and data card as every other example, and DPO reads it back (`finetune.train._dpo`).
"""

from __future__ import annotations

from data_prep.records import ChatExample, Record
from data_prep.tasks._examples import make_example
from data_prep.tasks._prompts import Prompts


def preference(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """One pair; none when de-identification left both answers the same (they differed only in personal data)."""
    fields = record.fields
    if record.kind != "preference":
        return []
    chosen, rejected = fields["chosen"].strip(), fields["rejected"].strip()
    if chosen == rejected:
        return []
    example = make_example(record, "preference", fields["prompt"].strip(), chosen, prompts=prompts)
    example.meta["rejected"] = rejected
    return [example]
