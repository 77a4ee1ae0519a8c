"""report.md and a self-contained report.html (figures embedded as base64 PNG) from the report's JSON.

report.md holds numbers only and is printed by the command line; answers and prompts (clinic text) appear
only in report.html and report.json, which stay in the evaluation directory.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

PRIMARY_METRICS = {
    "mcq": ("accuracy", "unparseable"),
    "yesno": ("accuracy", "unparseable"),
    "icd10": ("icd10_top1", "icd10_top3"),
    "extraction": ("entity_f1", "valid_json"),
    "free_text": ("chrf", "loss", "language_fidelity"),
    "safety": ("referral", "language_fidelity"),
}
UNPLOTTED = ("answer_chars", "truncated", "completion_tokens", "perplexity")  # in the tables, not worth a figure
COLORS = {"base": "#8c8c8c", "tuned": "#1f77b4", "better": "#2ca02c", "worse": "#d62728",
          "changed": "#9467bd", "no significant change": "#7f7f7f", "too few examples": "#c7c7c7"}


# --- numbers as text ---------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "nats":
        return f"{value:.3f}"
    if unit in ("score", "ppl", "tokens"):
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_delta(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "share":
        return f"{100 * value:+.1f} pp"
    if unit == "nats":
        return f"{value:+.3f}"
    return f"{value:+.1f}"


def _unit(report: dict[str, Any], metric: str) -> str:
    return report["metric_definitions"][metric]["unit"]


def describe_comparison(report: dict[str, Any], c: dict[str, Any]) -> str:
    unit = _unit(report, c["metric"])
    level = f"{100 * report['settings']['confidence']:.0f}%"
    ci = f"{level} CI {fmt_delta(c['ci_low'], unit)} … {fmt_delta(c['ci_high'], unit)}"
    test = f", McNemar p={c['p_value']:.3g}" if c["test"] == "mcnemar" else ""
    return (f"{c['task']} / {c['group']} — {c['metric']}: {fmt(c['base'], unit)} → {fmt(c['tuned'], unit)} "
            f"({fmt_delta(c['difference'], unit)}, {ci}{test}, n={c['n']}): {c['verdict']}")


def too_few_summary(report: dict[str, Any]) -> str | None:
    """Which groups are too small for a significance claim, and why; None when every group is large enough."""
    small = dict.fromkeys(f"{c['task']} / {c['group']} ({c['reason']})" for c in report["comparisons"]
                          if c.get("reason"))
    if not small:
        return None
    minimum = report["settings"].get("min_paired_examples")
    return (f"No significance is claimed for groups with fewer than {minimum} paired examples "
            f"(eval.min_paired_examples): {'; '.join(small)}.")


# --- markdown ----------------------------------------------------------------------------------------


def render_markdown(report: dict[str, Any]) -> str:
    roles = report["roles"]
    level = f"{100 * report['settings']['confidence']:.0f}%"
    lines = [
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
    if report["metrics"] and set(roles) == {"base", "tuned"}:
        lines += [
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
    comparisons = report["comparisons"]
    if comparisons:
        significant = [c for c in comparisons if c["significant"]]
        lines += [f"## Significant differences ({level})", ""]
        if significant:
            lines += [f"- {describe_comparison(report, c)}" for c in significant]
        else:
            lines.append(f"None of the {len(comparisons)} differences is significant at {level}.")
        summary = too_few_summary(report)
        if summary:
            lines += ["", summary]
        lines += [
            "",
            f"Intervals are paired bootstrap {level} intervals of tuned − base "
            f"({report['settings']['bootstrap_resamples']} resamples of items); binary outcomes (accuracy, top-k, "
            "referral, language) are also tested with "
            "McNemar's exact test, which decides their significance. No correction for multiple comparisons.",
            "",
        ]
    lines += ["## By task and language", ""]
    if len(roles) == 2:
        lines += [f"Each cell: base → tuned (difference); * marks a difference significant at {level}, † a group "
                  "too small for a significance claim. Intervals and p-values for every cell are in report.html "
                  "and report.json.", ""]
    for task, entry in report["tasks"].items():
        sample = " — bundled sample" if entry["sample"] else ""
        groups = list(entry["groups"])
        lines += [f"### {task} ({entry['kind']}{sample})", "",
                  "| metric | " + " | ".join(f"{g} (n={entry['groups'][g]['examples']})" for g in groups) + " |",
                  "|---|" + "---|" * len(groups)]
        found = {(c["group"], c["metric"]): c for c in comparisons if c["task"] == task}
        metrics = list(dict.fromkeys(m for g in groups for m in entry["groups"][g][roles[-1]]))
        for metric in metrics:
            unit = _unit(report, metric)
            better = report["metric_definitions"][metric]["better"]
            cells = []
            for group in groups:
                values = entry["groups"][group]
                if len(roles) == 1:
                    cells.append(fmt(values[roles[-1]].get(metric), unit))
                    continue
                if (group, metric) not in found:  # a metric without a paired difference (e.g. perplexity)
                    cells.append(" → ".join(fmt(values[role].get(metric), unit) for role in roles))
                    continue
                c = found[(group, metric)]
                mark = "*" if c["significant"] else "†" if c.get("reason") else ""
                cells.append(f"{fmt(c['base'], unit)} → {fmt(c['tuned'], unit)} ({fmt_delta(c['difference'], unit)})"
                             + mark)
            label = f"{metric} ({better})" if better != "none" else metric
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _judge_markdown(report)
    lines += ["## Answer length (characters: mean / median / p90)", "",
              "| task | group | " + " | ".join(roles) + " |", "|---|---|" + "---|" * len(roles)]
    for task, entry in report["tasks"].items():
        for group, values in entry["groups"].items():
            cells = [_length_cell(values["length"][role]) for role in roles]
            lines.append(f"| {task} | {group} | " + " | ".join(cells) + " |")
    lines += ["", "## Suites", "", "| suite | format | source | items | languages |", "|---|---|---|---|---|"]
    for suite in report["suites"]:
        lines.append(f"| {suite['name']} | {suite['format']} | {suite['path']} | {suite['items']} | "
                     f"{', '.join(suite['langs'])} |")
    cache = report["cache"]
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in report["notes"]]
    keyed = ", ".join(f"{role} by {how}" for role, how in cache.get("keyed_by", {}).items())
    lines.append(f"- Cache: {cache['hits']} answer(s) reused, {cache['misses']} asked"
                 + (f"; models identified: {keyed}" if cache["enabled"] and keyed else "")
                 + ("" if cache["enabled"] else " (cache off)") + ".")
    lines.append("- Side-by-side examples of the answers that changed most are in report.html (they hold clinic "
                 "text, so they are not printed here).")
    return "\n".join(lines) + "\n"


def _length_cell(length: dict[str, float]) -> str:
    if not length:
        return "n/a"
    return f"{length['mean']:.0f} / {length['median']:.0f} / {length['p90']:.0f}"


def _judge_markdown(report: dict[str, Any]) -> list[str]:
    judge = report.get("judge")
    if not judge:
        return []
    level = f"{100 * report['settings']['confidence']:.0f}%"
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


# --- figures -------------------------------------------------------------------------------------------


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)  # fixed margins: a "tight" bounding box would draw twice
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def difference_figure(report: dict[str, Any], metric: str) -> str | None:
    """tuned − base with its interval for every task and language that has `metric` (forest plot)."""
    rows = [c for c in report["comparisons"] if c["metric"] == metric]
    if not rows:
        return None
    plt = _pyplot()
    unit = _unit(report, metric)
    scale = 100.0 if unit == "share" else 1.0
    labels = [f"{c['task']} · {c['group']}" for c in reversed(rows)]
    width, height = 7.5, 1.2 + 0.3 * len(rows)
    figure, axis = plt.subplots(figsize=(width, height))
    left = min(0.55, (0.2 + 0.065 * max(len(label) for label in labels)) / width)
    figure.subplots_adjust(left=left, right=0.97, top=1 - 0.4 / height, bottom=0.65 / height)
    for y, c in enumerate(reversed(rows)):
        color = COLORS[c["verdict"]]
        low, high = c["ci_low"], c["ci_high"]
        if low is not None and math.isfinite(low):
            axis.plot([scale * low, scale * high], [y, y], color=color, linewidth=2.2)
        axis.plot(scale * c["difference"], y, "o", color=color)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_yticks(range(len(rows)))
    axis.set_yticklabels(labels, fontsize=8)
    axis.set_xlabel(f"tuned − base ({'percentage points' if unit == 'share' else unit})")
    better = report["metric_definitions"][metric]["better"]
    axis.set_title(f"{metric}: difference with {100 * report['settings']['confidence']:.0f}% CI"
                   + (f" ({better} is better)" if better != "none" else ""), fontsize=10)
    axis.grid(axis="x", alpha=0.3)
    return _png(figure)


def breakdown_figure(report: dict[str, Any], task: str) -> str | None:
    """Base and tuned per language for the task's main metrics."""
    entry = report["tasks"][task]
    roles = report["roles"]
    groups = list(entry["groups"])
    metrics = [m for m in PRIMARY_METRICS.get(entry["kind"], ())
               if any(entry["groups"][g][roles[0]].get(m) is not None for g in groups)]
    if not metrics:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.8), squeeze=False)
    figure.subplots_adjust(left=0.55 / (3.2 * len(metrics)), right=0.98, top=0.78, bottom=0.12, wspace=0.4)
    width = 0.8 / len(roles)
    for axis, metric in zip(axes[0], metrics, strict=True):
        unit = _unit(report, metric)
        scale = 100.0 if unit == "share" else 1.0
        for r, role in enumerate(roles):
            values = [entry["groups"][g][role].get(metric) for g in groups]
            positions = [x + (r - (len(roles) - 1) / 2) * width for x in range(len(groups))]
            axis.bar(positions, [scale * v if v is not None else 0 for v in values], width, label=role,
                     color=COLORS[role])
        if unit in ("share", "score"):
            axis.set_ylim(0, 100)
        else:
            axis.set_ylim(bottom=0)
        axis.set_xticks(range(len(groups)))
        axis.set_xticklabels(groups, fontsize=8)
        axis.set_title(f"{metric}{' (%)' if unit == 'share' else ''}", fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper right", ncol=len(roles), fontsize=8, frameon=False)
    figure.suptitle(task, fontsize=10, x=0.02, ha="left")
    return _png(figure)


# --- html ------------------------------------------------------------------------------------------------

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
    roles = report["roles"]
    level = f"{100 * report['settings']['confidence']:.0f}%"
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Evaluation: {_e(report['recipe'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation: {_e(report['recipe'])}</h1>",
        "<p>" + " ".join(f"{_e(role.capitalize())}: <code>{_e(report['models'][role])}</code>." for role in roles)
        + f" Served through <code>{_e(report['endpoint'])}</code>; {report['items']} items, greedy decoding.</p>",
    ]
    parts += [f'<div class="note">{_e(note)}</div>' for note in report["notes"]]
    comparisons = report["comparisons"]
    if comparisons:
        significant = [c for c in comparisons if c["significant"]]
        parts.append(f"<h2>Significant differences ({level})</h2>")
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
    parts.append("<h2>Per-language breakdown</h2>")
    for task in report["tasks"]:
        parts.append(_figure(breakdown_figure(report, task), f"{task}: base and tuned per language"))
    parts.append("<h2>All numbers</h2>")
    for task, entry in report["tasks"].items():
        parts.append(f"<h3>{_e(task)} <small>({_e(entry['kind'])}{', bundled sample' if entry['sample'] else ''})"
                     "</small></h3>")
        if len(roles) == 2:
            rows = []
            for c in (c for c in comparisons if c["task"] == task):
                unit = _unit(report, c["metric"])
                rows.append([_e(c["group"]), _e(c["metric"]), str(c["n"]), fmt(c["base"], unit),
                             fmt(c["tuned"], unit), fmt_delta(c["difference"], unit),
                             f"{fmt_delta(c['ci_low'], unit)} … {fmt_delta(c['ci_high'], unit)}",
                             f"{c['p_value']:.3g}" if c["p_value"] is not None else "bootstrap",
                             f'<span class="{_e(c["verdict"])}">{_e(c["verdict"])}</span>'
                             + (f"<br><small>{_e(c['reason'])}</small>" if c.get("reason") else "")])
            parts.append(_table(["group", "metric", "n", "base", "tuned", "Δ", f"{level} CI", "McNemar p", "verdict"],
                                rows))
        else:
            rows = [[_e(g), _e(m), str(v["examples"]), fmt(val, _unit(report, m))]
                    for g, v in entry["groups"].items() for m, val in v[roles[0]].items()]
            parts.append(_table(["group", "metric", "n", roles[0]], rows))
    parts += _judge_html(report)
    parts += _examples_html(report)
    parts.append("<h2>Suites</h2>")
    parts.append(_table(["suite", "format", "source", "items", "languages"], [
        [_e(s["name"]), _e(s["format"]), _e(s["path"]), str(s["items"]), _e(", ".join(s["langs"]))]
        for s in report["suites"]]))
    parts.append("<h2>Metric definitions</h2>")
    parts.append(_table(["metric", "what it measures", "better", "test"], [
        [_e(name), _e(d["description"]), _e(d["better"]), _e(d["test"])]
        for name, d in report["metric_definitions"].items()]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _judge_html(report: dict[str, Any]) -> list[str]:
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


def _examples_html(report: dict[str, Any]) -> list[str]:
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
