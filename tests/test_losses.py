"""Word-level KD divergences (minillm/losses.py) against closed forms computed here in float64.

Notation: p = teacher distribution, q = student distribution. The references below use
probabilities and `torch.xlogy` (0·log 0 = 0, a·log 0 = −inf), independently of the library's
log-space implementation.
"""

from __future__ import annotations

import math

import pytest
import torch

from minillm import losses
from minillm.losses import (
    IGNORE_INDEX,
    chunk_rows,
    cross_entropy_rows,
    DIVERGENCE_PARAMS,
    DIVERGENCES,
    divergence,
    resolve_divergence_params,
)
from minillm.modeling import check_same_tokenizer

B, T, V = 2, 5, 7
# 7 supervised positions of 10, so chunk_size=3 gives chunks 3 + 3 + 1.
MASK = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
INF = math.inf

# (divergence name, params): every divergence, with non-default parameters and TRL's special cases.
CASES = [
    ("forward_kl", {}),
    ("reverse_kl", {}),
    ("symmetric_kl", {}),
    ("symmetric_kl", {"sym_lambda": 0.9}),
    ("js_divergence", {}),
    ("js_divergence", {"jsd_beta": 0.2}),
    ("js_divergence", {"jsd_beta": 0.0}),
    ("js_divergence", {"jsd_beta": 1.0}),
    ("total_variation", {}),
    ("skew_forward_kl", {}),
    ("skew_forward_kl", {"skew_alpha": 0.4}),
    ("skew_reverse_kl", {}),
    ("skew_reverse_kl", {"skew_alpha": 0.4}),
    ("adaptive_kl", {}),
    ("adaptive_kl", {"akl_mu": 0.9}),
    ("alpha_beta", {}),
    # The limit forms: β = 0, α = 0, α + β = 0, α = β = 0; and a negative exponent.
    ("alpha_beta", {"ab_alpha": 0.5, "ab_beta": 0.0}),
    ("alpha_beta", {"ab_alpha": 0.0, "ab_beta": 0.5}),
    ("alpha_beta", {"ab_alpha": 0.6, "ab_beta": -0.6}),
    ("alpha_beta", {"ab_alpha": 0.0, "ab_beta": 0.0}),
    ("alpha_beta", {"ab_alpha": -0.3, "ab_beta": 0.8}),
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in CASES]


def _kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(a ‖ b) over the last dim from probabilities [..., V] → [...]."""
    return (torch.xlogy(a, a) - torch.xlogy(a, b)).sum(-1)


def _akl_head_weight(p: torch.Tensor, q: torch.Tensor, mu: float) -> torch.Tensor:
    """g_head per row by an explicit loop: the head is the smallest top-p prefix reaching mu."""
    weights = []
    for p_row, q_row in zip(p.reshape(-1, p.shape[-1]).tolist(), q.reshape(-1, q.shape[-1]).tolist()):
        mass, gap_head, gap_tail = 0.0, 0.0, 0.0
        for v in sorted(range(len(p_row)), key=lambda v: -p_row[v]):
            if mass < mu:
                gap_head += abs(p_row[v] - q_row[v])
            else:
                gap_tail += abs(p_row[v] - q_row[v])
            mass += p_row[v]
        weights.append(gap_head / (gap_head + gap_tail) if gap_head + gap_tail > 0 else 0.5)
    return torch.tensor(weights, dtype=p.dtype).reshape(p.shape[:-1])


def _alpha_beta(p: torch.Tensor, q: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Cichocki-Cruces-Amari D_AB^(a,b)(p ‖ q) from probabilities with torch.pow, per element then
    summed over the last dim. Conventions: a term with p = q is 0; with one side 0, inf − inf (two
    diverging powers of that 0) is +inf."""
    s = a + b
    if a == 0 and b == 0:
        terms = 0.5 * (p.log() - q.log()).square()
    elif s == 0:
        ratio = (p / q).pow(a)
        terms = (ratio - 1 - ratio.log()) / a ** 2
    elif b == 0:
        terms = (torch.xlogy(p.pow(a), p.pow(a)) - torch.xlogy(p.pow(a), q.pow(a)) - p.pow(a) + q.pow(a)) / a ** 2
    elif a == 0:
        terms = (torch.xlogy(q.pow(b), q.pow(b)) - torch.xlogy(q.pow(b), p.pow(b)) - q.pow(b) + p.pow(b)) / b ** 2
    else:
        terms = -(p.pow(a) * q.pow(b) - a / s * p.pow(s) - b / s * q.pow(s)) / (a * b)
    terms = torch.where(((p == 0) ^ (q == 0)) & terms.isnan(), INF, terms)
    return torch.where(p == q, 0.0, terms).sum(-1)


