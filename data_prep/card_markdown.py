"""The data card as Markdown (data_card.md), written from the card's dictionary: counts and lengths only, never
patient text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from data_prep.card import RECORD_COLUMNS
from data_prep.split import SPLITS


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return lines


def render_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown for people; the JSON twin is for programs."""
    out = ["# Data card", "", "Synthetic or de-identified clinical records turned into chat examples.", ""]
    out += _sources_md(card)
    out += _records_md(card["records"])
    out += _examples_md(card)
    out += _splits_md(card["splits"])
    out += _skips_md(card.get("skip_reasons", {}), card.get("left_unread", {}))
    out += _rejections_md(card["rejection_reasons"])
    out += _redactions_md(card["redactions"])
    out += _lengths_md(card["lengths"])
    out += _eval_only_md(card)
    out += _fertility_md(card)
    out += ["", "## Checks", ""]
    out += [f"- {'✅' if ok else '❌'} {name.replace('_', ' ')}" for name, ok in card["invariants"].items()]
    return "\n".join(out) + "\n"


def _sources_md(card: Mapping[str, Any]) -> list[str]:
    if not card.get("sources"):
        return []
    out = ["## Sources", ""]
    out += _table(
        ("file", "format", "lang", "tasks", "evaluation only"),
        [
            (s["file"], s["format"], s["lang"], ", ".join(s["tasks"]), "yes" if s["eval_only"] else "")
            for s in card["sources"]
        ],
    )
    return [*out, ""]


def _records_md(records: Mapping[str, Any]) -> list[str]:
    out = ["## Records", ""]
    record_columns = RECORD_COLUMNS
    record_rows: list[Sequence[Any]] = [("**total**", *(records[c] for c in record_columns))]
    for group in ("by_source", "by_language"):
        label = group.removeprefix("by_")
        for key, counts in records[group].items():
            record_rows.append((f"{label} `{key}`", *(counts[c] for c in record_columns)))
    return out + _table(("", *record_columns), record_rows)


def _examples_md(card: Mapping[str, Any]) -> list[str]:
    examples = card["examples"]
    out = ["", "## Examples", ""]
    columns = ("made", "written", "rejected", *SPLITS)
    rows: list[Sequence[Any]] = [("**total**", examples["made"], examples["written"], examples["rejected"])]
    rows[0] = (*rows[0], *(card["splits"][s]["examples"] for s in SPLITS))
    for group in ("by_source", "by_language", "by_task"):
        label = group.removeprefix("by_")
        rows += [(f"{label} `{k}`", *(v[c] for c in columns)) for k, v in examples[group].items()]
    return out + _table(("", *columns), rows)


def _splits_md(splits: Mapping[str, Any]) -> list[str]:
    out = ["", "## Splits (by patient)", ""]
    return out + _table(
        ("split", "examples", "patients", "languages", "tasks"),
        [
            (
                split,
                info["examples"],
                info["patients"],
                ", ".join(f"{k}: {v}" for k, v in info["by_language"].items()) or "-",
                ", ".join(f"{k}: {v}" for k, v in info["by_task"].items()) or "-",
            )
            for split, info in splits.items()
        ],
    )


def _skips_md(reasons: Mapping[str, int], unread: Mapping[str, int]) -> list[str]:
    out = ["", "## Skipped on purpose", ""]
    if unread:
        parts = ", ".join(f"{k}: {v}" for k, v in unread.items())
        out += [f"Parts of records read but left out (no task uses them): {parts}.", ""]
    if not reasons:
        return [*out, "No record skipped."]
    out += [
        "Records that were read and are sound but that no configured task uses (a prose note has no complaints, "
        "diagnosis or labs for the clinical tasks), and entries a reader leaves out by design (administrative "
        "FHIR resources, C-CDA sections and HL7 segments that hold no clinical content). They are not rejects.",
        "",
    ]
    return out + _table(("reason", "count"), reasons.items())


def _rejections_md(reasons: Mapping[str, Any]) -> list[str]:
    out = ["", "## Rejection reasons", ""]
    reason_rows = [("record", k, v) for k, v in reasons["records"].items()]
    reason_rows += [("example", k, v) for k, v in reasons["examples"].items()]
    return out + (_table(("level", "reason", "count"), reason_rows) if reason_rows else ["None."])


def _redactions_md(redactions: Mapping[str, Any]) -> list[str]:
    out = ["", "## Redactions", ""]
    if not redactions["enabled"]:
        return [*out, "De-identification was **disabled** for this run."]
    out += [f"Total placeholders inserted: {redactions['total']}.", ""]
    return out + (_table(("type", "count"), redactions["by_type"].items()) if redactions["by_type"] else [])


def _lengths_md(lengths: Mapping[str, Any]) -> list[str]:
    out = ["", f"## Lengths ({lengths['unit']} per example)", ""]
    stats = ("count", "min", "mean", "p50", "p95", "max")
    out += _table(("split", *stats), [(s, *(lengths[s][k] for k in stats)) for s in ("all", *SPLITS)])
    histograms = lengths.get("histogram", {})
    if histograms:
        out += ["", f"### Histogram ({lengths['unit']} per example)", ""]
        buckets = list(next(iter(histograms.values())))
        out += _table(("", *buckets), [(name, *(h[b] for b in buckets)) for name, h in histograms.items()])
    return out


def _eval_only_md(card: Mapping[str, Any]) -> list[str]:
    if not card.get("eval_only", {}).get("examples"):
        return []
    info = card["eval_only"]
    return [
        "",
        "## Evaluation only",
        "",
        f"{info['examples']} examples without an answer key "
        "(`eval_only.jsonl`), never trained on: "
        + ", ".join(f"{k}: {v}" for k, v in info["by_task"].items())
        + ".",
    ]


def _fertility_md(card: Mapping[str, Any]) -> list[str]:
    if not card.get("fertility"):
        return []
    out = ["", "## Tokenizer fertility", ""]
    return out + _table(
        ("language", "texts", "tokens per word", "tokens per character"),
        [(lang, f["texts"], f["tokens_per_word"], f["tokens_per_char"]) for lang, f in card["fertility"].items()],
    )
