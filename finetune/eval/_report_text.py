"""Numbers and comparisons as text, the same in report.md and report.html."""

from __future__ import annotations

import math
from typing import Any


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


def metric_unit(report: dict[str, Any], metric: str) -> str:
    return report["metric_definitions"][metric]["unit"]


def confidence_level(report: dict[str, Any]) -> str:
    """The interval's confidence as the report prints it ("95%")."""
    return f"{100 * report['settings']['confidence']:.0f}%"


def describe_comparison(report: dict[str, Any], c: dict[str, Any]) -> str:
    unit = metric_unit(report, c["metric"])
    ci = f"{confidence_level(report)} CI {fmt_delta(c['ci_low'], unit)} … {fmt_delta(c['ci_high'], unit)}"
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