def _reference(name: str, p: torch.Tensor, q: torch.Tensor, params: dict[str, float]) -> torch.Tensor:
    """The per-position divergence from probabilities p, q [..., V] → [...], by its definition."""
    alpha = params.get("skew_alpha", 0.1)
    beta = params.get("jsd_beta", 0.5)
    if name == "forward_kl" or (name == "js_divergence" and beta == 0):
        return _kl(p, q)
    if name == "reverse_kl" or (name == "js_divergence" and beta == 1):
        return _kl(q, p)
    if name == "symmetric_kl" and "sym_lambda" in params:
        lam = params["sym_lambda"]
        return (1 - lam) * _kl(p, q) + lam * _kl(q, p)
    if name == "symmetric_kl":
        return _kl(p, q) + _kl(q, p)
    if name == "alpha_beta":
        return _alpha_beta(p, q, params.get("ab_alpha", 0.2), params.get("ab_beta", 0.7))
    if name == "js_divergence":
        m = beta * p + (1 - beta) * q
        return beta * _kl(p, m) + (1 - beta) * _kl(q, m)
    if name == "total_variation":
        return 0.5 * (p - q).abs().sum(-1)
    if name == "skew_forward_kl":
        return _kl(p, alpha * p + (1 - alpha) * q)
    if name == "skew_reverse_kl":
        return _kl(q, alpha * q + (1 - alpha) * p)
    assert name == "adaptive_kl"
    head = _akl_head_weight(p.detach(), q.detach(), params.get("akl_mu", 0.5))
    # A zero weight switches its (possibly infinite) term off.
    return (torch.where(head > 0, head * _kl(p, q), 0.0)
            + torch.where(head < 1, (1 - head) * _kl(q, p), 0.0))


def _reference_mean(name, student, teacher, params, mask=MASK, temperature=1.0):
    """Token-mean over `mask` of the reference, computed in float64."""
    p = (teacher.double() / temperature).softmax(-1)
    q = (student.double() / temperature).softmax(-1)
    return _reference(name, p, q, params)[mask].mean()


