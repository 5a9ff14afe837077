"""Summary statistics (`mean_and_std`, the one definition every report and tool uses) and paired
comparisons: Student's t without scipy (not a dependency), exact binomial tests, a paired bootstrap
and Holm's step-down adjustment.

`paired_difference` is the paired t-test a reviewer expects: differences a − b of runs that share
a training seed (and so the student init and data order), their mean, the 95% confidence
interval mean ± t_{0.975, n−1} · sd / √n and the two-sided p-value. The Student-t CDF comes from
the regularised incomplete beta function (Lentz's continued fraction), its quantile from
bisection on the CDF. When every difference is the same, the t interval has zero width and p
would be 0: the result says so and carries the exact sign test over the pairs instead.

With one training seed there is nothing to pair over seeds; two checkpoints can still be compared
on the same test prompts (`paired_bootstrap` for a mean score, `mcnemar_exact` for right/wrong):
that measures evaluation noise only, not training noise.

`holm_adjust` turns the raw p-values of a declared family of comparisons into Holm's adjusted
ones (strong control of the family-wise error rate).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # two-sided; CONFIDENCE = 1 − SIGNIFICANCE
TEST_NAME = "paired t-test (two-sided), 95% CI = mean ± t(0.975, n−1)·sd/√n over training seeds"
SIGN_TEST_NAME = "exact sign test (two-sided) over training seeds: every paired difference is the same, no t interval"
BOOTSTRAP_TEST_NAME = ("paired bootstrap over test prompts (two-sided, percentile 95% CI): one training seed, "
                       "so it measures evaluation noise only")
MCNEMAR_TEST_NAME = ("McNemar's exact test over test prompts (two-sided; 95% CI from the paired bootstrap): "
                     "one training seed, so it measures evaluation noise only")
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20240601  # fixed: the same folder gives the same intervals every time
_BOOTSTRAP_CHUNK = 1_000  # resamples drawn at once (memory: chunk × prompts indices)
P_FLOOR = 0.001  # smaller p-values print as "< 0.001"; the JSON keeps the exact value
APPROX_MARK = "≈"
# The one rule for "≈", in the table and the prose alike.
APPROX_RULE = (f"{APPROX_MARK} = no evidence of a difference: p ≥ {SIGNIFICANCE:.2f}, with p Holm-adjusted over the "
               "declared primary family for a primary comparison and raw for an exploratory one. For a paired t-test "
               "the raw rule is the 95% CI containing 0; the CIs are per comparison (not adjusted). Two or more "
               "training seeds: the test is over training seeds (a paired t-test, or the exact sign test when every "
               "difference is the same); one training seed: over test prompts between the two checkpoints "
               "(paired bootstrap, McNemar for accuracy), which measures evaluation noise only.")

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


def mean_confidence_half_width(std: float, n: int) -> float | None:
    """Half-width of the 95% confidence interval of a mean of n values with sample std `std`:
    t_{0.975, n−1}·std/√n; None for fewer than 2 values."""
    if n < 2:
        return None
    return student_t_quantile(0.5 + CONFIDENCE / 2.0, n - 1) * std / math.sqrt(n)


def binomial_two_sided(successes: int, trials: int) -> float:
    """Exact two-sided p-value of `successes` in `trials` under Binomial(trials, 1/2): twice the
    smaller tail, at most 1 (1 for no trials). Integer arithmetic, so exact for any count."""
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 ≤ successes ≤ trials, got {successes} of {trials}")
    if trials == 0:
        return 1.0
    tail = sum(math.comb(trials, k) for k in range(min(successes, trials - successes) + 1))
    return min(1.0, float(Fraction(2 * tail, 2 ** trials)))


def sign_test(differences: Sequence[float]) -> dict:
    """Exact two-sided sign test of the differences' median being 0: zero differences are dropped,
    the positives counted among the rest. Returns n_nonzero, positives and p_value."""
    nonzero = [d for d in differences if d != 0]
    positives = sum(1 for d in nonzero if d > 0)
    return {"n_nonzero": len(nonzero), "positives": positives, "p_value": binomial_two_sided(positives, len(nonzero))}


def paired_difference(a: list[float], b: list[float]) -> dict:
    """Paired t-test of a − b (pairs by position). Returns n_pairs, mean_difference, sd, se,
    t, dof, ci_low, ci_high, p_value and "test"; with fewer than 2 pairs the test fields are
    None and "note" says why. When every difference is the same (zero spread) there is no t
    interval (ci_low/ci_high None): "note" says so and p_value is the exact sign test's."""
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
        return result | {"test": SIGN_TEST_NAME, "p_value": sign_test(differences)["p_value"],
                         "note": f"every paired difference is {mean:+.4g}: no spread, exact sign test over {n} seeds"}
    t = mean / se
    half_width = student_t_quantile(0.5 + CONFIDENCE / 2.0, n - 1) * se
    return result | {"t": t, "ci_low": mean - half_width, "ci_high": mean + half_width,
                     "p_value": 2.0 * (1.0 - student_t_cdf(abs(t), n - 1))}


