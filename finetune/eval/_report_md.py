"""report.md: the numbers only, section by section; the command line prints it.

Prompts never appear here, and answers only in the opening (`_report_story`): two short answers of the
de-identified test split, base and tuned; the rest are in report.html and report.json, which stay in the evaluation
directory.
"""

from __future__ import annotations

from typing import Any

from finetune.eval._report_story import render_story
from finetune.eval._report_text import (
    confidence_level,
    describe_comparison,
    fmt,
    fmt_delta,
    metric_unit,
    too_few_summary,
)


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        *_header(report),
        *render_story(report),
        *_test_split(report),
        *_significant(report),
        *_by_task(report),
        *_judge(report),
        *_lengths(report),
        *_suites(report),
        *_notes(report),
    ]
    return "\n".join(lines) + "\n"


def _header(report: dict[str, Any]) -> list[str]:
    roles = report["roles"]
    return [
        f"# Evaluation: {report['recipe']}",
        "",
        " ".join(f"{role.capitalize()}: `{report['models'][role]}`." for role in roles)
        + f" Served through `{report['endpoint']}`. {report['examples']} test examples"
        + (f" and {report['items'] - report['examples']} items of {len(report['suites']) - 1} suite(s)"
           if len(report["suites"]) > 1 else "")
        + f"; greedy decoding, at most {report['settings']['max_new_tokens']} new tokens.",
        "",
        "Loss is the mean negative log-likelihood of the reference answer's tokens (assistant turns only); "
        "chrF compares greedy generations with the reference (character n-grams, so it suits Chinese too).",
        "",
    ]