def _logits(seed: int, vocab: int = V, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (student, teacher) logits [B, T, vocab] of spread ~2."""
    generator = torch.Generator().manual_seed(seed)
    student, teacher = (2 * torch.randn(B, T, vocab, generator=generator, dtype=torch.float64) for _ in range(2))
    return student.to(dtype), teacher.to(dtype)


def _with_neg_inf(scenario: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits with −inf entries: `shared` at the same entries in both models (p = q = 0 there),
    `teacher` only in the teacher (p = 0 < q there)."""
    student, teacher = _logits(1)
    where = torch.zeros(B, T, V, dtype=torch.bool)
    where[0, 0, 5:] = where[1, :, 0] = where[0, 3, 2] = True
    teacher = teacher.masked_fill(where, -INF)
    return (student.masked_fill(where, -INF) if scenario == "shared" else student), teacher


def _grad(name, student, teacher, params, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(value, d value / d student logits) of `divergence`."""
    student = student.detach().requires_grad_()
    value = divergence(name, student, teacher, MASK, **params, **kwargs)
    value.backward()
    return value.detach(), student.grad


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("scenario", ["finite", "shared", "teacher"])
def test_matches_closed_form(name, params, scenario):
    student, teacher = _logits(0) if scenario == "finite" else _with_neg_inf(scenario)
    value, grad = _grad(name, student, teacher, params, chunk_size=3)
    expected = _reference_mean(name, student, teacher, params)
    assert not value.isnan()
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)
    if value.isfinite():
        assert grad.isfinite().all()


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_temperature_scales_both_models(name, params, temperature):
    student, teacher = _logits(2)
    value, grad = _grad(name, student, teacher, params, temperature=temperature)
    reference_student = student.clone().requires_grad_()
    expected = _reference_mean(name, reference_student, teacher, params, temperature=temperature)
    expected.backward()
    torch.testing.assert_close(value, expected.detach())
    torch.testing.assert_close(grad, reference_student.grad)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_gradient_matches_autograd_through_naive_formula(name, params, dtype, tolerance):
    """The chunked custom backward (chunks 3 + 3 + 1, partial mask) equals plain autograd."""
    student, teacher = _logits(3, dtype=dtype)
    _, grad = _grad(name, student, teacher, params, chunk_size=3)
    reference_student = student.double().requires_grad_()
    _reference_mean(name, reference_student, teacher, params).backward()
    assert grad.dtype == dtype
    torch.testing.assert_close(grad.double(), reference_student.grad, rtol=tolerance, atol=tolerance * 1e-2)
    assert (grad[~MASK] == 0).all()


def test_forward_kl_is_true_kl_with_cross_entropy_gradient():
    """Value = CE − H(p) (not the CE itself); gradient = that of −Σ p log q (reference §4)."""
    student, teacher = _logits(4)
    value, grad = _grad("forward_kl", student, teacher, {})
    ce_student = student.clone().requires_grad_()
    p = teacher.softmax(-1)
    cross_entropy = -(p * ce_student.log_softmax(-1)).sum(-1)[MASK].mean()
    cross_entropy.backward()
    torch.testing.assert_close(grad, ce_student.grad)
    teacher_entropy = -(p * p.log()).sum(-1)[MASK].mean()
    torch.testing.assert_close(value, cross_entropy.detach() - teacher_entropy)
    assert teacher_entropy > 0.1  # the two values really differ


def test_student_zero_mass_where_teacher_has_mass():
    """Forward KL is +inf (true value, not NaN); its gradient q − p stays finite."""
    student, teacher = _logits(5)
    student[0, 0, 0] = -INF
    value, grad = _grad("forward_kl", student, teacher, {})
    assert value == INF
    p, q = teacher.softmax(-1), student.softmax(-1)
    torch.testing.assert_close(grad, torch.where(MASK[..., None], q - p, 0.0) / MASK.sum())


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_pos_inf_logits_give_the_limit_distribution(temperature):
    """A +inf logit puts all mass on the +inf entries: here p = q = ½ on tokens 2 and 4."""
    student, teacher = _logits(6)
    student[0, 1, [2, 4]] = INF
    teacher[0, 1] = -INF
    teacher[0, 1, [2, 4]] = 3.0
    single = torch.zeros(B, T, dtype=torch.bool)
    single[0, 1] = True
    for name, params in CASES:
        student_leaf = student.clone().requires_grad_()
        value = divergence(name, student_leaf, teacher, single, temperature=temperature, **params)
        value.backward()
        assert value.abs() < 1e-12, name
        assert (student_leaf.grad == 0).all(), name


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_nonnegative_and_zero_iff_equal(name, params):
    student, teacher = _logits(7)
    log_q, log_p = student.log_softmax(-1).flatten(0, 1), teacher.log_softmax(-1).flatten(0, 1)
    per_token = DIVERGENCES[name](log_p, log_q, **params)
    assert per_token.shape == (B * T,)
    assert (per_token > 1e-6).all()
    # Identical logits: p = q exactly (AKL's gaps are all 0); mixtures leave only rounding.
    assert divergence(name, student, student, MASK, **params).abs() < 1e-15
    # Same distribution, different logits (per-row shift).
    shifted = divergence(name, student, student + torch.arange(B * T).reshape(B, T, 1), MASK, **params)
    assert shifted.abs() < 1e-12


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_skew_alpha_limits(direction):
    """α = 0 is the plain KL, α = 1 gives 0, and the value decreases monotonically in between."""
    student, teacher = _logits(8)
    skew = lambda alpha: divergence(f"skew_{direction}_kl", student, teacher, MASK, skew_alpha=alpha)  # noqa: E731
    assert skew(0.0) == divergence(f"{direction}_kl", student, teacher, MASK)
    assert skew(1.0) == 0
    values = torch.stack([skew(alpha) for alpha in (0.0, 0.1, 0.5, 0.9, 1 - 1e-6)])
    assert (values.diff() < 0).all()
    assert values[-1] < 1e-9
    # With zero-mass entries (p = q = 0) the gradient stays finite at both ends.
    student, teacher = _with_neg_inf("shared")
    for alpha in (0.0, 1.0):
        value, grad = _grad(f"skew_{direction}_kl", student, teacher, {"skew_alpha": alpha})
        assert value.isfinite() and grad.isfinite().all()


def test_jsd_beta_convention():
    """TRL: β = 0 is forward KL, β = 1 reverse KL (the scaled limits of the mixture form)."""
    student, teacher = _logits(9)
    jsd = lambda beta, **kw: divergence("js_divergence", student, teacher, MASK, jsd_beta=beta, **kw)  # noqa: E731
    forward, reverse = (divergence(f"{d}_kl", student, teacher, MASK) for d in ("forward", "reverse"))
    assert jsd(0.0) == forward
    assert jsd(1.0) == reverse
    eps = 1e-6
    torch.testing.assert_close(jsd(eps) / eps, forward, rtol=1e-4, atol=0)
    torch.testing.assert_close(jsd(1 - eps) / eps, reverse, rtol=1e-4, atol=0)
    # β = ½ is the symmetric JSD, at most log 2.
    swapped = divergence("js_divergence", teacher, student, MASK, jsd_beta=0.5)
    torch.testing.assert_close(jsd(0.5), swapped)
    assert 0 < jsd(0.5) <= math.log(2)


def _per_token(name: str, student: torch.Tensor, teacher: torch.Tensor, **params) -> torch.Tensor:
    """DIVERGENCES[name] on every position of the logits, [B, T, V] → [B·T]."""
    return DIVERGENCES[name](teacher.log_softmax(-1).flatten(0, 1), student.log_softmax(-1).flatten(0, 1), **params)


def test_alpha_beta_general_form_matches_numpy():
    """The general form written out in numpy, on random distributions (and 1e-300-scale masses)."""
    student, teacher = _logits(20)
    p, q = teacher.softmax(-1).flatten(0, 1).numpy(), student.softmax(-1).flatten(0, 1).numpy()
    for a, b in [(0.2, 0.7), (1.5, -0.5), (-0.3, 0.8), (2.0, 3.0)]:
        expected = -(p ** a * q ** b - a / (a + b) * p ** (a + b) - b / (a + b) * q ** (a + b)).sum(-1) / (a * b)
        got = _per_token("alpha_beta", student, teacher, ab_alpha=a, ab_beta=b)
        torch.testing.assert_close(got, torch.from_numpy(expected), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("limit", "near"), [
    ((0.0, 0.5), (1e-5, 0.5)),        # α → 0
    ((0.5, 0.0), (0.5, 1e-5)),        # β → 0
    ((0.6, -0.6), (0.6, -0.6 + 1e-5)),  # α + β → 0
    ((0.0, 0.0), (1e-5, 2e-5)),       # α, β → 0
])
def test_alpha_beta_limit_forms_are_the_limits(limit, near):
    student, teacher = _logits(21)
    at_limit = _per_token("alpha_beta", student, teacher, ab_alpha=limit[0], ab_beta=limit[1])
    nearby = _per_token("alpha_beta", student, teacher, ab_alpha=near[0], ab_beta=near[1])
    torch.testing.assert_close(nearby, at_limit, rtol=1e-3, atol=0)
    # The limit form is not just another general-form value: it differs from a point further off.
    far = _per_token("alpha_beta", student, teacher, ab_alpha=limit[0] + 0.3, ab_beta=limit[1])
    assert ((far - at_limit).abs() > 1e-2 * at_limit).all()


def test_alpha_beta_is_kl_at_one_zero_and_zero_one():
    student, teacher = _logits(22)
    ab = lambda a, b: divergence("alpha_beta", student, teacher, MASK, ab_alpha=a, ab_beta=b)  # noqa: E731
    torch.testing.assert_close(ab(1.0, 0.0), divergence("forward_kl", student, teacher, MASK), rtol=1e-12, atol=0)
    torch.testing.assert_close(ab(0.0, 1.0), divergence("reverse_kl", student, teacher, MASK), rtol=1e-12, atol=0)
    # α = β = 0 is half the squared log-ratio, summed over the vocabulary.
    log_ratio = teacher.log_softmax(-1) - student.log_softmax(-1)
    torch.testing.assert_close(ab(0.0, 0.0), 0.5 * log_ratio.square().sum(-1)[MASK].mean())


# DistiLLM (github.com/jongwooko/distillm, distillm/losses.py), written out per position from
# probabilities. Its forward_kl is the cross-entropy −Σ p log q (KL(p ‖ q) + H(p)); its
# js_distance mixes m = (1 − λ)·p + λ·q.
def _distillm_symmetric_kl(p: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
    return (1 - lam) * -(p * q.log()).sum(-1) + lam * (q * (q.log() - p.log())).sum(-1)


def _distillm_js_distance(p: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
    mixed_log = ((1 - lam) * p + lam * q).log()
    return lam * (q * (q.log() - mixed_log)).sum(-1) + (1 - lam) * (p * (p.log() - mixed_log)).sum(-1)


@pytest.mark.parametrize("lam", [0.1, 0.9])
def test_symmetric_kl_sym_lambda_is_distillm_symmetric_kl(lam):
    """Same λ: same gradient; the value is DistiLLM's minus (1 − λ)·H(p) (KL, not cross-entropy)."""
    student, teacher = _logits(23)
    value, grad = _grad("symmetric_kl", student, teacher, {"sym_lambda": lam})
    leaf = student.clone().requires_grad_()
    p = teacher.softmax(-1)
    reference = _distillm_symmetric_kl(p, leaf.softmax(-1), lam)[MASK].mean()
    reference.backward()
    torch.testing.assert_close(grad, leaf.grad)
    entropy = -(p * p.log()).sum(-1)[MASK].mean()
    torch.testing.assert_close(value, reference.detach() - (1 - lam) * entropy)


def test_symmetric_kl_default_is_the_unweighted_sum():
    student, teacher = _logits(24)
    total = divergence("symmetric_kl", student, teacher, MASK)
    forward, reverse = (divergence(f"{d}_kl", student, teacher, MASK) for d in ("forward", "reverse"))
    torch.testing.assert_close(total, forward + reverse)
    torch.testing.assert_close(divergence("symmetric_kl", student, teacher, MASK, sym_lambda=0.5), total / 2)
    assert divergence("symmetric_kl", student, teacher, MASK, sym_lambda=0.0) == forward


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
def test_js_divergence_with_one_minus_lambda_is_distillm_js_distance(lam):
    """jsd_beta = 1 − λ: same value (both are true divergences) and same gradient."""
    student, teacher = _logits(25)
    value, grad = _grad("js_divergence", student, teacher, {"jsd_beta": 1 - lam})
    leaf = student.clone().requires_grad_()
    reference = _distillm_js_distance(teacher.softmax(-1), leaf.softmax(-1), lam)[MASK].mean()
    reference.backward()
    torch.testing.assert_close(value, reference.detach())
    torch.testing.assert_close(grad, leaf.grad)


def test_total_variation_bounds():
    student, teacher = _logits(10)
    log_q, log_p = student.log_softmax(-1).flatten(0, 1), teacher.log_softmax(-1).flatten(0, 1)
    tv = DIVERGENCES["total_variation"](log_p, log_q)
    assert ((tv > 0) & (tv <= 1)).all()
    # Pinsker: TV ≤ sqrt(KL(p ‖ q) / 2).
    assert (tv <= (DIVERGENCES["forward_kl"](log_p, log_q) / 2).sqrt()).all()
    # Disjoint supports: TV = 1 exactly.
    disjoint_p = torch.full((1, V), -INF, dtype=torch.float64)
    disjoint_q = disjoint_p.clone()
    disjoint_p[0, 0] = disjoint_q[0, 1] = 0.0
    assert DIVERGENCES["total_variation"](disjoint_p, disjoint_q) == 1


@pytest.mark.parametrize(("mu", "head_weight"), [(0.0, 0.0), (0.3, 0.5), (0.5, 5 / 6), (0.8, 1.0)])
def test_adaptive_kl_hand_example(mu, head_weight):
    """p = (.4, .3, .2, .1), q = (.7, .1, .1, .1), vocabulary shuffled. Gaps |p − q| in teacher
    order: .3, .2, .1, 0. Heads: μ=0 → {} ; μ=.3 → {.4}; μ=.5 → {.4, .3} (.4 alone does not
    reach .5); μ=.8 → {.4, .3, .2}. g_head = 0, .3/.6, .5/.6, 1."""
    order = [2, 0, 3, 1]
    p, q = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64), torch.tensor([0.7, 0.1, 0.1, 0.1], dtype=torch.float64)
    log_p, log_q = p.log()[order][None], q.log()[order][None]
    forward = sum(a * math.log(a / b) for a, b in zip(p.tolist(), q.tolist()))
    reverse = sum(b * math.log(b / a) for a, b in zip(p.tolist(), q.tolist()))
    value = DIVERGENCES["adaptive_kl"](log_p, log_q, akl_mu=mu)
    torch.testing.assert_close(value, torch.tensor([head_weight * forward + (1 - head_weight) * reverse],
                                                   dtype=torch.float64))


def test_adaptive_kl_zero_weight_switches_off_an_infinite_term():
    """Head {.5} matches exactly, so g_head = 0 and AKL = KL(q ‖ p), though KL(p ‖ q) = +inf."""
    log_p = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64).log()
    log_q = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64).log()
    value = DIVERGENCES["adaptive_kl"](log_p, log_q, akl_mu=0.3)
    torch.testing.assert_close(value, torch.tensor([0.5 * math.log(0.5 / 0.3)], dtype=torch.float64))


