"""Summary statistics (`mean_and_std`, the one definition every report and tool uses) and paired
comparisons over training seeds: Student's t without scipy (not a dependency).

`paired_difference` is the paired t-test a reviewer expects: differences a − b of runs that share
a training seed (and so the student init and data order), their mean, the 95% confidence
interval mean ± t_{0.975, n−1} · sd / √n and the two-sided p-value. The Student-t CDF comes from
the regularised incomplete beta function (Lentz's continued fraction), its quantile from
bisection on the CDF.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
TEST_NAME = "paired t-test (two-sided), 95% CI = mean ± t(0.975, n−1)·sd/√n over training seeds"
APPROX_MARK = "≈"
# The one rule for "≈", in the table and the prose alike.
APPROX_RULE = (f"{APPROX_MARK} = no evidence of a difference: the 95% confidence interval of the paired difference "
               "over training seeds contains 0 (equivalently p ≥ 0.05, paired t-test). "
               "A row with one training seed gets no test (n=1, no test).")

_CONTINUED_FRACTION_STEPS = 300
_CONTINUED_FRACTION_EPSILON = 1e-15
_TINY = 1e-300  # keeps Lentz's denominators away from zero


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes §6.4, modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, _CONTINUED_FRACTION_STEPS + 1):
        # Even step, then odd step of the fraction's terms.
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            fraction *= c * d
        if abs(c * d - 1.0) < _CONTINUED_FRACTION_EPSILON:
            return fraction
    raise ArithmeticError(f"incomplete beta I_{x}({a}, {b}): continued fraction did not converge")


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) for 0 ≤ x ≤ 1, a, b > 0."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry beyond.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(1.0 - x, b, a) / b


def student_t_cdf(t: float, dof: float) -> float:
    """P(T ≤ t) for Student's t with `dof` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {dof}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * regularized_incomplete_beta(dof / (dof + t * t), dof / 2.0, 0.5)  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(probability: float, dof: float, tolerance: float = 1e-10) -> float:
    """The t with P(T ≤ t) = `probability`, by bisection on `student_t_cdf`."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, dof, tolerance)
    low, high = 0.0, 1.0
    while student_t_cdf(high, dof) < probability:
        low, high = high, 2.0 * high
    while high - low > tolerance:
        middle = (low + high) / 2.0
        low, high = (middle, high) if student_t_cdf(middle, dof) < probability else (low, middle)
    return (low + high) / 2.0


def paired_difference(a: list[float], b: list[float]) -> dict:
    """Paired t-test of a − b (pairs by position). Returns n_pairs, mean_difference, sd, se,
    t, dof, ci_low, ci_high, p_value and "test"; with fewer than 2 pairs the test fields are
    None and "note" says why. Differences with zero spread give a point CI and p = 0 (mean ≠ 0)
    or 1 (mean = 0), without dividing by zero."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b)]
    n = len(differences)
    result = {"n_pairs": n, "mean_difference": sum(differences) / n if n else None, "sd": None, "se": None,
              "t": None, "dof": n - 1 if n else None, "ci_low": None, "ci_high": None, "p_value": None,
              "test": TEST_NAME}
    if n < 2:
        return result | {"note": f"n={n}, no test"}
    mean = result["mean_difference"]
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    se = sd / math.sqrt(n)
    result |= {"sd": sd, "se": se}
    if se == 0.0:
        return result | {"ci_low": mean, "ci_high": mean, "p_value": 0.0 if mean != 0 else 1.0}
    t = mean / se
    half_width = student_t_quantile(0.5 + CONFIDENCE / 2.0, n - 1) * se
    return result | {"t": t, "ci_low": mean - half_width, "ci_high": mean + half_width,
                     "p_value": 2.0 * (1.0 - student_t_cdf(abs(t), n - 1))}


def no_evidence_of_difference(difference: dict) -> bool | None:
    """The "≈" rule (`APPROX_RULE`): the CI contains 0; None when there is no CI (n < 2)."""
    if difference["ci_low"] is None:
        return None
    return difference["ci_low"] <= 0.0 <= difference["ci_high"]
