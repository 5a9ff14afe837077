"""Our divergences (minillm/losses.py) against the peer methods' OWN loss functions, on float64.

Each reference below is the peer's code restated as math (in our own words and torch ops, not
their code), with the repository, file, function and commit it was read from. The tests compare
values and gradients w.r.t. the student logits, token means over the supervised positions as the
references reduce them, for several parameter values each. Where the reference's value differs
from ours by design (DistiLLM's cross-entropy form, ABKD's limit factors) the test states the
exact relation, so that an error shared by our code and our own closed forms cannot pass.

Notation: p = teacher distribution, q = student distribution (softmax of the logits, temperature 1).
"""
from __future__ import annotations

import pytest
import torch

from minillm.losses import divergence

B, T, V = 3, 4, 9
MASK = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)


def _logits(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(student, teacher) logits [B, T, V] in float64, spread ~2 (peaked enough that the KLs,
    the mixtures and the powers all differ clearly)."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(2 * torch.randn(B, T, V, generator=generator, dtype=torch.float64) for _ in range(2))


def _token_mean(per_position: torch.Tensor) -> torch.Tensor:
    """Σ over supervised positions / their count: the reduction all three references use
    (TRL's "batchmean" with labels, DistiLLM's and ABKD's Σ(x·mask) / Σ mask)."""
    return per_position[MASK].sum() / MASK.sum()


def _ours(name: str, student: torch.Tensor, teacher: torch.Tensor, **params) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = student.clone().requires_grad_()
    value = divergence(name, leaf, teacher, MASK, **params)
    value.backward()
    return value.detach(), leaf.grad


def _theirs(reference, student: torch.Tensor, teacher: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = student.clone().requires_grad_()
    value = reference(leaf.log_softmax(-1), teacher.log_softmax(-1), *args)
    value.backward()
    return value.detach(), leaf.grad


def _teacher_entropy(teacher: torch.Tensor) -> torch.Tensor:
    log_p = teacher.log_softmax(-1)
    return _token_mean(-(log_p.exp() * log_p).sum(-1))


# ---------------------------------------------------------------------------------------------
# TRL, GKD: huggingface/trl @7310b81fbd40177a60078ea26122c9fec5b092b8,
# trl/experimental/gkd/gkd_trainer.py, GKDTrainer.generalized_jsd_loss (the successor of
# trl/trainer/gkd_trainer.py), as GKDTrainer.compute_loss calls it: temperature 1, labels given,
# reduction "batchmean" = Σ over supervised positions and the vocabulary / number of positions.
# Per position, with log-probabilities log q (student) and log p (teacher):
#   β = 0:  Σ_v p_v (log p_v − log q_v)                         (its F.kl_div(log q, log p))
#   β = 1:  Σ_v q_v (log q_v − log p_v)                         (its F.kl_div(log p, log q))
#   else:   log m = log-sum-exp(log q + log(1 − β), log p + log β), i.e. m = β·p + (1 − β)·q,
#           β·Σ_v p_v (log p_v − log m_v) + (1 − β)·Σ_v q_v (log q_v − log m_v).
# ---------------------------------------------------------------------------------------------
def trl_generalized_jsd(log_q: torch.Tensor, log_p: torch.Tensor, beta: float) -> torch.Tensor:
    def kl(log_a, log_b):  # Σ_v a_v (log a_v − log b_v)
        return (log_a.exp() * (log_a - log_b)).sum(-1)

    if beta == 0:
        return _token_mean(kl(log_p, log_q))
    if beta == 1:
        return _token_mean(kl(log_q, log_p))
    weight = torch.tensor(beta, dtype=log_q.dtype)
    log_m = torch.logsumexp(torch.stack([log_q + torch.log1p(-weight), log_p + torch.log(weight)]), 0)
    return _token_mean(beta * kl(log_p, log_m) + (1 - beta) * kl(log_q, log_m))


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_js_divergence_is_trls_generalized_jsd_loss(beta):
    """--kd-loss js_divergence --jsd-beta β: TRL's value and gradient, for every β (its
    β = 0 and 1 special cases included)."""
    student, teacher = _logits(1)
    value, grad = _ours("js_divergence", student, teacher, jsd_beta=beta)
    expected, expected_grad = _theirs(trl_generalized_jsd, student, teacher, beta)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-14)
    assert expected > 1e-3  # a real divergence, not two zeros


# ---------------------------------------------------------------------------------------------
# DistiLLM: jongwooko/distillm, distillm/losses.py, functions skewed_forward_kl and
# skewed_reverse_kl (read at @17c0f98, the file's only commit; unchanged at @d47e77f, which
# reference.md cites), as finetune.py's get_distil_loss calls them with lam = --skew-alpha.
# Per position (their inf_mask only zeroes terms at ±inf logits; none here):
#   skewed_forward_kl(lam = α):  m = α·p + (1 − α)·q,   −Σ_v p_v log m_v
#       (the cross-entropy to the skewed mixture: KL(p ‖ m) + H(p), not the KL itself);
#   skewed_reverse_kl(lam = α):  m = (1 − α)·p + α·q,   −Σ_v q_v (log m_v − log q_v) = KL(q ‖ m).
# Both: Σ over supervised positions / their count.
# ---------------------------------------------------------------------------------------------
def distillm_skewed_forward_kl(log_q: torch.Tensor, log_p: torch.Tensor, lam: float) -> torch.Tensor:
    p, q = log_p.exp(), log_q.exp()
    return _token_mean(-(p * torch.log(lam * p + (1 - lam) * q)).sum(-1))


def distillm_skewed_reverse_kl(log_q: torch.Tensor, log_p: torch.Tensor, lam: float) -> torch.Tensor:
    p, q = log_p.exp(), log_q.exp()
    return _token_mean(-(q * (torch.log((1 - lam) * p + lam * q) - log_q)).sum(-1))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3, 0.5, 0.9])