def test_reduction_sum_is_mean_times_count():
    student, teacher = _logits(11)
    mean, mean_grad = _grad("symmetric_kl", student, teacher, {})
    total, sum_grad = _grad("symmetric_kl", student, teacher, {}, reduction="sum")
    count = MASK.sum()
    torch.testing.assert_close(total, mean * count)
    torch.testing.assert_close(sum_grad, mean_grad * count)


def test_reduction_rows_gives_per_sequence_sums_and_weighted_gradients():
    """reduction="rows" → [B] sums over each sequence's masked positions; a weighted sum of them
    back-propagates each sequence's weight into its own positions only."""
    student, teacher = _logits(13)
    weights = torch.arange(1.0, student.shape[0] + 1, dtype=student.dtype)
    leaf = student.clone().requires_grad_()
    rows = divergence("forward_kl", leaf, teacher, MASK, reduction="rows", chunk_size=3)
    (rows * weights).sum().backward()
    naive_leaf = student.clone().requires_grad_()
    log_p, log_q = teacher.log_softmax(-1), naive_leaf.log_softmax(-1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(-1) * MASK
    torch.testing.assert_close(rows, per_position.sum(1).detach())
    (per_position.sum(1) * weights).sum().backward()
    torch.testing.assert_close(leaf.grad, naive_leaf.grad)


def test_cross_entropy_rows_sums_each_sequence():
    logits = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, IGNORE_INDEX, 4], [IGNORE_INDEX, IGNORE_INDEX, 0]])
    log_q = logits.log_softmax(-1)
    expected = torch.stack([-(log_q[0, 0, 1] + log_q[0, 2, 4]), -log_q[1, 2, 0]])
    torch.testing.assert_close(cross_entropy_rows(logits, labels), expected)


