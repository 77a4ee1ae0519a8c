"""The data card: what went in, what came out, what was dropped or redacted, and why.

Whoever trains on, audits or shares a prepared dataset reads this instead of the data. It holds
counts and lengths only, never patient text, and records the bookkeeping invariants so that a silent
loss of records shows up as a failed check rather than as a smaller dataset.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from data_prep.config import DataConfig
from data_prep.records import ChatExample, Reject
from data_prep.split import SPLITS


class ExampleStub(NamedTuple):
    """What the card and the split need of an example once its text is on disk (a tuple: hundreds of
    thousands are kept, and each crosses from a worker process)."""

    meta: dict[str, Any]
    length: int
    answered: bool = True


class RecordOutcome(NamedTuple):
    """What became of one record read: converted (``reason`` None), skipped (see `is_skip`) or rejected (a tuple:
    one per record read)."""

    source: str
    lang: str
    reason: str | None = None


NO_TASK_APPLIES = "no_examples"
"""The reason conversion gives a record none of the source's tasks could use (a prose note read whole has no
complaints, diagnosis or labs for a summary): the record is sound, so it is counted as skipped, not rejected."""
SKIP_LABEL = "no task applies"
READER_SKIP = "skipped: "
"""How a reader's skip (`records.Skip`) is told in an outcome's reason."""


def is_skip(outcome: RecordOutcome) -> bool:
    """Whether the record was left out on purpose rather than for being broken."""
    reason = outcome.reason
    return reason is not None and (reason == NO_TASK_APPLIES or reason.startswith(READER_SKIP))


def _skip_reason(outcome: RecordOutcome) -> str:
    return SKIP_LABEL if outcome.reason == NO_TASK_APPLIES else str(outcome.reason).removeprefix(READER_SKIP)


def _kind(outcome: RecordOutcome) -> str:
    if outcome.reason is None:
        return "converted"
    return "skipped" if is_skip(outcome) else "rejected"


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    """min / mean / p50 / p95 / max (nearest-rank percentiles); empty input gives zeros."""
    if not lengths:
        return {"count": 0, "min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    ordered = sorted(lengths)

    def rank(p: float) -> int:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "max": ordered[-1],
    }


HISTOGRAM_EDGES: tuple[int, ...] = (0, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


def histogram(lengths: Sequence[int]) -> dict[str, int]:
    """Counts per length bucket (``0-63``, ``64-127`` … ``8192+``); every bucket listed, empty or not."""
    counts = {}
    for low, high in zip(HISTOGRAM_EDGES, (*HISTOGRAM_EDGES[1:], None), strict=True):
        label = f"{low}-{high - 1}" if high is not None else f"{low}+"
        counts[label] = sum(1 for n in lengths if n >= low and (high is None or n < high))
    return counts


_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)


def word_count(text: str) -> int:
    """Words as a reader counts them: runs of letters or digits; each Chinese character is a word."""
    return len(_CJK.findall(text)) + len(_WORD.findall(_CJK.sub(" ", text)))


def fertility(
    samples: Mapping[str, Sequence[str]], token_counter: Callable[[list[dict[str, str]]], int]
) -> dict[str, dict[str, float]]:
    """Tokens per word and per character of the tokenizer, per language, on the examples' own text.

    The chat template's fixed cost is measured on an empty turn and subtracted, so the figures are
    about the language, not the template.
    """
    empty = token_counter([{"role": "user", "content": ""}])
    result = {}
    for lang, texts in sorted(samples.items()):
        tokens = sum(max(0, token_counter([{"role": "user", "content": t}]) - empty) for t in texts)
        words = sum(word_count(t) for t in texts)
        chars = sum(len(t) for t in texts)
        if not texts or not words or not chars:
            continue
        result[lang] = {
            "texts": len(texts),
            "tokens_per_word": round(tokens / words, 3),
            "tokens_per_char": round(tokens / chars, 3),
        }
    return result


def char_length(example: ChatExample) -> int:
    """Characters over all messages: the length unit when no tokenizer is at hand."""
    return sum(len(m["content"]) for m in example.messages)


def _tally(items: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(items).items()))


def _record_counts(outcomes: Sequence[RecordOutcome], key: Callable[[RecordOutcome], str]) -> dict:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        row = table[key(outcome)]
        row["in"] += 1
        row[_kind(outcome)] += 1
    return {k: {c: v[c] for c in RECORD_COLUMNS} for k, v in sorted(table.items())}


RECORD_COLUMNS = ("in", "converted", "rejected", "skipped")


def _reader_skips(sources: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
    """One outcome per thing a reader skipped on purpose (counted per source as it read), so that they count in
    the records' totals and tables like the rest."""
    return [
        RecordOutcome(str(s["file"]), s["lang"] if s["lang"] != "auto" else "unknown", f"{READER_SKIP}{reason}")
        for s in sources
        for reason, n in (s.get("skipped") or {}).items()
        for _ in range(n)
    ]


