"""Paired before/after statistics: bootstrap confidence intervals and McNemar's exact test.

Base and tuned answer the same items, so differences are judged on paired data: each bootstrap resample
draws items (not answers) and recomputes both models' metric on them, which keeps the pairing and works for
ratio metrics such as loss or micro-F1 as well as for means.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, bootstrap

from finetune.eval._metrics import METRICS, Stats
from finetune.recipe import MIN_PAIRED_EXAMPLES

TOO_FEW = "too few examples"  # the verdict of a group below the minimum n


@dataclass(frozen=True)
class Comparison:
    """tuned − base for one metric on one group of items, with its uncertainty."""

    metric: str
    n: int
    base: float
    tuned: float
    difference: float
    ci_low: float
    ci_high: float
    significant: bool
    better: str
    verdict: str
    test: str
    p_value: float | None = None
    base_only: int | None = None
    tuned_only: int | None = None
    reason: str | None = None  # set below the minimum n: why no significance is claimed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap_ci(
    base: np.ndarray, tuned: np.ndarray, value: Any, n_resamples: int = 1000, confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of value(tuned) − value(base), resampling items with their pair of statistics.

    `base` and `tuned` are (items × columns) arrays of per-answer statistics; `value` turns column sums into
    the metric. Resamples where the metric is undefined (a zero denominator) are left out of the percentiles.
    """
    n = len(base)
    if n < 2:
        return math.nan, math.nan

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        indices = np.atleast_2d(indices)
        base_sums, tuned_sums = base[indices].sum(axis=-2), tuned[indices].sum(axis=-2)
        return np.array([value(t) - value(b) for b, t in zip(base_sums, tuned_sums, strict=True)])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (all-equal) resamples are expected on tiny suites
        result = bootstrap(
            (np.arange(n),), statistic, vectorized=True, batch=200, n_resamples=n_resamples,
            confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        distribution = result.bootstrap_distribution[np.isfinite(result.bootstrap_distribution)]
        if distribution.size == 0:
            return math.nan, math.nan
        tail = 100 * (1 - confidence) / 2
        low, high = (float(v) for v in np.percentile(distribution, [tail, 100 - tail]))
    return low, high


def mcnemar_exact(base_correct: Sequence[bool], tuned_correct: Sequence[bool]) -> tuple[float, int, int]:
    """Exact McNemar test on paired binary outcomes: (two-sided p, base-only successes, tuned-only successes)."""
    base_only = int(sum(bool(b) and not t for b, t in zip(base_correct, tuned_correct, strict=True)))
    tuned_only = int(sum(bool(t) and not b for b, t in zip(base_correct, tuned_correct, strict=True)))
    discordant = base_only + tuned_only
    p_value = 1.0 if discordant == 0 else float(binomtest(min(base_only, tuned_only), discordant, 0.5).pvalue)
    return p_value, base_only, tuned_only


def _verdict(better: str, difference: float, significant: bool) -> str:
    if not significant:
        return "no significant change"
    if better == "none":
        return "changed"
    improved = difference > 0 if better == "higher" else difference < 0
    return "better" if improved else "worse"


def too_few(n: int, min_n: int = MIN_PAIRED_EXAMPLES) -> str | None:
    """Why `n` paired examples are too few for a significance claim, or None when they are enough."""
    return f"n={n} < {min_n}: too few for a significance claim" if n < min_n else None


def compare(
    name: str, base_rows: Sequence[Stats], tuned_rows: Sequence[Stats], n_resamples: int = 1000,
    confidence: float = 0.95, seed: int = 0, min_n: int = MIN_PAIRED_EXAMPLES,
) -> Comparison | None:
    """Compare one metric over paired answers (row i of each is the same item); None if it is undefined.

    Intervals and p-values are computed for any n, but below `min_n` pairs nothing is called significant and
    `reason` says so.
    """
    metric = METRICS[name]
    pairs = [(b[name], t[name]) for b, t in zip(base_rows, tuned_rows, strict=True) if name in b and name in t]
    if not pairs:
        return None
    base = np.asarray([p[0] for p in pairs], dtype=float)
    tuned = np.asarray([p[1] for p in pairs], dtype=float)
    base_value, tuned_value = metric.value(base.sum(axis=0)), metric.value(tuned.sum(axis=0))
    if not (math.isfinite(base_value) and math.isfinite(tuned_value)):
        return None
    difference = tuned_value - base_value
    low, high = paired_bootstrap_ci(base, tuned, metric.value, n_resamples, confidence, seed)
    reason = too_few(len(pairs), min_n)
    p_value: float | None = None
    base_only: int | None = None
    tuned_only: int | None = None
    if metric.paired_test == "mcnemar":
        p_value, base_only, tuned_only = mcnemar_exact(base[:, 0] > 0.5, tuned[:, 0] > 0.5)
        significant = p_value < 1 - confidence
    else:
        significant = math.isfinite(low) and (low > 0 or high < 0)
    significant = significant and reason is None
    verdict = TOO_FEW if reason else _verdict(metric.better, difference, significant)
    return Comparison(name, len(pairs), base_value, tuned_value, difference, low, high, significant,
                      metric.better, verdict, metric.paired_test or "bootstrap", p_value, base_only, tuned_only,
                      reason)


def mean_ci(values: Sequence[float], n_resamples: int = 1000, confidence: float = 0.95,
            seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (nan when fewer than two values)."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap((data,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                           method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins against losses (ties left out)."""
    return 1.0 if wins + losses == 0 else float(binomtest(min(wins, losses), wins + losses, 0.5).pvalue)
