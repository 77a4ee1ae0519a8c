"""Paired bootstrap intervals and McNemar's test on fixed data."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from finetune.eval._stats import compare, mcnemar_exact, mean_ci, paired_bootstrap_ci, sign_test
from finetune.recipe._eval import MIN_PAIRED_EXAMPLES, EvalConfig


def _binary(name: str, outcomes: list[int]) -> list[dict[str, list[float]]]:
    return [{name: [float(o), 1]} for o in outcomes]


def test_mcnemar_exact_p_values() -> None:
    # 1 vs 9 discordant pairs: two-sided binomial p = 2 * P(X <= 1 | n=10, 1/2) = 22/1024.
    base = [True] * 1 + [False] * 9 + [True] * 5
    tuned = [False] * 1 + [True] * 9 + [True] * 5
    p_value, base_only, tuned_only = mcnemar_exact(base, tuned)
    assert (base_only, tuned_only) == (1, 9)
    assert p_value == pytest.approx(22 / 1024)
    assert mcnemar_exact([True, False], [True, False])[0] == 1.0


def test_clear_accuracy_gain_is_significant_and_better() -> None:
    base = _binary("accuracy", [0] * 14 + [1] * 6)
    tuned = _binary("accuracy", [1] * 14 + [1] * 6)
    result = compare("accuracy", base, tuned, n_resamples=500)
    assert result is not None
    assert result.difference == pytest.approx(0.7)
    assert 0 < result.ci_low <= 0.7 <= result.ci_high
    assert result.test == "mcnemar" and result.p_value == pytest.approx(2 * 0.5**14)
    assert result.significant and result.verdict == "better"


def test_equal_models_show_no_change() -> None:
    rows = _binary("accuracy", [1, 0, 1, 1, 0, 1] * 2)
    result = compare("accuracy", rows, rows, n_resamples=200)
    assert result is not None
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert not result.significant and result.verdict == "no significant change"


def test_lower_loss_is_better_and_uses_the_ratio_of_sums() -> None:
    base = [{"loss": [20.0 + i % 3, 10]} for i in range(30)]
    tuned = [{"loss": [15.0 + i % 3, 10]} for i in range(30)]
    result = compare("loss", base, tuned, n_resamples=300)
    assert result is not None
    assert result.difference == pytest.approx(-0.5)
    assert result.ci_high < 0 and result.verdict == "better" and result.test == "bootstrap"


def test_noisy_small_difference_is_not_significant() -> None:
    base = _binary("referral", [1, 0, 1, 0, 1, 0, 1, 0])
    tuned = _binary("referral", [1, 1, 0, 0, 1, 0, 1, 0])
    result = compare("referral", base, tuned, n_resamples=300, min_n=2)
    assert result is not None and not result.significant and result.verdict == "no significant change"
    assert result.ci_low < 0 < result.ci_high


def test_worse_forbidden_terms_are_called_worse() -> None:
    base = _binary("forbidden_terms", [0] * 12)
    tuned = _binary("forbidden_terms", [1] * 12)
    result = compare("forbidden_terms", base, tuned, n_resamples=200)
    assert result is not None and result.significant and result.verdict == "worse"


def test_bootstrap_is_reproducible_with_a_seed_and_skips_undefined_resamples() -> None:
    import numpy as np

    from finetune.eval._metrics import METRICS

    base = np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 3.0], [1.0, 2.0]])
    tuned = np.array([[2.0, 2.0], [0.0, 0.0], [3.0, 3.0], [1.0, 1.0]])
    first = paired_bootstrap_ci(base, tuned, METRICS["terms_used"].value, 400, 0.95, seed=3)
    assert first == paired_bootstrap_ci(base, tuned, METRICS["terms_used"].value, 400, 0.95, seed=3)
    assert all(np.isfinite(first))


def test_metric_missing_on_both_sides_is_not_compared() -> None:
    assert compare("accuracy", [{"chrf": [0.0] * 18}], [{"chrf": [0.0] * 18}]) is None


def test_mean_interval_and_sign_test() -> None:
    low, high = mean_ci([1.0] * 10 + [0.0] * 10, n_resamples=500)
    assert 0.2 < low < 0.5 < high < 0.8
    assert sign_test(10, 0) == pytest.approx(2 * 0.5**10)
    assert sign_test(0, 0) == 1.0


def _losses(pairs: int) -> tuple[list[dict[str, list[float]]], list[dict[str, list[float]]]]:
    """Every tuned answer far likelier than the base's: an interval over any resample lies below zero."""
    base = [{"loss": [30.0 + i, 10]} for i in range(pairs)]
    tuned = [{"loss": [12.0 + i, 10]} for i in range(pairs)]
    return base, tuned


def test_too_few_pairs_claim_no_significance_and_say_why() -> None:
    assert MIN_PAIRED_EXAMPLES == EvalConfig().min_paired_examples == 10
    few = compare("loss", *_losses(2), n_resamples=200)
    assert few is not None and few.n == 2 and few.ci_high < 0  # the interval alone would call this better
    assert not few.significant and few.verdict == "too few examples"
    assert few.reason == "n=2 < 10: too few for a significance claim"
    assert compare("loss", *_losses(2), n_resamples=200, min_n=2).significant  # what the minimum prevents

    enough = compare("loss", *_losses(10), n_resamples=200)
    assert enough is not None and enough.significant and enough.verdict == "better" and enough.reason is None


def test_mcnemar_below_the_minimum_is_not_claimed_either() -> None:
    nine = compare("accuracy", _binary("accuracy", [0] * 9), _binary("accuracy", [1] * 9), n_resamples=200)
    assert nine is not None and nine.p_value == pytest.approx(2 * 0.5**9) and nine.p_value < 0.05
    assert not nine.significant and nine.reason == "n=9 < 10: too few for a significance claim"
    ten = compare("accuracy", _binary("accuracy", [0] * 10), _binary("accuracy", [1] * 10), n_resamples=200)
    assert ten is not None and ten.significant and ten.verdict == "better"
    with pytest.raises(ValidationError, match="min_paired_examples"):
        EvalConfig(min_paired_examples=1)


def test_a_judge_sign_test_below_the_minimum_claims_nothing() -> None:
    """Nine straight wins give a sign-test p of 0.004, yet nine items are too few for a claim."""
    from finetune.eval._judge import summarise_verdicts

    rows = [{"outcome": "tuned", "lang": "ru"}] * 9
    small = summarise_verdicts(rows, 200, 0.95, 0)
    assert small["p_value"] < 0.01 and not small["significant"]
    assert small["reason"] == "n=9 < 10: too few for a significance claim"
    enough = summarise_verdicts([*rows, {"outcome": "tuned", "lang": "ru"}], 200, 0.95, 0)
    assert enough["significant"] and enough["reason"] is None
    assert not summarise_verdicts(rows, 200, 0.95, 0, min_n=20)["significant"]
