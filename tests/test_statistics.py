"""minillm.statistics against table values and hand computations."""
from __future__ import annotations

import math

import pytest

from minillm.statistics import (no_evidence_of_difference, paired_difference, regularized_incomplete_beta,
                                student_t_cdf, student_t_quantile)


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
    assert no_evidence_of_difference(result) is False


def test_the_approx_rule_is_the_ci_containing_zero():
    close = paired_difference([1.0, -1.0, 2.0], [0.0, 0.0, 0.0])  # mean 2/3, CI wide around it
    assert close["ci_low"] < 0 < close["ci_high"] and close["p_value"] >= 0.05
    assert no_evidence_of_difference(close) is True


def test_one_pair_has_no_test_and_zero_spread_does_not_divide_by_zero():
    single = paired_difference([3.0], [1.0])
    assert (single["mean_difference"], single["ci_low"], single["p_value"], single["note"]) == (2.0, None, None,
                                                                                               "n=1, no test")
    assert no_evidence_of_difference(single) is None
    constant = paired_difference([2.0, 3.0], [1.0, 2.0])
    assert (constant["ci_low"], constant["ci_high"], constant["p_value"], constant["t"]) == (1.0, 1.0, 0.0, None)
    assert no_evidence_of_difference(constant) is False
    same = paired_difference([2.0, 3.0], [2.0, 3.0])
    assert (same["ci_low"], same["ci_high"], same["p_value"]) == (0.0, 0.0, 1.0)
    assert no_evidence_of_difference(same) is True
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 2.0])
