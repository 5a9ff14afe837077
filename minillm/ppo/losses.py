"""MiniLLM losses (reference §6): pure functions of tensors over the response positions of rollouts.

Every tensor is [B, T] over response positions, with mask [B, T] (1.0 on real response tokens, 0
after EOS/padding; each row's mask is a prefix of ones). Per-token log-probs are those of the
DRAWN tokens, recorded by the sampler, so no vocabulary-sized tensor is stored per rollout.
Notation: q = student, q_old = student at rollout time, p = teacher, p̃ = α·p + (1 − α)·q the
teacher-mixed sampling distribution. Losses return SUMS over masked tokens (the caller divides by
the global token count) plus, for the policy loss, detached statistics that are sums as well.
Masked positions may hold any value (even ±inf or NaN); they never reach a result or a gradient.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.distributed as dist

from minillm.losses import divergence, topk_divergence

AllReduce = Callable[[torch.Tensor], object]
# How far (in nats) below its row's largest logit a teacher logit may lie in the single-step term.
TEACHER_LOGIT_RANGE = 100.0


def rewards(teacher_logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor,
            scaling: float = 0.5, clip: float = 100.0) -> torch.Tensor:
    """Per-token reward r_t = (log p(y_t) − log q_old(y_t)) / scaling, clipped to ±clip; [B, T] → [B, T].

    0 off the mask. A token the teacher cannot emit (log p = −inf) gets −clip rather than −inf.
    """
    reward = ((teacher_logprobs - old_logprobs) / scaling).clamp(-clip, clip)
    return torch.where(mask.bool(), reward, 0.0)


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 0.95,
                       length_norm: bool = True) -> torch.Tensor:
    """R_t = Σ_{t' ≥ t, masked} γ^(t'−t) r_t' (current step included); [B, T] → [B, T].

    With length_norm, R_t is divided by the number of response tokens left from t to the end of
    its row, inclusive (MiniLLM's length normalisation, without which the student learns to stop
    early). 0 off the mask.
    """
    valid = mask.bool()
    masked_rewards = torch.where(valid, rewards, 0.0)
    steps = torch.arange(rewards.shape[-1], device=rewards.device)
    offset = steps[None, :] - steps[:, None]  # [t, t'] = t' − t
    # Upper-triangular γ^(t'−t): one matmul instead of a reversed scan; positive powers only, so
    # nothing overflows (the γ^(−t) rescaling trick for cumsum would for long responses).
    discount = torch.where(offset >= 0, gamma ** offset.clamp(min=0).to(rewards.dtype), 0.0)
    returns = masked_rewards @ discount.T
    if length_norm:
        # Reversed cumulative count of masked tokens = tokens remaining from t (masks are prefixes).
        remaining = valid.flip(-1).cumsum(-1).flip(-1)
        returns = returns / remaining.clamp(min=1)
    return torch.where(valid, returns, 0.0)


def whiten(values: torch.Tensor, mask: torch.Tensor, group: dist.ProcessGroup | None = None,
           all_reduce: AllReduce | None = None) -> torch.Tensor:
    """(x − mean) / sqrt(var + 1e-8) over ALL masked entries on all data-parallel ranks; [B, T] → [B, T].

    The sum, sum of squares and count are summed across ranks in one collective (float64, so the
    result does not depend on how entries are split over ranks). The variance is the biased one,
    E[x²] − E[x]². `all_reduce` sums a tensor in place across ranks; by default it is
    torch.distributed.all_reduce over `group` when torch.distributed is initialised with more
    than one rank in `group`, otherwise the statistics stay local. 0 off the mask.
    """
    valid = mask.bool()
    x = torch.where(valid, values, 0.0).double()
    stats = torch.stack([x.sum(), x.square().sum(), valid.sum().double()])
    if all_reduce is None and dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        all_reduce = functools.partial(dist.all_reduce, group=group)
    if all_reduce is not None:
        all_reduce(stats)
    total, total_sq, count = stats.unbind()
    count = count.clamp(min=1)  # no masked entry anywhere: every output is 0 anyway
    mean = total / count
    var = (total_sq / count - mean.square()).clamp(min=0)  # rounding can make it slightly negative
    whitened = ((x - mean) * torch.rsqrt(var + 1e-8)).to(values.dtype)
    return torch.where(valid, whitened, 0.0)


def mixed_logprob(student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor, alpha: float) -> torch.Tensor:
    """log p̃(y_t) = log(α·p(y_t) + (1 − α)·q(y_t)) via logaddexp; [B, T] → [B, T].

    α = 0 returns `student_logprobs` itself and α = 1 `teacher_logprobs`, so that without
    teacher mixing the importance weight is exactly 1 (logaddexp with log 1 = 0 could round).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if alpha == 0.0:
        return student_logprobs
    if alpha == 1.0:
        return teacher_logprobs
    return torch.logaddexp(teacher_logprobs + math.log(alpha), student_logprobs + math.log1p(-alpha))