@functools.lru_cache(maxsize=4)
def _resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] float32: how often each of n items is drawn in each resample (with
    replacement). Drawn once per (n, resamples, seed): every comparison over the same prompts
    reuses the same resamples, and a mean is one matrix-vector product."""
    rng = np.random.default_rng(seed)
    counts = np.empty((resamples, n), dtype=np.float32)
    for start in range(0, resamples, _BOOTSTRAP_CHUNK):
        rows = min(_BOOTSTRAP_CHUNK, resamples - start)
        drawn = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        counts[start:start + rows] = np.bincount(drawn.ravel(), minlength=rows * n).reshape(rows, n)
    counts.flags.writeable = False
    return counts


def _bootstrap_means(differences: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The mean of `differences` in each of `resamples` resamples (with replacement) of its items."""
    return _resample_counts(len(differences), resamples, seed) @ differences.astype(np.float32) / len(differences)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> dict:
    """Paired bootstrap of mean(a − b) over items (test prompts): n_prompts, mean_difference, the
    percentile 95% CI and the two-sided p = 2·(1 + resamples on the far side of 0) / (resamples + 1)
    (never 0). When every difference is the same there is no interval: "note" says so and p is
    the exact sign test over the items."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    if not len(a):
        raise ValueError("no paired items to resample")
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mean = float(differences.mean())
    result = {"n_prompts": len(differences), "mean_difference": mean, "ci_low": None, "ci_high": None,
              "p_value": None, "test": BOOTSTRAP_TEST_NAME, "resamples": resamples, "bootstrap_seed": seed}
    if np.all(differences == differences[0]):
        return result | {"p_value": sign_test(differences.tolist())["p_value"],
                         "note": f"every per-prompt difference is {mean:+.4g}: no interval, exact sign test over "
                                 f"{len(differences)} prompts"}
    means = _bootstrap_means(differences, resamples, seed)
    low, high = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    far_side = min(int((means <= 0).sum()), int((means >= 0).sum()))
    return result | {"ci_low": float(low), "ci_high": float(high),
                     "p_value": min(1.0, 2.0 * (1 + far_side) / (resamples + 1))}


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool], resamples: int = BOOTSTRAP_RESAMPLES,
                  seed: int = BOOTSTRAP_SEED) -> dict:
    """McNemar's exact test of two checkpoints' right/wrong answers on the same prompts: the
    discordant pairs (a right & b wrong, a wrong & b right) under Binomial(discordant, 1/2).
    mean_difference = accuracy(a) − accuracy(b) in percent points, its 95% CI from the paired
    bootstrap of the 0/1 differences (None when there are no discordant pairs)."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired values need equal lengths, got {len(a_correct)} and {len(b_correct)}")
    if not len(a_correct):
        raise ValueError("no paired answers to compare")
    only_a = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    only_b = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    n = len(a_correct)
    result = {"n_prompts": n, "mean_difference": 100.0 * (only_a - only_b) / n, "ci_low": None, "ci_high": None,
              "only_method_right": only_a, "only_baseline_right": only_b,
              "p_value": binomial_two_sided(only_a, only_a + only_b), "test": MCNEMAR_TEST_NAME}
    if only_a + only_b == 0:
        return result | {"note": f"both checkpoints answer each of the {n} prompts alike: no interval"}
    differences = 100.0 * (np.asarray(a_correct, dtype=np.float64) - np.asarray(b_correct, dtype=np.float64))
    means = _bootstrap_means(differences, resamples, seed)
    low, high = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return result | {"ci_low": float(low), "ci_high": float(high)}


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input's order: with the m given values sorted
    p(1) ≤ … ≤ p(m), adjusted p(i) = max over j ≤ i of min(1, (m − j + 1)·p(j)). None (no test)
    stays None and does not count towards m."""
    tested = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def format_p(p: float | None) -> str:
    """A p-value as the tables print it: three decimals, "< 0.001" below that, never "0.000"."""
    if p is None:
        return "–"
    return f"< {P_FLOOR:g}" if p < P_FLOOR else f"{p:.3f}"


def no_evidence_of_difference(p_value: float | None) -> bool | None:
    """The "≈" rule (`APPROX_RULE`) on the p-value that applies (Holm-adjusted for a primary
    comparison); None when there is no test."""
    if p_value is None:
        return None
    return p_value >= SIGNIFICANCE