def test_empty_mask_gives_zero():
    student, teacher = _logits(12)
    for reduction in ("mean", "sum"):
        student_leaf = student.clone().requires_grad_()
        value = divergence("forward_kl", student_leaf, teacher, torch.zeros(B, T), reduction=reduction)
        value.backward()
        assert value == 0
        assert (student_leaf.grad == 0).all()


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_vocab_padding_columns_are_ignored(name, params):
    """Padded embedding columns (huge, +inf, NaN) beyond vocab_size change nothing."""
    student, teacher = _logits(13)
    expected, expected_grad = _grad(name, student, teacher, params)
    padded_teacher = torch.cat([teacher, torch.tensor([1e30, INF, math.nan]).expand(B, T, 3)], -1)
    padded_student = torch.cat([student, torch.full((B, T, 2), 1e30, dtype=torch.float64)], -1)
    value, grad = _grad(name, padded_student, padded_teacher, params, vocab_size=V)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad[..., :V], expected_grad)
    assert (grad[..., V:] == 0).all()
    # Without vocab_size the comparison runs over the shared min(V_s, V_t) columns.
    torch.testing.assert_close(divergence(name, student, padded_teacher, MASK, **params), expected)
    with pytest.raises(ValueError, match="vocab_size"):
        divergence(name, padded_student, padded_teacher, MASK, vocab_size=V + 3, **params)


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_use_fp32_math(half):
    student, teacher = _logits(14, dtype=torch.float32)
    value, grad = _grad("adaptive_kl", student.to(half), teacher.to(half), {})
    assert value.dtype == torch.float32 and grad.dtype == half
    # Same rounded inputs in fp32: same result. Unrounded fp32 inputs: close.
    rounded, _ = _grad("adaptive_kl", student.to(half).float(), teacher.to(half).float(), {})
    torch.testing.assert_close(value, rounded, rtol=1e-6, atol=0)
    exact, exact_grad = _grad("adaptive_kl", student, teacher, {})
    torch.testing.assert_close(value, exact, rtol=2e-2, atol=0)
    torch.testing.assert_close(grad.float(), exact_grad, rtol=0.1, atol=1e-3)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_masked_positions_do_not_leak(name, params):
    student, teacher = _logits(15)
    expected, expected_grad = _grad(name, student, teacher, params)
    poisoned_student, poisoned_teacher = student.clone(), teacher.clone()
    poisoned_student[~MASK] = math.nan
    poisoned_teacher[~MASK] = INF
    poisoned_student[0, 2, 0] = INF
    value, grad = _grad(name, poisoned_student, poisoned_teacher, params)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_chunked_equals_unchunked(name, params):
    student, teacher = _logits(16, dtype=torch.float32)
    expected, expected_grad = _grad(name, student, teacher, params, chunk_size=1024)
    for chunk_size in (1, 2, 3, 7):
        value, grad = _grad(name, student, teacher, params, chunk_size=chunk_size)
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(grad, expected_grad)