def _source_of(example: ChatExample) -> str:
    return str(example.meta.get("source", "")).rsplit(":", 1)[0]


def _example_counts(
    made: Sequence[ChatExample],
    rejected: Sequence[ChatExample],
    splits: Mapping[str, Sequence[ChatExample]],
    key: Callable[[ChatExample], str],
) -> dict:
    outputs = (*SPLITS, "eval_only")
    counts = {"made": Counter(map(key, made)), "rejected": Counter(map(key, rejected))}
    counts.update({name: Counter(map(key, splits.get(name, []))) for name in outputs})
    counts["written"] = sum((counts[name] for name in outputs), Counter())
    columns = ("made", "written", "rejected", *outputs)
    return {k: {c: counts[c][k] for c in columns} for k in sorted(set().union(*counts.values()))}


def _patients_disjoint(splits: Mapping[str, Sequence[ChatExample]]) -> bool:
    owners: dict[str, str] = {}
    for split in SPLITS:
        for example in splits.get(split, []):
            if owners.setdefault(example.meta["group"], split) != split:
                return False
    return True


def build_card(
    *,
    config: DataConfig,
    outcomes: Sequence[RecordOutcome],
    records_read: int,
    made: Sequence[ChatExample],
    rejected: Sequence[tuple[ChatExample, Reject]],
    splits: Mapping[str, Sequence[ChatExample]],
    written: Mapping[str, int],
    redactions: Mapping[str, int],
    length_of: Callable[[Any], int] | None = None,
    length_unit: str | None = None,
    fertility: Mapping[str, Mapping[str, float]] | None = None,
    sources: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Assemble the card from what ``prepare`` observed; pure, so it is testable without files.

    ``records_read`` and ``written`` are counted independently of ``outcomes`` and ``splits`` (as
    they come off the reader and go into the files) so that the invariants check something.
    """
    rejected_examples = [example for example, _ in rejected]
    reader_skips = _reader_skips(sources)
    records_read += len(reader_skips)
    outcomes = [*outcomes, *reader_skips]
    converted = sum(1 for o in outcomes if o.reason is None)
    skipped = [o for o in outcomes if is_skip(o)]
    records_rejected = len(outcomes) - converted - len(skipped)
    written_total = sum(written.values())
    unit = length_unit or ("tokens" if length_of is not None else "chars")
    settings = config.model_dump(mode="json", exclude={"patient_salt"})
    return {
        "sources": [
            {**s, **{key: dict(sorted((s.get(key) or {}).items())) for key in ("skipped", "left_unread")}}
            for s in sources
        ],
        "records": {
            "in": records_read,
            "converted": converted,
            "rejected": records_rejected,
            "skipped": len(skipped),
            "by_source": _record_counts(outcomes, lambda o: o.source),
            "by_language": _record_counts(outcomes, lambda o: o.lang),
        },
        "examples": _examples_section(made, rejected_examples, splits, written_total),
        "splits": _splits_section(splits),
        "eval_only": _eval_only_section(splits),
        "skip_reasons": _tally(_skip_reason(o) for o in skipped),
        "left_unread": dict(sorted(sum((Counter(s.get("left_unread") or {}) for s in sources), Counter()).items())),
        "rejection_reasons": {
            "records": _tally(o.reason for o in outcomes if o.reason is not None and _kind(o) == "rejected"),
            "examples": _tally(r.reason for _, r in rejected),
        },
        "redactions": {
            "enabled": config.deid.enabled,
            "by_type": dict(sorted(redactions.items())),
            "total": sum(redactions.values()),
        },
        "lengths": _lengths_section(splits, unit, length_of or char_length),
        "fertility": dict(fertility or {}),
        "invariants": {
            "records_in_equals_converted_plus_rejected_plus_skipped": records_read
            == converted + records_rejected + len(skipped),
            "examples_made_equals_written_plus_rejected": len(made) == written_total + len(rejected_examples),
            "evaluation_only_never_in_train": not any(e.meta.get("eval_only") for e in splits.get("train", [])),
            "no_patient_in_two_splits": _patients_disjoint(splits),
        },
        "config": settings,
    }


def _examples_section(
    made: Sequence[ChatExample],
    rejected_examples: Sequence[ChatExample],
    splits: Mapping[str, Sequence[ChatExample]],
    written_total: int,
) -> dict[str, Any]:
    """Examples made, written and rejected, in total and by source, language and task."""
    return {
        "made": len(made),
        "written": written_total,
        "rejected": len(rejected_examples),
        "by_source": _example_counts(made, rejected_examples, splits, _source_of),
        "by_language": _example_counts(made, rejected_examples, splits, lambda e: e.meta["lang"]),
        "by_task": _example_counts(made, rejected_examples, splits, lambda e: e.meta["task"]),
    }


def _splits_section(splits: Mapping[str, Sequence[ChatExample]]) -> dict[str, Any]:
    """Examples and patients of each split, with its languages and tasks."""
    return {
        split: {
            "examples": len(splits.get(split, [])),
            "patients": len({e.meta["group"] for e in splits.get(split, [])}),
            "by_language": _tally(e.meta["lang"] for e in splits.get(split, [])),
            "by_task": _tally(e.meta["task"] for e in splits.get(split, [])),
        }
        for split in SPLITS
    }


def _eval_only_section(splits: Mapping[str, Sequence[ChatExample]]) -> dict[str, Any]:
    eval_only = list(splits.get("eval_only", []))
    return {
        "examples": len(eval_only),
        "by_language": _tally(e.meta["lang"] for e in eval_only),
        "by_task": _tally(e.meta["task"] for e in eval_only),
    }


def _lengths_section(
    splits: Mapping[str, Sequence[ChatExample]], unit: str, measure: Callable[[Any], int]
) -> dict[str, Any]:
    """Length statistics and histograms of the split examples: over all, per split and per language."""
    lengths = {split: [measure(e) for e in splits.get(split, [])] for split in SPLITS}
    by_lang: dict[str, list[int]] = defaultdict(list)
    for split in SPLITS:
        for example, n in zip(splits.get(split, []), lengths[split], strict=True):
            by_lang[example.meta["lang"]].append(n)
    return {
        "unit": unit,
        "all": length_stats([n for split in SPLITS for n in lengths[split]]),
        **{split: length_stats(lengths[split]) for split in SPLITS},
        "by_language": {lang: length_stats(ns) for lang, ns in sorted(by_lang.items())},
        "histogram": {
            "all": histogram([n for split in SPLITS for n in lengths[split]]),
            **{split: histogram(lengths[split]) for split in SPLITS},
            **{lang: histogram(ns) for lang, ns in sorted(by_lang.items())},
        },
    }