def test_skew_forward_kl_is_distillms_skewed_forward_kl(alpha):
    """--kd-loss skew_forward_kl --skew-alpha α: DistiLLM's gradient exactly; its value minus the
    teacher entropy H(p) (DistiLLM returns the cross-entropy −Σ p log m, we the true KL(p ‖ m))."""
    student, teacher = _logits(2)
    value, grad = _ours("skew_forward_kl", student, teacher, skew_alpha=alpha)
    expected, expected_grad = _theirs(distillm_skewed_forward_kl, student, teacher, alpha)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(value, expected - _teacher_entropy(teacher), rtol=1e-12, atol=1e-14)
    assert grad.abs().max() > 1e-3


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3, 0.5, 0.9])
def test_skew_reverse_kl_is_distillms_skewed_reverse_kl(alpha):
    """--kd-loss skew_reverse_kl --skew-alpha α: DistiLLM's value and gradient (same α: its mixture
    (1 − α)·p + α·q is our α·q + (1 − α)·p)."""
    student, teacher = _logits(3)
    value, grad = _ours("skew_reverse_kl", student, teacher, skew_alpha=alpha)
    expected, expected_grad = _theirs(distillm_skewed_reverse_kl, student, teacher, alpha)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-14)
    assert expected > 1e-3


# ---------------------------------------------------------------------------------------------
# ABKD: ghwang-s/abkd @df81318, distillation_llm/distillm/losses.py, function ab_div(logits,
# teacher_logits, no_model_batch, alpha, beta) (finetune.py, --type ab: --ab_alpha, --ab_beta).
# Per position, powers of the probabilities:
#   α = β = 0:      ½ Σ_v (log q_v − log p_v)²
#   α = 0, β ≠ 0:   (1/β) Σ_v [q^β log(q^β / p^β) − q^β + p^β]
#   β = 0, α ≠ 0:   (1/α) Σ_v [p^α log(p^α / q^α) − p^α + q^α]
#   α + β = 0:      (1/α) Σ_v [log(q^α / p^α) + p^α / q^α − 1]
#   otherwise:      −1/(αβ) Σ_v [p^α q^β − α/(α+β) p^(α+β) − β/(α+β) q^(α+β)]
# Σ over supervised positions / their count. (Its NaN and inf masks only act at zero mass or
# ±inf logits; none here.)
# ---------------------------------------------------------------------------------------------
def abkd_ab_div(log_q: torch.Tensor, log_p: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    p, q = log_p.exp(), log_q.exp()
    if alpha == 0 and beta == 0:
        per_entry = 0.5 * (log_q - log_p).square()
    elif alpha == 0:
        q_b, p_b = q.pow(beta), p.pow(beta)
        per_entry = (q_b * torch.log(q_b / p_b) - q_b + p_b) / beta
    elif beta == 0:
        p_a, q_a = p.pow(alpha), q.pow(alpha)
        per_entry = (p_a * torch.log(p_a / q_a) - p_a + q_a) / alpha
    elif alpha + beta == 0:
        p_a, q_a = p.pow(alpha), q.pow(alpha)
        per_entry = (torch.log(q_a / p_a) + p_a / q_a - 1) / alpha
    else:
        total = alpha + beta
        per_entry = -(p.pow(alpha) * q.pow(beta) - alpha / total * p.pow(total)
                      - beta / total * q.pow(total)) / (alpha * beta)
    return _token_mean(per_entry.sum(-1))


def abkd_limit_factor(alpha: float, beta: float) -> float:
    """ABKD's value / ours. Our limit forms are the continuous limits of the general form, which
    carry 1/α² (β = 0, α + β = 0) and 1/β² (α = 0); ABKD's ab_div divides by α (or β) once, so
    it is α (or β) times ours there (negative for α < 0 at α + β = 0). The general form and
    α = β = 0 agree, and so do (1, 0) and (0, 1), the two KLs."""
    if alpha == 0 and beta == 0:
        return 1.0
    if alpha == 0:
        return beta
    if beta == 0 or alpha + beta == 0:
        return alpha
    return 1.0


@pytest.mark.parametrize(("alpha", "beta"), [
    (0.2, 0.7),    # ABKD's GPT-2 0.3B / 0.7B scripts
    (0.5, 0.5), (1.5, -0.5), (-0.3, 0.8), (2.0, 3.0),  # the general form, negative exponents too
    (1.0, 0.0), (0.0, 1.0),  # KL(p ‖ q), KL(q ‖ p): the limit forms where both agree
    (0.5, 0.0), (0.0, 0.5), (0.6, -0.6), (-0.6, 0.6),  # limit forms: ABKD = α (or β) · ours
    (0.0, 0.0),
])
def test_alpha_beta_is_abkds_ab_div_up_to_its_limit_factors(alpha, beta):
    student, teacher = _logits(4)
    value, grad = _ours("alpha_beta", student, teacher, ab_alpha=alpha, ab_beta=beta)
    expected, expected_grad = _theirs(abkd_ab_div, student, teacher, alpha, beta)
    factor = abkd_limit_factor(alpha, beta)
    torch.testing.assert_close(factor * value, expected, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(factor * grad, expected_grad, rtol=1e-8, atol=1e-13)
    assert value > 1e-3