def test_teacher_gets_no_gradient_and_no_grad_mode_works():
    student, teacher = _logits(17)
    teacher.requires_grad_()
    student.requires_grad_()
    divergence("symmetric_kl", student, teacher, MASK).backward()
    assert teacher.grad is None and student.grad is not None
    with torch.no_grad():
        value = divergence("symmetric_kl", student, teacher, MASK)
    assert value.grad_fn is None


def test_second_backward_is_refused():
    student, teacher = _logits(18)
    student.requires_grad_()
    value = divergence("forward_kl", student, teacher, MASK)
    value.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        value.backward()


def test_registry_parameters_and_validation():
    assert DIVERGENCE_PARAMS == {
        "forward_kl": {}, "reverse_kl": {}, "symmetric_kl": {"sym_lambda": None}, "total_variation": {},
        "js_divergence": {"jsd_beta": 0.5},
        "skew_forward_kl": {"skew_alpha": 0.1}, "skew_reverse_kl": {"skew_alpha": 0.1},
        "adaptive_kl": {"akl_mu": 0.5}, "alpha_beta": {"ab_alpha": 0.2, "ab_beta": 0.7},
    }
    assert resolve_divergence_params("adaptive_kl", {"akl_mu": 1}) == {"akl_mu": 1.0}
    # The α-β exponents may be any finite number; the other parameters lie in [0, 1].
    assert resolve_divergence_params("alpha_beta", {"ab_alpha": -3}) == {"ab_alpha": -3.0, "ab_beta": 0.7}
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match="ab_beta must be a finite number"):
            resolve_divergence_params("alpha_beta", {"ab_beta": bad})
    with pytest.raises(ValueError, match="sym_lambda"):
        resolve_divergence_params("symmetric_kl", {"sym_lambda": 1.5})
    student, teacher = _logits(19)
    with pytest.raises(ValueError, match="unknown divergence 'kl'"):
        divergence("kl", student, teacher, MASK)
    with pytest.raises(ValueError, match="'jsd_beta'"):
        divergence("forward_kl", student, teacher, MASK, jsd_beta=0.5)
    with pytest.raises(ValueError, match="'skew_alpha'"):
        divergence("js_divergence", student, teacher, MASK, skew_alpha=0.5)
    with pytest.raises(ValueError, match="'ab_alpha'"):
        divergence("symmetric_kl", student, teacher, MASK, ab_alpha=0.5)
    for bad in (-0.1, 1.5, math.nan, "0.1", True):
        with pytest.raises(ValueError, match="skew_alpha"):
            resolve_divergence_params("skew_forward_kl", {"skew_alpha": bad})
    for kwargs, message in [({"reduction": "none"}, "reduction"), ({"temperature": 0.0}, "temperature"),
                            ({"chunk_size": 0}, "chunk_size")]:
        with pytest.raises(ValueError, match=message):
            divergence("forward_kl", student, teacher, MASK, **kwargs)
    with pytest.raises(ValueError, match="mask"):
        divergence("forward_kl", student, teacher, MASK[:, :3])


