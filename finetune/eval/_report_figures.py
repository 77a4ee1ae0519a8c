"""The figures of report.html, drawn with matplotlib and embedded as base64 PNG."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from finetune.eval._report_text import confidence_level, metric_unit

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
    unit = metric_unit(report, metric)
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
    axis.set_title(f"{metric}: difference with {confidence_level(report)} CI"
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
        unit = metric_unit(report, metric)
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
