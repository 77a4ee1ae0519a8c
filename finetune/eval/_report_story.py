"""The opening of report.md: per language, the headline numbers base → tuned with their intervals, then two short
answers of the test split side by side, so the first screen shows what the tuning changed.

The answers are the test split's own text, de-identified by `medtune prepare`; only the two shortest of the most
improved items are quoted, each cut to a few lines.
"""

from __future__ import annotations

from typing import Any

from finetune.eval._report_text import fmt, fmt_delta

HEADLINE = (
    ("chrf", "chrF", "score"),
    ("language_fidelity", "in the language asked", "share"),
    ("format_adherence", "in the task's format", "share"),
    ("truncated", "cut by the token limit", "share"),
)
QUOTED_ANSWERS = 2
QUOTED_CHARS = 240


def _cell(entry: dict[str, Any] | None, unit: str) -> str:
    if entry is None:
        return "—"
    mark = " ✓" if entry.get("significant") else ""
    interval = f"{fmt_delta(entry.get('ci_low'), unit)} … {fmt_delta(entry.get('ci_high'), unit)}"
    return f"{fmt(entry['base'], unit)} → {fmt(entry['tuned'], unit)} ({interval}){mark}"


def _quote(text: str) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return (text[:QUOTED_CHARS] + " …") if len(text) > QUOTED_CHARS else (text or "(empty)")


def render_story(report: dict[str, Any]) -> list[str]:
    """The opening section; empty unless both base and tuned were evaluated on the test split."""
    if set(report.get("roles", ())) != {"base", "tuned"}:
        return []
    found = {(c["group"], c["metric"]): c for c in report.get("comparisons", []) if c["task"] == "test"}
    groups = [g for g in ("ru", "kk", "zh", "en") if any(key[0] == g for key in found)] or ["all"]
    if not any(key[0] in groups for key in found):
        return []
    lines = [
        "## What tuning changed",
        "",
        "Base → tuned on the test split, with the "
        f"{round(100 * report['settings'].get('confidence', 0.95))}% interval of the difference; ✓ marks a "
        "significant change.",
        "",
        "| language | n | " + " | ".join(label for _, label, _ in HEADLINE) + " |",
        "|---|---|" + "---|" * len(HEADLINE),
    ]
    for group in groups:
        n = next((c["n"] for (g, _), c in found.items() if g == group), 0)
        cells = [_cell(found.get((group, metric)), unit) for metric, _, unit in HEADLINE]
        lines.append(f"| {group} | {n} | " + " | ".join(cells) + " |")
    improved = (report.get("examples_changed") or {}).get("improved") or []
    shortest = sorted(improved, key=lambda e: len(e.get("expected") or ""))[:QUOTED_ANSWERS]
    if shortest:
        lines += ["", "Two test answers, base and tuned side by side (de-identified test text):", "",
                  "| task | language | base | tuned |", "|---|---|---|---|"]
        for example in shortest:
            task = str(example["task"]).removeprefix("test:")
            lines.append(f"| {task} | {example['lang']} | {_quote(example['base'])} | {_quote(example['tuned'])} |"
                         .replace("\n", " "))
    return [*lines, ""]