def test_check_same_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    student, teacher = (AutoTokenizer.from_pretrained(tiny_tokenizer_dir) for _ in range(2))
    assert check_same_tokenizer(student, teacher) == len(student)
    teacher.add_tokens(["<extra_token>"])
    with pytest.raises(ValueError, match="'<extra_token>': student None vs teacher"):
        check_same_tokenizer(student, teacher)
    other_eos = AutoTokenizer.from_pretrained(tiny_tokenizer_dir, eos_token="a")
    with pytest.raises(ValueError, match="eos ids differ"):
        check_same_tokenizer(student, other_eos)


def test_a_chunk_of_a_large_vocabulary_stays_under_the_allocators_mmap_threshold(monkeypatch):
    """Chunks of Qwen2's 151,646-token rows hold 27 rows (16 MiB in fp32); the tiny vocabulary keeps
    the asked-for 1024; a row longer than the cap still makes a chunk of one. The divergence reads
    its chunks that way (3 rows' worth of bytes → chunks 3 + 3 + 1 of the 7 positions), same result."""
    assert chunk_rows(1024, 151_646, torch.float32) == 27
    assert chunk_rows(1024, 151_646, torch.float64) == 13
    assert chunk_rows(1024, 50_257, torch.float32) == 83
    assert chunk_rows(1024, 1_110, torch.float32) == 1024
    assert chunk_rows(3, 151_646, torch.float32) == 3
    assert chunk_rows(1024, 10 ** 8, torch.float32) == 1
    student, teacher = _logits(3)
    expected, expected_grad = _grad("reverse_kl", student, teacher, {}, chunk_size=1024)
    read = []
    scaled = losses._scaled_logits
    monkeypatch.setattr(losses, "_scaled_logits", lambda logits, rows, *rest: read.append(rows.numel()) or scaled(
        logits, rows, *rest))
    monkeypatch.setattr(losses, "CHUNK_BYTES", 3 * V * 8)  # float64 math
    value, grad = _grad("reverse_kl", student, teacher, {}, chunk_size=1024)
    assert read[::2] == [3, 3, 1]  # the student's chunks (the teacher's follow each)
    assert torch.equal(value, expected) and torch.equal(grad, expected_grad)