def importance_weights(student_logprobs: torch.Tensor, mixed_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-step importance weight w_t = q(y_t) / p̃(y_t) = exp(log q − log p̃); [B, T] → [B, T].

    Per step, not the product over steps (reference §6). Since p̃ ≥ (1 − α)·q, w_t ≤ 1 / (1 − α).
    """
    return (student_logprobs - mixed_logprobs).exp()


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, importance_weights: torch.Tensor,
                advantages: torch.Tensor, mask: torch.Tensor,
                clip_eps: float | None = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clipped policy loss with the teacher-mixing weight folded into the ratio; [B, T] inputs.

    ρ_t = exp(log q_θ − log q_old) · w_t; per token max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε)), summed
    over the mask → scalar; clip_eps None = no clipping (−A·ρ alone). `mask` is 0 on padding; a positive value weights its token (1 for a
    plain sum; the trainer passes its normalisation and task-stream weights this way). The gradient flows through `logprobs` only (the other inputs are
    detached). Stats (detached scalars, sums over masked tokens so the caller can normalise):
    "clip_fraction", the number of tokens where the clipped term was taken and differs from the
    unclipped one; "ratio", Σ ρ_t.
    """
    valid = mask.bool()
    # Zeroing masked log-ratios and weights before exp keeps inf/NaN padding out of the backward:
    # torch.where alone would multiply a zero gradient by a NaN ratio there.
    log_ratio = torch.where(valid, logprobs - old_logprobs.detach(), 0.0)
    weights = torch.where(valid, importance_weights.detach(), 1.0)
    advantages = torch.where(valid, advantages.detach(), 0.0)
    ratio = log_ratio.exp() * weights
    unclipped = -advantages * ratio
    clipped = unclipped if clip_eps is None else -advantages * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    loss = (torch.where(valid, torch.maximum(unclipped, clipped), 0.0) * mask).sum()
    stats = {
        "clip_fraction": (valid & (clipped > unclipped)).sum().detach().to(ratio.dtype),
        "ratio": torch.where(valid, ratio, 0.0).sum().detach(),
    }
    return loss, stats


REDUCTIONS = ("mean", "sum")


def token_weights(stream_weights: list[float], stream_tokens: list[float], reduction: str = "mean") -> list[float]:
    """The weight of each response token of task stream s in the rollout terms of one optimizer step.

    stream_weights [S] (each stream's weight; one stream of weight 1 but for step-by-step),
    stream_tokens [S] (response tokens of stream s in the GLOBAL mini-batch) → [S]:
    "mean": w_s / N_s, each stream's token mean (MiniLLM; an empty stream counts as one token);
    "sum": w_s, the plain sum over tokens (Tinker's "importance_sampling" loss, which on-policy
    distillation uses): the step's gradient then grows with its number of tokens.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if len(stream_weights) != len(stream_tokens):
        raise ValueError(f"{len(stream_weights)} stream weights for {len(stream_tokens)} token counts")
    if reduction == "sum":
        return list(stream_weights)
    return [weight / max(tokens, 1.0) for weight, tokens in zip(stream_weights, stream_tokens)]


def single_step_regulariser(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                            vocab_size: int, row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Exact per-position reverse KL Σ_v q(v)(log q(v) − log p(v)), summed over masked positions.

    student_logits [B, T, V], teacher_logits [B, T, V'], mask [B, T] → scalar; `row_weights` [B]
    weights each sequence's sum (default 1). Both distributions are over the first `vocab_size`
    columns (the tokenizer length). Delegates to the chunked `minillm.losses.divergence`, so
    backward may run once per call.

    Teacher logits more than TEACHER_LOGIT_RANGE below their row's maximum (−inf included: a
    teacher that forbids a token) are raised to that floor: the exact reverse KL is +inf wherever
    the student gives such a token mass, and its gradient NaN, which would end the run. The floor
    gives those tokens p ≤ e^−100 times the top token's, a finite penalty that still pushes the
    student off them; a teacher whose logits all lie within the range is used bit for bit.
    """
    floor = teacher_logits[..., :vocab_size].amax(-1, keepdim=True) - TEACHER_LOGIT_RANGE
    per_sequence = divergence("reverse_kl", student_logits, torch.maximum(teacher_logits, floor), mask,
                              reduction="rows", vocab_size=vocab_size)
    return per_sequence.sum() if row_weights is None else (per_sequence * row_weights).sum()


def single_step_regulariser_topk(student_logits: torch.Tensor, teacher_ids: torch.Tensor,
                                 teacher_log_probs: torch.Tensor, mask: torch.Tensor, vocab_size: int,
                                 row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """`single_step_regulariser` against a teacher kept as its top k tokens + tail: teacher_ids
    [B, T, k] and teacher_log_probs [B, T, k + 1] (`minillm.losses.top_k_with_tail` of its
    log-softmax over the first `vocab_size` columns) → scalar. Reverse KL between the (k + 1)-bucket
    coarse-grainings (`minillm.losses.topk_divergence`): exact for k ≥ vocab_size, a lower bound
    otherwise. The same floor as the dense form: buckets more than TEACHER_LOGIT_RANGE below the
    row's top one are raised to it.
    """
    floor = teacher_log_probs.amax(-1, keepdim=True) - TEACHER_LOGIT_RANGE
    per_sequence = topk_divergence("reverse_kl", student_logits, teacher_ids, torch.maximum(teacher_log_probs, floor),
                                   mask, vocab_size=vocab_size, reduction="rows")
    return per_sequence.sum() if row_weights is None else (per_sequence * row_weights).sum()
