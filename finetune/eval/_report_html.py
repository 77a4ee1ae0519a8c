"""report.html: one self-contained page (figures inline) with every number, the judge and changed answers.

It holds prompts and answers (clinic text), so it stays in the evaluation directory with report.json.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from finetune.eval._report_figures import UNPLOTTED, breakdown_figure, difference_figure
from finetune.eval._report_text import (
    confidence_level,
    describe_comparison,
    fmt,
    fmt_delta,
    metric_unit,
    too_few_summary,
)

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','Noto Sans CJK SC',sans-serif;
margin:2rem auto;max-width:1150px;color:#222;line-height:1.45;padding:0 1rem}
table{border-collapse:collapse;margin:0.6rem 0 1.2rem;font-size:0.88rem}
th,td{border:1px solid #ddd;padding:0.25rem 0.5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} .better{color:#2ca02c;font-weight:600} .worse{color:#d62728;font-weight:600}
.changed{color:#9467bd;font-weight:600} figure{margin:0.8rem 0} img{max-width:100%}
.note{background:#fff8e1;border-left:4px solid #f0c000;padding:0.4rem 0.8rem;margin:0.4rem 0}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-family:inherit;font-size:0.85rem}
.examples td{width:25%}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(png: str | None, caption: str) -> str:
    if png is None:
        return ""
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def render_html(report: dict[str, Any]) -> str:
    """One HTML file with everything inline: it opens the same from a USB stick as from the server."""
    parts = [
        *_header(report),
        *_significant(report),
        *_breakdowns(report),
        *_all_numbers(report),
        *_judge(report),
        *_examples(report),
        *_suites_and_definitions(report),
        "</body></html>",
    ]
    return "\n".join(parts)


def _header(report: dict[str, Any]) -> list[str]:
    roles = report["roles"]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Evaluation: {_e(report['recipe'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation: {_e(report['recipe'])}</h1>",
        "<p>" + " ".join(f"{_e(role.capitalize())}: <code>{_e(report['models'][role])}</code>." for role in roles)
        + f" Served through <code>{_e(report['endpoint'])}</code>; {report['items']} items, greedy decoding.</p>",
    ]
    return parts + [f'<div class="note">{_e(note)}</div>' for note in report["notes"]]


def _significant(report: dict[str, Any]) -> list[str]:
    """The significant differences, then a forest plot of tuned − base for every plotted metric."""
    comparisons = report["comparisons"]
    if not comparisons:
        return []
    level = confidence_level(report)
    significant = [c for c in comparisons if c["significant"]]
    parts = [f"<h2>Significant differences ({level})</h2>"]
    if significant:
        parts.append("<ul>" + "".join(
            f'<li class="{_e(c["verdict"])}">{_e(describe_comparison(report, c))}</li>' for c in significant
        ) + "</ul>")
    else:
        parts.append(f"<p>None of the {len(comparisons)} differences is significant at {level}.</p>")
    summary = too_few_summary(report)
    if summary:
        parts.append(f'<p class="too-few">{_e(summary)}</p>')
    parts.append(f"<h2>Before / after per metric, with {level} intervals</h2>")
    plotted = [m for m in dict.fromkeys(c["metric"] for c in comparisons) if m not in UNPLOTTED]
    for metric in plotted:
        parts.append(_figure(difference_figure(report, metric),
                             f"{metric}: tuned − base per task and language; green better, red worse, grey "
                             "not significant, light grey too few examples for a claim"))
    return parts


def _breakdowns(report: dict[str, Any]) -> list[str]:
    parts = ["<h2>Per-language breakdown</h2>"]
    for task in report["tasks"]:
        parts.append(_figure(breakdown_figure(report, task), f"{task}: base and tuned per language"))
    return parts


def _all_numbers(report: dict[str, Any]) -> list[str]:
    """Every comparison of every task (or, for one model, every value) in a table per task."""
    roles = report["roles"]
    parts = ["<h2>All numbers</h2>"]
    for task, entry in report["tasks"].items():
        parts.append(f"<h3>{_e(task)} <small>({_e(entry['kind'])}{', bundled sample' if entry['sample'] else ''})"
                     "</small></h3>")
        if len(roles) == 2:
            rows = [_comparison_row(report, c) for c in report["comparisons"] if c["task"] == task]
            parts.append(_table(["group", "metric", "n", "base", "tuned", "Δ", f"{confidence_level(report)} CI",
                                 "McNemar p", "verdict"], rows))
        else:
            rows = [[_e(g), _e(m), str(v["examples"]), fmt(val, metric_unit(report, m))]
                    for g, v in entry["groups"].items() for m, val in v[roles[0]].items()]
            parts.append(_table(["group", "metric", "n", roles[0]], rows))
    return parts


def _comparison_row(report: dict[str, Any], c: dict[str, Any]) -> list[str]:
    unit = metric_unit(report, c["metric"])
    return [_e(c["group"]), _e(c["metric"]), str(c["n"]), fmt(c["base"], unit),
            fmt(c["tuned"], unit), fmt_delta(c["difference"], unit),
            f"{fmt_delta(c['ci_low'], unit)} … {fmt_delta(c['ci_high'], unit)}",
            f"{c['p_value']:.3g}" if c["p_value"] is not None else "bootstrap",
            f'<span class="{_e(c["verdict"])}">{_e(c["verdict"])}</span>'
            + (f"<br><small>{_e(c['reason'])}</small>" if c.get("reason") else "")]


def _judge(report: dict[str, Any]) -> list[str]:
    judge = report.get("judge")
    if not judge:
        return []
    rows = [[_e(group), str(r["items"]), str(r["tuned_wins"]), str(r["base_wins"]), str(r["ties"]),
             str(r["inconsistent"]), str(r["unparsed"]), f"{r['preference']:+.2f}",
             f"{r['ci_low']:+.2f} … {r['ci_high']:+.2f}",
             f"{r['p_value']:.3g}" + (f" ({_e(r['reason'])})" if r.get("reason") else "")]
            for group, r in [("all", judge), *judge["by_lang"].items()]]
    return [f"<h2>Judge: <code>{_e(judge['model'])}</code></h2>",
            "<p>Every pair was judged twice with the answers swapped; a side wins only when both orders agree.</p>",
            _table(["group", "items", "tuned wins", "base wins", "ties", "position-inconsistent", "unparsed",
                    "preference", "CI", "sign test p"], rows)]


def _examples(report: dict[str, Any]) -> list[str]:
    changed = report.get("examples_changed") or {}
    parts = []
    for direction, title in (("improved", "Answers that improved most"), ("regressed", "Answers that got worse")):
        rows = [[f"<b>{_e(x['task'])}</b> · {_e(x['lang'])}<br>{x['base_score']:.2f} → {x['tuned_score']:.2f}"
                 f"<pre>{_e(x['prompt'][:800])}</pre>", f"<pre>{_e(x['expected'][:800])}</pre>",
                 f"<pre>{_e(x['base'][:800])}</pre>", f"<pre>{_e(x['tuned'][:800])}</pre>"]
                for x in changed.get(direction, [])]
        parts.append(f"<h2>{title}</h2>")
        parts.append(_table(["prompt", "expected", "base", "tuned"], rows, "examples") if rows
                     else "<p>None.</p>")
    return parts


def _suites_and_definitions(report: dict[str, Any]) -> list[str]:
    return [
        "<h2>Suites</h2>",
        _table(["suite", "format", "source", "items", "languages"], [
            [_e(s["name"]), _e(s["format"]), _e(s["path"]), str(s["items"]), _e(", ".join(s["langs"]))]
            for s in report["suites"]]),
        "<h2>Metric definitions</h2>",
        _table(["metric", "what it measures", "better", "test"], [
            [_e(name), _e(d["description"]), _e(d["better"]), _e(d["test"])]
            for name, d in report["metric_definitions"].items()]),
    ]
