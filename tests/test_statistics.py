"""minillm.statistics against table values and hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from minillm.statistics import (BOOTSTRAP_RESAMPLES, binomial_two_sided, format_p, holm_adjust, mcnemar_exact,
                                no_evidence_of_difference, paired_bootstrap, paired_difference,
                                regularized_incomplete_beta, sign_test, student_t_cdf, student_t_quantile)


@pytest.mark.parametrize("dof, quantile", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423)])
def test_t_quantile_matches_the_table(dof, quantile):
    assert student_t_quantile(0.975, dof) == pytest.approx(quantile, abs=1e-4)
    assert student_t_quantile(0.025, dof) == pytest.approx(-quantile, abs=1e-4)


def test_t_cdf_closed_forms():
    assert student_t_cdf(0.0, 7) == pytest.approx(0.5)
    for t in (-3.0, 0.5, 2.0):
        # 1 dof is the Cauchy distribution; 2 dof has F(t) = 1/2 + t / (2√(2 + t²)).
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert student_t_cdf(math.inf, 3) == 1.0 and student_t_cdf(-math.inf, 3) == 0.0
    assert regularized_incomplete_beta(0.3, 1.0, 1.0) == pytest.approx(0.3)  # I_x(1, 1) = x


def test_paired_difference_by_hand():
    # Differences 1..5: mean 3, sd √2.5 = 1.5811, se 0.7071, t 4.2426 (4 dof);
    # CI 3 ± 2.7764·0.7071 = [1.0368, 4.9632]; with 4 dof F(t) = 1/2 + (3/4)·u·(1 − u²/3),
    # u = t/√(4 + t²) = 3/√11 -> p = 2·(1 − F) = 0.013236.
    result = paired_difference([11.0, 12.0, 13.0, 14.0, 15.0], [10.0] * 5)
    u = 3 / math.sqrt(11)
    assert result["n_pairs"] == 5 and result["dof"] == 4
    assert result["mean_difference"] == pytest.approx(3.0)
    assert result["sd"] == pytest.approx(1.5811, abs=1e-4) and result["se"] == pytest.approx(0.7071, abs=1e-4)
    assert result["t"] == pytest.approx(4.2426, abs=1e-4)
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(1.0368, abs=1e-4), pytest.approx(4.9632, abs=1e-4))
    assert result["p_value"] == pytest.approx(2 * (0.5 - 0.75 * u * (1 - u * u / 3)), abs=1e-9)
    assert result["p_value"] == pytest.approx(0.01324, abs=1e-5)
    assert no_evidence_of_difference(result["p_value"]) is False


def test_the_approx_rule_is_p_at_least_0_05_which_for_t_is_the_ci_containing_zero():
    close = paired_difference([1.0, -1.0, 2.0], [0.0, 0.0, 0.0])  # mean 2/3, CI wide around it
    assert close["ci_low"] < 0 < close["ci_high"] and close["p_value"] >= 0.05
    assert no_evidence_of_difference(close["p_value"]) is True
    assert no_evidence_of_difference(0.05) is True and no_evidence_of_difference(0.0499) is False


def test_one_pair_has_no_test_and_equal_differences_get_the_sign_test_not_p_0():
    single = paired_difference([3.0], [1.0])
    assert (single["mean_difference"], single["ci_low"], single["p_value"], single["note"]) == (2.0, None, None,
                                                                                               "n=1, no test")
    assert no_evidence_of_difference(single["p_value"]) is None
    # Differences 1, 1: no t interval (it would have zero width and p = 0); the sign test: 2·(1/2)² = 0.5.
    constant = paired_difference([2.0, 3.0], [1.0, 2.0])
    assert (constant["ci_low"], constant["ci_high"], constant["p_value"], constant["t"]) == (None, None, 0.5, None)
    assert constant["note"] == "every paired difference is +1: no spread, exact sign test over 2 seeds"
    assert constant["test"].startswith("exact sign test")
    # Five equal differences: 2/32 = 0.0625, still ≈ at 5%; ten: 2/1024.
    assert paired_difference([1.0] * 5, [0.0] * 5)["p_value"] == 0.0625
    assert paired_difference([1.0] * 10, [0.0] * 10)["p_value"] == pytest.approx(2 / 1024)
    same = paired_difference([2.0, 3.0], [2.0, 3.0])
    assert (same["ci_low"], same["ci_high"], same["p_value"]) == (None, None, 1.0)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 2.0])


def test_holm_adjustment_by_hand():
    # Sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06,
    # 1·0.04 = 0.04 -> 0.06 (monotone); back in input order, None untouched and not counted.
    assert holm_adjust([0.01, None, 0.04, 0.03, 0.005]) == pytest.approx([0.03, None, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm_adjust([0.2]) == [0.2] and holm_adjust([]) == [] and holm_adjust([None]) == [None]


def test_exact_binomial_and_sign_tests_by_hand():
    assert binomial_two_sided(3, 3) == 0.25  # 2·(1/2)³
    assert binomial_two_sided(1, 4) == 0.625  # 2·(C(4,0) + C(4,1))/16
    assert binomial_two_sided(2, 4) == 1.0 and binomial_two_sided(0, 0) == 1.0
    assert binomial_two_sided(0, 1000) == pytest.approx(2.0 ** -999)  # exact integers, no overflow
    assert sign_test([0.0, 1.0, 2.0]) == {"n_nonzero": 2, "positives": 2, "p_value": 0.5}  # zeros dropped
    with pytest.raises(ValueError):
        binomial_two_sided(5, 4)


def test_mcnemar_exact_by_hand():
    method = [True, True, True, False, True, True]
    baseline = [False, False, False, False, True, True]
    result = mcnemar_exact(method, baseline)
    # Discordant: 3 only the method right, 0 only the baseline: p = 2·(1/2)³; Δ = 3/6 = 50 points.
    assert (result["only_method_right"], result["only_baseline_right"], result["p_value"]) == (3, 0, 0.25)
    assert result["mean_difference"] == 50.0 and result["ci_low"] <= 50.0 <= result["ci_high"]
    assert mcnemar_exact([True, False], [False, True])["p_value"] == 1.0
    alike = mcnemar_exact([True, False], [True, False])
    assert (alike["p_value"], alike["ci_low"], alike["mean_difference"]) == (1.0, None, 0.0)


def test_paired_bootstrap_is_fixed_never_p_0_and_near_the_normal_interval():
    rng = np.random.default_rng(0)
    baseline = rng.normal(50.0, 10.0, 400)
    noise = rng.normal(0.0, 4.0, 400)
    result = paired_bootstrap(baseline + 1.0 + noise, baseline)
    assert result == paired_bootstrap(baseline + 1.0 + noise, baseline)  # fixed seed: the same every time
    differences = 1.0 + noise
    half_width = 1.96 * differences.std(ddof=1) / math.sqrt(400)
    assert result["mean_difference"] == pytest.approx(differences.mean())
    assert result["ci_low"] == pytest.approx(differences.mean() - half_width, abs=0.1 * half_width)
    assert result["ci_high"] == pytest.approx(differences.mean() + half_width, abs=0.1 * half_width)
    # Far from 0: the smallest p the resamples can give, not 0.
    far = paired_bootstrap(baseline + 10.0 + noise, baseline)
    assert far["p_value"] == 2.0 / (BOOTSTRAP_RESAMPLES + 1) and format_p(far["p_value"]) == "< 0.001"
    assert paired_bootstrap(baseline + noise, baseline)["p_value"] > 0.05
    equal = paired_bootstrap([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert (equal["ci_low"], equal["p_value"]) == (None, 0.25) and "every per-prompt difference" in equal["note"]


def test_p_values_never_print_as_zero():
    assert [format_p(p) for p in (0.0, 1e-9, 0.000999, 0.001, 0.0351, 1.0, None)] == [
        "< 0.001", "< 0.001", "< 0.001", "0.001", "0.035", "1.000", "–"]