def _test_split(report: dict[str, Any]) -> list[str]:
    if not (report["metrics"] and set(report["roles"]) == {"base", "tuned"}):
        return []
    lines = [
        "## Test split",
        "",
        "| group | n | loss base | loss tuned | Δ loss | ppl base | ppl tuned | chrF base | chrF tuned | Δ chrF |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group, m in report["metrics"].items():
        base, tuned, delta = m["base"], m["tuned"], m.get("delta", {})
        lines.append(
            f"| {group} | {base['examples']} | {fmt(base['loss'], 'nats')} | {fmt(tuned['loss'], 'nats')} | "
            f"{fmt_delta(delta.get('loss'), 'nats')} | {fmt(base['perplexity'], 'ppl')} | "
            f"{fmt(tuned['perplexity'], 'ppl')} | {fmt(base['chrf'], 'score')} | {fmt(tuned['chrf'], 'score')} | "
            f"{fmt_delta(delta.get('chrf'), 'score')} |"
        )
    lines.append("")
    return lines


def _significant(report: dict[str, Any]) -> list[str]:
    comparisons = report["comparisons"]
    if not comparisons:
        return []
    level = confidence_level(report)
    significant = [c for c in comparisons if c["significant"]]
    lines = [f"## Significant differences ({level})", ""]
    if significant:
        lines += [f"- {describe_comparison(report, c)}" for c in significant]
    else:
        lines.append(f"None of the {len(comparisons)} differences is significant at {level}.")
    summary = too_few_summary(report)
    if summary:
        lines += ["", summary]
    return [
        *lines,
        "",
        f"Intervals are paired bootstrap {level} intervals of tuned − base "
        f"({report['settings']['bootstrap_resamples']} resamples of items); binary outcomes (accuracy, top-k, "
        "referral, language) are also tested with "
        "McNemar's exact test, which decides their significance. No correction for multiple comparisons.",
        "",
    ]


def _by_task(report: dict[str, Any]) -> list[str]:
    lines = ["## By task and language", ""]
    if len(report["roles"]) == 2:
        lines += [f"Each cell: base → tuned (difference); * marks a difference significant at "
                  f"{confidence_level(report)}, † a group too small for a significance claim. Intervals and "
                  "p-values for every cell are in report.html and report.json.", ""]
    for task, entry in report["tasks"].items():
        lines += _task_table(report, task, entry)
    return lines


def _task_table(report: dict[str, Any], task: str, entry: dict[str, Any]) -> list[str]:
    """One task's metrics by language group: a value per cell for one model, base → tuned (Δ) for two."""
    roles = report["roles"]
    sample = " — bundled sample" if entry["sample"] else ""
    groups = list(entry["groups"])
    lines = [f"### {task} ({entry['kind']}{sample})", "",
             "| metric | " + " | ".join(f"{g} (n={entry['groups'][g]['examples']})" for g in groups) + " |",
             "|---|" + "---|" * len(groups)]
    found = {(c["group"], c["metric"]): c for c in report["comparisons"] if c["task"] == task}
    metrics = list(dict.fromkeys(m for g in groups for m in entry["groups"][g][roles[-1]]))
    for metric in metrics:
        unit = metric_unit(report, metric)
        better = report["metric_definitions"][metric]["better"]
        cells = [_cell(roles, entry["groups"][group], found.get((group, metric)), metric, unit) for group in groups]
        label = f"{metric} ({better})" if better != "none" else metric
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _cell(roles: list[str], values: dict[str, Any], c: dict[str, Any] | None, metric: str, unit: str) -> str:
    if len(roles) == 1:
        return fmt(values[roles[-1]].get(metric), unit)
    if c is None:  # a metric without a paired difference (e.g. perplexity)
        return " → ".join(fmt(values[role].get(metric), unit) for role in roles)
    mark = "*" if c["significant"] else "†" if c.get("reason") else ""
    return f"{fmt(c['base'], unit)} → {fmt(c['tuned'], unit)} ({fmt_delta(c['difference'], unit)})" + mark


def _judge(report: dict[str, Any]) -> list[str]:
    judge = report.get("judge")
    if not judge:
        return []
    level = confidence_level(report)
    lines = [f"## Judge: `{judge['model']}` (both orders; a win needs both)", "",
             "| group | items | tuned wins | base wins | ties | position-inconsistent | unparsed | preference | "
             f"{level} CI | sign test p |", "|---|---|---|---|---|---|---|---|---|---|"]
    for group, row in [("all", judge), *judge["by_lang"].items()]:
        lines.append(
            f"| {group} | {row['items']} | {row['tuned_wins']} | {row['base_wins']} | {row['ties']} | "
            f"{row['inconsistent']} | {row['unparsed']} | {row['preference']:+.2f} | {row['ci_low']:+.2f} … "
            f"{row['ci_high']:+.2f} | {row['p_value']:.3g}{' †' if row.get('reason') else ''} |"
        )
    small = [f"{group} ({row['reason']})" for group, row in [("all", judge), *judge["by_lang"].items()]
             if row.get("reason")]
    if small:
        lines += ["", f"† no significance is claimed for {', '.join(small)}."]
    return [*lines, ""]


def _lengths(report: dict[str, Any]) -> list[str]:
    roles = report["roles"]
    lines = ["## Answer length (characters: mean / median / p90)", "",
             "| task | group | " + " | ".join(roles) + " |", "|---|---|" + "---|" * len(roles)]
    for task, entry in report["tasks"].items():
        for group, values in entry["groups"].items():
            cells = [_length_cell(values["length"][role]) for role in roles]
            lines.append(f"| {task} | {group} | " + " | ".join(cells) + " |")
    return lines


def _length_cell(length: dict[str, float]) -> str:
    if not length:
        return "n/a"
    return f"{length['mean']:.0f} / {length['median']:.0f} / {length['p90']:.0f}"


def _suites(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Suites", "", "| suite | format | source | items | languages |", "|---|---|---|---|---|"]
    for suite in report["suites"]:
        lines.append(f"| {suite['name']} | {suite['format']} | {suite['path']} | {suite['items']} | "
                     f"{', '.join(suite['langs'])} |")
    return lines


def _notes(report: dict[str, Any]) -> list[str]:
    cache = report["cache"]
    lines = ["", "## Notes", ""]
    lines += [f"- {note}" for note in report["notes"]]
    keyed = ", ".join(f"{role} by {how}" for role, how in cache.get("keyed_by", {}).items())
    lines.append(f"- Cache: {cache['hits']} answer(s) reused, {cache['misses']} asked"
                 + (f"; models identified: {keyed}" if cache["enabled"] and keyed else "")
                 + ("" if cache["enabled"] else " (cache off)") + ".")
    lines.append("- Side-by-side examples of the answers that changed most are in report.html (they hold clinic "
                 "text, so they are not printed here).")
    return lines
