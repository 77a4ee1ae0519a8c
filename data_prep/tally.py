"""What a prepare run keeps of each conversion outcome, in input order: what became of each record, the examples
made, the quality gate's verdict on each (rejects written out as they come), where each kept example's line is,
the redaction counts and a sample of text to measure the tokenizer's fertility on."""

from __future__ import annotations

import json
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from data_prep.card import ExampleStub, RecordOutcome
from data_prep.convert import Converted, Made
from data_prep.files import jsonl_line
from data_prep.parallel import MessagesTokenCounter
from data_prep.quality import QualityGate, example_reject
from data_prep.records import Reject
from data_prep.spool import SpooledLines

FERTILITY_SAMPLE = 200
"""Texts per language kept to measure the tokenizer's fertility on."""


@dataclass
class Tally:
    """What the run observed, in the small form the card and the split need."""

    records_read: int = 0
    outcomes: list[RecordOutcome] = field(default_factory=list)
    made: list[ExampleStub] = field(default_factory=list)
    rejected: list[tuple[ExampleStub, Reject]] = field(default_factory=list)
    kept: list[ExampleStub] = field(default_factory=list)
    kept_at: array[int] = field(default_factory=lambda: array("q"))
    """Where each kept example's line is: its `Made.at`, three numbers after another (24 bytes an example)."""
    redactions: Counter[str] = field(default_factory=Counter)
    fertility_sample: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Intake:
    """Takes each outcome into ``tally``: rejected records and examples are written to ``rejects`` (where and why,
    no patient text), the examples the ``gate`` keeps are remembered by place in the spool files."""

    tally: Tally
    gate: QualityGate
    token_counter: MessagesTokenCounter | None
    spooled: SpooledLines
    rejects: TextIO

    def take(self, outcome: Reject | Converted, source_lang: str) -> None:
        """One read item's outcome; ``source_lang`` is its source's configured language (may be "auto")."""
        tally, rejects = self.tally, self.rejects
        tally.records_read += 1
        if isinstance(outcome, Reject):
            lang = source_lang if source_lang != "auto" else "unknown"
            tally.outcomes.append(RecordOutcome(outcome.source, lang, outcome.reason))
            rejects.write(jsonl_line(outcome.to_json()))
            return
        redactions = tally.redactions
        for kind, count in outcome.redactions.items():  # (Counter.update of a dict runs in Python anyway)
            redactions[kind] += count
        if outcome.reject is not None:
            tally.outcomes.append(RecordOutcome(outcome.reject.source, outcome.lang, outcome.reject.reason))
            rejects.write(jsonl_line(outcome.reject.to_json()))
            return
        source_name = outcome.made[0].stub.meta["source"].rsplit(":", 1)[0]
        tally.outcomes.append(RecordOutcome(source_name, outcome.lang))
        for made in outcome.made:
            self._judge(made)

    def _judge(self, made: Made) -> None:
        """Keep or reject one example made, by the quality gate; sample the text of kept ones for fertility."""
        tally, stub = self.tally, made.stub
        tally.made.append(stub)
        # a raw text row longer than max_tokens is cut into training rows, not rejected
        length = stub.length if self.token_counter is not None and stub.meta["task"] != "text" else None
        reason = self.gate.judge(stub.meta["task"], made.answer_chars, length, made.key, made.minhash)
        if reason is not None:
            reject = example_reject(stub.meta, reason)
            tally.rejected.append((stub, reject))
            self.rejects.write(jsonl_line(reject.to_json()))
            return
        tally.kept.append(stub)
        tally.kept_at.extend(made.at)  # type: ignore[arg-type]
        sample = tally.fertility_sample.setdefault(stub.meta["lang"], [])
        if len(sample) < FERTILITY_SAMPLE:
            row = json.loads(self.spooled.line(made.at))  # type: ignore[arg-type]
            if "text" in row:
                sample.append(row["text"])
            else:
                sample.extend(m["content"] for m in row["messages"] if m["role"] != "system")
