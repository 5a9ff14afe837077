"""Loss functions: pure functions of tensors with documented shapes.

Token losses are returned as SUMS over supervised positions; the trainer divides by the number
of supervised tokens in the whole global batch, so the gradient does not depend on how the batch
is split over devices and accumulation steps. The word-level KD `divergence` averages by default
and gives that sum with reduction="sum".
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def cross_entropy_rows(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sequence, Σ over positions with labels != -100 of -log softmax(logits)[label].

    logits: [B, T, V] (any float dtype; the math runs in fp32), labels: [B, T] → [B].
    Only the labelled positions' log-softmax is computed (prompts and padding are most of a
    batch); each value, the row sums and the gradient are those of the full computation.
    """
    labelled = labels != IGNORE_INDEX
    per_token = F.cross_entropy(logits[labelled].float(), labels[labelled], reduction="none")
    return torch.zeros(labels.shape, dtype=per_token.dtype, device=per_token.device).masked_scatter(
        labelled, per_token).sum(1)


# ----------------------------------------------------------------------------------------------
# Word-level KD divergences.
#
# Notation: p = teacher distribution, q = student distribution, both softmax(logits / temperature)
# over the shared vocabulary. Per-token divergences take log-probabilities [N, V] (N positions)
# and return [N]; they are pure and differentiable w.r.t. log_q. Conventions for zero mass:
# 0·log(0/x) = 0 (a token that neither side can emit contributes 0), and a term a·log(a/0) with
# a > 0 is +inf: the value is the true divergence, so e.g. forward KL is +inf when the student gives
# zero mass to a token the teacher can emit. Values are never NaN for ±inf logits (see
# `_scaled_logits` for +inf); gradients are finite wherever the value is finite.
# ----------------------------------------------------------------------------------------------

PerTokenDivergence = Callable[..., torch.Tensor]


def _kl_to_mixture(log_a: torch.Tensor, log_b: torch.Tensor, weight_a: float) -> torch.Tensor:
    """KL(a ‖ m) with m = weight_a·a + (1 − weight_a)·b, per row; [N, V] log-probs → [N].

    weight_a = 0 gives the plain KL(a ‖ b). For weight_a > 0, m > 0 wherever a > 0, so the result
    is finite.
    """
    a = log_a.exp()
    support = a > 0
    if weight_a > 0:
        # logaddexp's gradient is NaN where both inputs are −inf; off the support of a the term is
        # 0 anyway, so feed it finite stand-ins there.
        log_rest = math.log(1.0 - weight_a) if weight_a < 1.0 else -math.inf
        log_b = torch.logaddexp(torch.where(support, log_a, 0.0) + math.log(weight_a),
                                torch.where(support, log_b, 0.0) + log_rest)
    # Off the support log_a − log_b may be −inf − (−inf) = NaN; the term is 0 there (0·log 0 = 0).
    return (a * torch.where(support, log_a - log_b, 0.0)).sum(-1)


def _weighted(weight: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """weight·value with 0·inf = 0 (a zero weight switches a possibly infinite term off); [N] → [N]."""
    return torch.where(weight > 0, weight * value, 0.0)


def forward_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_v p (log p − log q); teacher log_p, student log_q [N, V] → [N].

    Its gradient w.r.t. the student equals that of the cross-entropy −Σ_v p log q (reference §4):
    the two differ by the teacher entropy, a constant.
    """
    return _kl_to_mixture(log_p, log_q, 0.0)


def reverse_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(q ‖ p); teacher log_p, student log_q [N, V] → [N]."""
    return _kl_to_mixture(log_q, log_p, 0.0)


def symmetric_kl(log_p: torch.Tensor, log_q: torch.Tensor, *, sym_lambda: float | None = None) -> torch.Tensor:
    """Symmetric KL; [N, V] → [N].

    sym_lambda unset (the default): KL(p ‖ q) + KL(q ‖ p), the unweighted sum this registry has
    always computed, so existing runs keep their loss. sym_lambda = λ: the convex mix
    (1 − λ)·KL(p ‖ q) + λ·KL(q ‖ p) of DistiLLM's `symmetric_kl(..., lam)` (same λ; DistiLLM
    writes the forward term as the cross-entropy −Σ p log q, which has the same gradient). λ = ½
    is half the unweighted sum.
    """
    if sym_lambda is None:
        return forward_kl(log_p, log_q) + reverse_kl(log_p, log_q)
    forward, reverse = forward_kl(log_p, log_q), reverse_kl(log_p, log_q)
    # _weighted: λ = 0 or 1 switches the other, possibly infinite, KL off.
    return (_weighted(torch.full_like(forward, 1.0 - sym_lambda), forward)
            + _weighted(torch.full_like(reverse, sym_lambda), reverse))


def js_divergence(log_p: torch.Tensor, log_q: torch.Tensor, *, jsd_beta: float = 0.5) -> torch.Tensor:
    """Generalised Jensen-Shannon divergence in TRL's GKD convention; [N, V] → [N].

    For 0 < β < 1: β·KL(p ‖ m) + (1 − β)·KL(q ‖ m) with m = β·p + (1 − β)·q (β = 0.5 is the
    usual JSD, bounded by log 2). As β → 0 or 1 this form tends to 0, so, like TRL's
    `generalized_jsd_loss`, β = 0 is defined as forward KL(p ‖ q) and β = 1 as reverse KL(q ‖ p).
    These are the scaled limits: JSD_β / β → KL(p ‖ q) as β → 0, JSD_β / (1 − β) → KL(q ‖ p) as
    β → 1.

    DistiLLM's `js_distance(..., lam)` weights the mixture the other way round,
    m = (1 − λ)·p + λ·q, so it equals this with β = 1 − λ (its default λ = 0.9 is β = 0.1), for
    0 < λ < 1; at λ = 0 or 1 DistiLLM's form is 0 while TRL's β = 1 or 0 is a plain KL.
    """
    if jsd_beta == 0.0:
        return forward_kl(log_p, log_q)
    if jsd_beta == 1.0:
        return reverse_kl(log_p, log_q)
    return (jsd_beta * _kl_to_mixture(log_p, log_q, jsd_beta)
            + (1.0 - jsd_beta) * _kl_to_mixture(log_q, log_p, 1.0 - jsd_beta))


def total_variation(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """½ Σ_v |p − q|, in [0, 1]; [N, V] → [N]."""
    return 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1)


def skew_forward_kl(log_p: torch.Tensor, log_q: torch.Tensor, *, skew_alpha: float = 0.1) -> torch.Tensor:
    """DistiLLM skew forward KL: KL(p ‖ α·p + (1 − α)·q); [N, V] → [N].

    α = 0 is forward KL; α = 1 is 0. Finite for α > 0 even where q = 0.
    """
    return _kl_to_mixture(log_p, log_q, skew_alpha)


def skew_reverse_kl(log_p: torch.Tensor, log_q: torch.Tensor, *, skew_alpha: float = 0.1) -> torch.Tensor:
    """DistiLLM skew reverse KL: KL(q ‖ α·q + (1 − α)·p); [N, V] → [N].

    α = 0 is reverse KL; α = 1 is 0. Finite for α > 0 even where p = 0.
    """
    return _kl_to_mixture(log_q, log_p, skew_alpha)


def adaptive_kl(log_p: torch.Tensor, log_q: torch.Tensor, *, akl_mu: float = 0.5) -> torch.Tensor:
    """Adaptive KL (AKL; Wu et al. 2024, "Rethinking KL divergence in KD for LLMs"); [N, V] → [N].

    Per position: sort the vocabulary by teacher probability, descending (ties in sort order).
    The head is the smallest prefix whose cumulative teacher mass reaches μ, i.e. the tokens
    whose preceding cumulative mass is < μ (μ = 0 gives an empty head); the tail is the rest.
    gap_head = Σ_head |p − q|, gap_tail = Σ_tail |p − q|, g_head = gap_head / (gap_head + gap_tail),
    g_tail = 1 − g_head (both ½ when p = q, where the loss is 0 anyway). The weights are constants
    (no gradient flows through them):

        AKL = g_head·KL(p ‖ q) + g_tail·KL(q ‖ p).

    The AKL/DSKD code instead uses an inclusive cumulative sum (tokens with cumsum ≤ μ, which
    leaves out the token that crosses μ) plus a forced first token; this implements the
    "smallest prefix reaching μ" definition above.
    """
    with torch.no_grad():
        p_sorted, order = log_p.exp().sort(dim=-1, descending=True)
        gap = (p_sorted - log_q.exp().gather(-1, order)).abs()
        mass_before = F.pad(p_sorted.cumsum(-1)[:, :-1], (1, 0))  # exclusive cumulative sum
        gap_head = torch.where(mass_before < akl_mu, gap, 0.0).sum(-1)
        gap_total = gap.sum(-1)
        head_weight = torch.where(gap_total > 0, gap_head / gap_total, 0.5)
    return (_weighted(head_weight, forward_kl(log_p, log_q))
            + _weighted(1.0 - head_weight, reverse_kl(log_p, log_q)))


def alpha_beta(log_p: torch.Tensor, log_q: torch.Tensor, *, ab_alpha: float = 0.2,
               ab_beta: float = 0.7) -> torch.Tensor:
    """α-β divergence D_AB^(α,β)(p ‖ q) (Cichocki, Cruces & Amari 2011, "Generalized Alpha-Beta
    Divergences", Entropy 13:134), the loss of ABKD (Wang et al., ICML 2025); [N, V] → [N].

    For α, β, α + β ≠ 0:  −1/(αβ) Σ_v [p^α q^β − α/(α+β) p^(α+β) − β/(α+β) q^(α+β)], and its
    continuous limits
        β = 0:       1/α² Σ_v [p^α log(p^α / q^α) − p^α + q^α]      (α = 1: KL(p ‖ q))
        α = 0:       1/β² Σ_v [q^β log(q^β / p^β) − q^β + p^β]      (β = 1: KL(q ‖ p))
        α + β = 0:   1/α² Σ_v [(p/q)^α − 1 − log (p/q)^α]
        α = β = 0:   ½ Σ_v (log p − log q)².
    Every power is computed as exp(exponent · log-prob), in the math dtype (fp32 at least).
    Defaults α = 0.2, β = 0.7: ABKD's GPT-2 recipe (ghwang-s/abkd,
    distillation_llm/scripts/gpt2/ab/train_0.1B_1.5B.sh: START_ALPHA=0.2, START_ALPHA_BETA=0.9).
    ABKD's `ab_div` divides its limit branches by α (or β) rather than α² (β²); the two agree at
    (1, 0) and (0, 1), the KLs, and only this one is continuous in (α, β).

    Zero mass: a token neither side can emit contributes 0 (this drops the log-ratio terms of the
    α + β = 0 and α = β = 0 forms where both probabilities underflow). Where one side is 0 the term is its
    limit: finite for positive exponents (e.g. q^(α+β) / (α(α+β)) where p = 0 < q, for α, α+β > 0),
    +inf where a power with a negative exponent of that 0 diverges.
    """
    if ab_alpha == 0 and ab_beta != 0:
        # The α = 0 form is the β = 0 form with the roles of (p, α) and (q, β) swapped.
        return alpha_beta(log_q, log_p, ab_alpha=ab_beta, ab_beta=0.0)
    # Zero mass as in the KL family: a probability that is 0 (log −inf, or below ≈ −104 in fp32,
    # −745 in fp64, where an +inf logit clamped by `_scaled_logits` puts the others).
    p_zero, q_zero = log_p.exp() == 0, log_q.exp() == 0
    # Equal finite stand-ins where p = q = 0 keep inf − inf out of the values and the gradients;
    # the term is pinned to 0 there below.
    both_zero = p_zero & q_zero
    x, y = torch.where(both_zero, 0.0, log_p), torch.where(both_zero, 0.0, log_q)
    alpha, beta, total = ab_alpha, ab_beta, ab_alpha + ab_beta
    if alpha == 0:  # and β = 0
        terms = 0.5 * (x - y).square()
    elif total == 0:
        log_ratio = alpha * (x - y)
        terms = (torch.expm1(log_ratio) - log_ratio) / alpha ** 2
    elif beta == 0:
        p_alpha = (alpha * x).exp()
        # p^α log(p^α / q^α) is 0 where p^α = 0 (α > 0, p = 0), even though log p = −inf.
        p_alpha_log_ratio = torch.where(p_alpha > 0, p_alpha * alpha * (x - y), 0.0)
        terms = (p_alpha_log_ratio - p_alpha + (alpha * y).exp()) / alpha ** 2
    else:
        terms = -((alpha * x + beta * y).exp() - alpha / total * (total * x).exp()
                  - beta / total * (total * y).exp()) / (alpha * beta)
    # With one side 0, NaN can only come from inf − inf: two powers of that 0 diverge, and the
    # term, non-negative, is +inf.
    terms = torch.where((p_zero ^ q_zero) & terms.isnan(), math.inf, terms)
    # Each term is ≥ 0 with its minimum at p = q, where its value and slope are 0; pinning them
    # there removes the rounding of the power forms (e.g. e^(αx+βx) vs e^((α+β)x)).
    return torch.where(x == y, 0.0, terms).sum(-1)


DIVERGENCES: dict[str, PerTokenDivergence] = {
    "forward_kl": forward_kl,
    "reverse_kl": reverse_kl,
    "symmetric_kl": symmetric_kl,
    "js_divergence": js_divergence,
    "total_variation": total_variation,
    "skew_forward_kl": skew_forward_kl,
    "skew_reverse_kl": skew_reverse_kl,
    "adaptive_kl": adaptive_kl,
    "alpha_beta": alpha_beta,
}

# Each divergence's parameters and defaults, read from the keyword-only arguments above so the
# defaults live in one place. A None default means "unset" (see the function's docstring).
DIVERGENCE_PARAMS: dict[str, dict[str, float | None]] = {
    name: {param.name: param.default for param in inspect.signature(fn).parameters.values()
           if param.kind is inspect.Parameter.KEYWORD_ONLY}
    for name, fn in DIVERGENCES.items()
}


# Allowed values of each parameter, inclusive; the others (weights, mixture and mass fractions)
# lie in [0, 1]. The α-β exponents may be any finite number.
PARAM_RANGES: dict[str, tuple[float, float]] = {"ab_alpha": (-math.inf, math.inf), "ab_beta": (-math.inf, math.inf)}


def resolve_divergence_params(name: str, params: Mapping[str, float]) -> dict[str, float | None]:
    """The full parameter dict for divergence `name`: defaults overridden by `params`.

    Raises ValueError for an unknown divergence, a parameter it does not take, or a value
    outside its range (PARAM_RANGES, else [0, 1]; always finite) or not a number, naming the offender.
    """
    if name not in DIVERGENCES:
        raise ValueError(f"unknown divergence {name!r}; choose from {sorted(DIVERGENCES)}")
    resolved = dict(DIVERGENCE_PARAMS[name])
    for param, value in params.items():
        if param not in resolved:
            raise ValueError(f"divergence {name!r} takes no parameter {param!r}; "
                             f"it takes {sorted(resolved) or 'none'}")
        low, high = PARAM_RANGES.get(param, (0.0, 1.0))
        if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                or not low <= value <= high):
            raise ValueError(f"{param} must be a finite number in [{low}, {high}], got {value!r}")
        resolved[param] = float(value)
    return resolved


def _scaled_logits(logits: torch.Tensor, rows: torch.Tensor, vocab_size: int, temperature: float,
                   dtype: torch.dtype) -> torch.Tensor:
    """A fresh copy of logits[rows, :vocab_size] in `dtype`, divided by temperature; [M, V'] → [n, V].

    +inf logits are clamped to the largest finite value (after the division, which could overflow),
    so a row holding them gets its limit distribution, uniform over the +inf entries (log_softmax
    would give inf − inf = NaN there). Indexing already copied, so both ops run in place, outside
    autograd.
    """
    return logits[rows, :vocab_size].to(dtype).div_(temperature).clamp_(max=torch.finfo(dtype).max)


# The teacher's side of a chunk: (flat row indices [n] into B·T, the student's log-probs [n, V] at
# those rows) → (log p, log q), two [n, V'] tensors over the same V' outcomes. The dense teacher
# returns its own log-softmax and the student's log-probs as they are (V' = V); a top-k teacher
# (`topk_divergence`) groups both into its k tokens and one tail bucket (V' = k + 1).
TeacherSide = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# A chunk's [n, V] tensors stay at most this large: glibc serves allocations above its mmap threshold
# (at most 32 MiB) as fresh zeroed pages, and faulting those in cost more than the divergence's math
# (a forward KL over 3584 positions of Qwen2's 151,646-token vocabulary on 2 CPU threads: 33.5 s in
# chunks of 1024 rows, 9.3 s in chunks of 27; GPT-2's 50,257: 8.4 s → 2.8 s; same values and
# gradients, bit for bit, as every row is its own computation).
CHUNK_BYTES = 16 * 2 ** 20


def chunk_rows(chunk_size: int, vocab_size: int, dtype: torch.dtype) -> int:
    """Rows per chunk: at most `chunk_size`, and at most CHUNK_BYTES per [rows, vocab_size] tensor."""
    return max(1, min(chunk_size, CHUNK_BYTES // (vocab_size * torch.finfo(dtype).bits // 8)))


class _ChunkedDivergence(torch.autograd.Function):
    """Per sequence, Σ over its selected positions of a per-token divergence, chunk by chunk.

    The forward computes each chunk's values and its gradient w.r.t. the student logits at once,
    writing the gradient into a buffer shaped like the student logits; backward only scales that
    buffer (each sequence's positions by that sequence's incoming gradient). Autograd therefore
    keeps no per-chunk intermediates: only the current chunk's (a handful of [rows, V] tensors in
    the math dtype, `chunk_rows`) are alive at any time.
    """

    @staticmethod
    def forward(ctx, student_logits: torch.Tensor, teacher: TeacherSide, rows: torch.Tensor,
                per_token: PerTokenDivergence, vocab_size: int, temperature: float, chunk_size: int,
                compute_grad: bool, dtype: torch.dtype) -> torch.Tensor:
        """student_logits [B, T, V_s], rows [N] (flat indices into B·T) → [B]. `teacher` gives,
        per chunk, the two distributions the per-token divergence compares (see TeacherSide)."""
        batch, length = student_logits.shape[:2]
        student_logits = student_logits.flatten(0, 1)
        totals = torch.zeros(batch, dtype=dtype, device=student_logits.device)
        grad_buffer = torch.zeros_like(student_logits) if compute_grad else None
        step = chunk_rows(chunk_size, vocab_size, dtype)
        for start in range(0, rows.numel(), step):
            selected = rows[start:start + step]
            # Indexing copies only this chunk's rows and shared-vocabulary columns.
            student_chunk = _scaled_logits(student_logits, selected, vocab_size, temperature, dtype)
            with torch.enable_grad():
                student_chunk.requires_grad_(compute_grad)
                values = per_token(*teacher(selected, student_chunk.log_softmax(-1)))
                if compute_grad:
                    (chunk_grad,) = torch.autograd.grad(values.sum(), student_chunk)
                    # d/d logits = d/d (logits / temperature) · 1 / temperature.
                    grad_buffer[selected, :vocab_size] = chunk_grad.div_(temperature).to(grad_buffer.dtype)
            totals.index_add_(0, selected // length, values.detach())
        ctx.grad_buffer = None if grad_buffer is None else grad_buffer.view(batch, length, -1)
        return totals

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_buffer, ctx.grad_buffer = ctx.grad_buffer, None
        if grad_buffer is None:
            raise RuntimeError("divergence(): backward ran twice through the same graph; "
                               "call divergence() again instead of retain_graph=True")
        # Scaling in place keeps a single logits-sized buffer (which is why a second backward
        # through the same graph is refused above).
        return grad_buffer.mul_(grad_total[:, None, None]), None, None, None, None, None, None, None, None


def divergence(name: str, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               mask: torch.Tensor, *, reduction: str = "mean", temperature: float = 1.0,
               vocab_size: int | None = None, chunk_size: int = 1024,
               **params: float) -> torch.Tensor:
    """Word-level KD divergence between teacher p and student q, reduced over supervised positions.

    student_logits [B, T, V_s], teacher_logits [B, T, V_t] (any float dtypes), mask [B, T]
    (nonzero/True = supervised) → scalar ([B] for reduction="rows"). p = softmax(teacher_logits / temperature),
    q = softmax(student_logits / temperature), both over the first `vocab_size` columns (default
    min(V_s, V_t)): model families pad the embedding past the tokenizer, and those padding columns
    must not count. Pass the tokenizer length as `vocab_size` (see `minillm.modeling.check_same_tokenizer`).

    `name` picks the per-token divergence from DIVERGENCES; `params` are its parameters
    (DIVERGENCE_PARAMS; e.g. skew_alpha, jsd_beta, akl_mu), validated by
    `resolve_divergence_params`. reduction="mean" averages over the supervised positions (0 when
    there are none); reduction="sum" sums them, for a trainer that divides by a global token count;
    reduction="rows" gives each sequence's sum, [B], for a trainer that weights sequences
    (task streams of step-by-step distillation).
    No temperature² factor is applied.

    Only rows with mask set are read, so masked positions contribute nothing even if their logits
    are NaN. Math runs in at least fp32 (bf16/fp16 logits in → fp32 result). Rows are processed
    at most `chunk_size` (and at most CHUNK_BYTES per tensor, `chunk_rows`) at a time with the
    gradient computed in the forward pass (see `_ChunkedDivergence`), so memory beyond the logits
    and their gradient is O(chunk_size · V), independent of B·T.
    The teacher gets no gradient. Backward may run once per call.
    """
    per_token = _per_token_divergence(name, params, reduction, temperature, chunk_size)
    if (student_logits.dim() != 3 or teacher_logits.shape[:-1] != student_logits.shape[:-1]
            or mask.shape != student_logits.shape[:-1]):
        raise ValueError(f"expected student [B, T, V], teacher [B, T, V'] and mask [B, T]; got "
                         f"{tuple(student_logits.shape)}, {tuple(teacher_logits.shape)}, {tuple(mask.shape)}")
    shared_columns = min(student_logits.shape[-1], teacher_logits.shape[-1])
    if vocab_size is None:
        vocab_size = shared_columns
    elif not 1 <= vocab_size <= shared_columns:
        raise ValueError(f"vocab_size={vocab_size} must be in [1, {shared_columns}] (student has "
                         f"{student_logits.shape[-1]} columns, teacher {teacher_logits.shape[-1]})")
    dtype = torch.promote_types(torch.promote_types(student_logits.dtype, teacher_logits.dtype), torch.float32)
    flat_teacher = teacher_logits.flatten(0, 1)

    def teacher(rows: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _scaled_logits(flat_teacher, rows, vocab_size, temperature, dtype).log_softmax(-1), log_q

    return _reduce_chunked(student_logits, teacher, _mask_rows(mask), per_token, vocab_size, temperature, chunk_size,
                           dtype, reduction)


def _per_token_divergence(name: str, params: Mapping[str, float], reduction: str, temperature: float,
                          chunk_size: int) -> PerTokenDivergence:
    """The checks every reduced divergence makes on its settings; the per-token function."""
    params = resolve_divergence_params(name, params)
    if reduction not in ("mean", "sum", "rows"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'rows', got {reduction!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    return functools.partial(DIVERGENCES[name], **params)


def _mask_rows(mask: torch.Tensor) -> torch.Tensor:
    return mask.reshape(-1).nonzero().squeeze(1)


def _reduce_chunked(student_logits: torch.Tensor, teacher: TeacherSide, rows: torch.Tensor,
                    per_token: PerTokenDivergence, vocab_size: int, temperature: float, chunk_size: int,
                    dtype: torch.dtype, reduction: str) -> torch.Tensor:
    """`rows`: the distinct flat indices into B·T of the student positions compared."""
    compute_grad = torch.is_grad_enabled() and student_logits.requires_grad
    per_sequence = _ChunkedDivergence.apply(student_logits, teacher, rows, per_token, vocab_size,
                                            temperature, chunk_size, compute_grad, dtype)
    if reduction == "rows":
        return per_sequence
    total = per_sequence.sum()
    return total if reduction == "sum" else total / max(rows.numel(), 1)


# ----------------------------------------------------------------------------------------------
# A teacher known only by its top k tokens per position (a teacher cache, or the logits MiniLLM's
# sampler keeps within a memory budget) and the log of the remaining mass.
# ----------------------------------------------------------------------------------------------

def top_k_with_tail(log_p: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's k most probable outcomes and the log of the rest's mass.

    log_p [N, V] (normalised log-probabilities) → (ids [N, k'] int64 by descending probability,
    bucket log-probs [N, k' + 1]: log p of those ids, then log Σ_{v ∉ ids} p(v)), k' = min(k, V).
    The tail is summed from the log-probs themselves (a log-sum-exp), not as 1 − Σ top, which
    would cancel catastrophically when the top k hold almost all the mass; it is −inf when k ≥ V.
    """
    top = log_p.topk(min(k, log_p.shape[-1]), dim=-1)
    tail = log_p.scatter(-1, top.indices, -math.inf).logsumexp(-1, keepdim=True)
    return top.indices, torch.cat([top.values, tail], -1)


def topk_divergence(name: str, student_logits: torch.Tensor, teacher_ids: torch.Tensor,
                    teacher_log_probs: torch.Tensor, mask: torch.Tensor, *, vocab_size: int,
                    reduction: str = "mean", temperature: float = 1.0, chunk_size: int = 1024,
                    **params: float) -> torch.Tensor:
    """`divergence` against a teacher stored as its top k tokens plus one tail bucket.

    student_logits [B, T, V_s] (V_s ≥ vocab_size); teacher_ids [B, T, k] (integer ids < vocab_size)
    and teacher_log_probs [B, T, k + 1], as `top_k_with_tail` gives them for the teacher's
    softmax(logits / temperature) over the first `vocab_size` columns; mask [B, T] → scalar ([B]
    for reduction="rows"). Settings and conventions as in `divergence`.

    The per-token divergence compares the (k + 1)-outcome coarse-grainings
        p̂ = (p(i_1), …, p(i_k), p_tail)   and   q̂ = (q(i_1), …, q(i_k), Σ_{v ∉ ids} q(v)),
    i.e. each side's mass outside the teacher's top k is one outcome. For k ≥ vocab_size there is
    no tail and the value is the exact divergence (up to summation order). For k < vocab_size,
    the f-divergences (the KLs, their skew and symmetric forms, JS, TV) can only lose what the
    tail's inner shape contributes (data-processing inequality: value ≤ exact); AKL splits head
    and tail over the buckets; α-β's power sums see the tail as one outcome (no bound in general).
    The student's gradient inside the tail moves only the tail's total mass, shared in proportion
    to q. The teacher gets no gradient.
    """
    per_token = _per_token_divergence(name, params, reduction, temperature, chunk_size)
    k = teacher_ids.shape[-1]
    if (student_logits.dim() != 3 or teacher_ids.shape[:-1] != student_logits.shape[:-1]
            or teacher_log_probs.shape != (*teacher_ids.shape[:-1], k + 1) or mask.shape != student_logits.shape[:-1]):
        raise ValueError(f"expected student [B, T, V], teacher ids [B, T, k], teacher log-probs [B, T, k + 1] and "
                         f"mask [B, T]; got {tuple(student_logits.shape)}, {tuple(teacher_ids.shape)}, "
                         f"{tuple(teacher_log_probs.shape)}, {tuple(mask.shape)}")
    if not 1 <= vocab_size <= student_logits.shape[-1]:
        raise ValueError(f"vocab_size={vocab_size} must be in [1, {student_logits.shape[-1]}] (the student's columns)")
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    flat_ids, flat_log_p = teacher_ids.flatten(0, 1), teacher_log_probs.flatten(0, 1)
    has_tail = k < vocab_size  # with every token in the top k, both tails are empty (and log 0's gradient NaN)

    def teacher(rows: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = flat_ids[rows].long()
        log_p = flat_log_p[rows].to(dtype)
        buckets = [log_q.gather(-1, ids)]
        if has_tail:
            buckets.append(log_q.scatter(-1, ids, -math.inf).logsumexp(-1, keepdim=True))
        return (log_p if has_tail else log_p[:, :k]), torch.cat(buckets, -1)

    return _reduce_chunked(student_logits, teacher, _mask_rows(mask), per_token, vocab_size, temperature, chunk_size,
                           dtype, reduction)


# ----------------------------------------------------------------------------------------------
# Teacher and student with different tokenizers. Their vocabularies differ, so no column of one
# is a column of the other; the positions compared are paired by minillm.data.cross_tokenizer
# (ULD's order, or tokens starting at the same byte of the text). Here p is the teacher's
# distribution over its V_t tokens, q the student's over its V_s.
# ----------------------------------------------------------------------------------------------

def universal_logit_distance(student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor) -> torch.Tensor:
    """ULD (Boizard et al. 2024, "Towards Cross-Tokenizer Distillation"): Σ_i |q̃_i − p̃_i| per position.

    student_logprobs [N, V_s], teacher_logprobs [N, V_t] (log-probabilities, or log of any
    non-negative masses) → [N]. q̃ and p̃ are the probability vectors sorted in decreasing order,
    the shorter one padded with zeros: the closed form of their Wasserstein-1 bound with a
    uniform transport cost, which needs no correspondence between the two vocabularies. In [0, 2]
    for distributions; 0 iff the two sorted vectors agree (the same probabilities, on any tokens).

    Differentiable w.r.t. both sides; the sort only permutes, so gradients stay finite where
    probabilities tie, and |0| has subgradient 0. The trainers pass the teacher without gradient
    (the paper's code runs it under no_grad).
    """
    student = student_logprobs.exp().sort(dim=-1, descending=True).values
    teacher = teacher_logprobs.exp().sort(dim=-1, descending=True).values
    width = max(student.shape[-1], teacher.shape[-1])
    student = F.pad(student, (0, width - student.shape[-1]))
    teacher = F.pad(teacher, (0, width - teacher.shape[-1]))
    return (student - teacher).abs().sum(-1)


def aligned_vocabulary_distance(student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor,
                                student_ids: torch.Tensor, teacher_ids: torch.Tensor,
                                divergence: str = "forward_kl", **params: float) -> torch.Tensor:
    """Direct distillation over the vocabulary entries both tokenizers share, ULD over the rest; → [N].

    student_logprobs [N, V_s], teacher_logprobs [N, V_t]; student_ids [M] and teacher_ids [M] pair
    the entries that spell the same string (`minillm.data.cross_tokenizer.vocabulary_map`, one to
    one). Each side is coarse-grained into its M shared entries plus one bucket holding all its
    unshared mass, and

        value = D(p̂ ‖ q̂)  +  ULD(p over the teacher's unshared entries, q over the student's)

    with D the word-level divergence `divergence` (DIVERGENCES, its `params`) over those M + 1
    outcomes, and ULD's sorted L1 (`universal_logit_distance`) over the unshared entries' own
    probabilities (not renormalised). The bucket lets D move mass between shared and unshared
    entries; the sorted term shapes the unshared mass, on which the vocabularies say nothing.
    Limits: when every entry is shared (one tokenizer) this is exactly D, word-level KD; when none
    is, D compares two one-outcome distributions (0) and this is exactly ULD. The bucket is left
    out when neither side has unshared entries (its log 0 would give NaN gradients); with
    unshared teacher entries but none on the student's side, KL-type D are +inf.

    TRL's GOLD hybrid (`uld_use_hybrid_loss`) instead takes a generalised JSD over the shared
    entries' raw (unnormalised) probabilities and the sorted L1 over the rest, weighted by the
    share of the teacher's vocabulary that matched.
    """
    if student_ids.shape != teacher_ids.shape or student_ids.dim() != 1:
        raise ValueError(f"student_ids and teacher_ids must be two [M] tensors, got {tuple(student_ids.shape)} and "
                         f"{tuple(teacher_ids.shape)}")
    per_token = functools.partial(DIVERGENCES[divergence], **resolve_divergence_params(divergence, params))
    log_p, log_q = teacher_logprobs[:, teacher_ids], student_logprobs[:, student_ids]
    teacher_rest = torch.ones(teacher_logprobs.shape[-1], dtype=torch.bool, device=teacher_logprobs.device)
    student_rest = torch.ones(student_logprobs.shape[-1], dtype=torch.bool, device=student_logprobs.device)
    teacher_rest[teacher_ids], student_rest[student_ids] = False, False
    if not (teacher_rest.any() or student_rest.any()):
        return per_token(log_p, log_q)

    def bucket(log_probs: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        if not rest.any():
            return torch.full_like(log_probs[:, :1], -math.inf)
        return log_probs[:, rest].logsumexp(-1, keepdim=True)

    shared = per_token(torch.cat([log_p, bucket(teacher_logprobs, teacher_rest)], -1),
                       torch.cat([log_q, bucket(student_logprobs, student_rest)], -1))
    return shared + universal_logit_distance(student_logprobs[:, student_rest], teacher_logprobs[:, teacher_rest])


CROSS_TOKENIZER_DISTANCES = ("uld", "aligned")


def cross_tokenizer_divergence(distance: str, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                               student_rows: torch.Tensor, teacher_rows: torch.Tensor, *, student_vocab_size: int,
                               teacher_vocab_size: int, vocabulary_map: tuple[torch.Tensor, torch.Tensor] | None = None,
                               kd_loss: str = "forward_kl", reduction: str = "rows", temperature: float = 1.0,
                               chunk_size: int = 1024, **params: float) -> torch.Tensor:
    """A cross-tokenizer distance between teacher and student, summed over paired positions.

    student_logits [B, T_s, V_s'], teacher_logits [B, T_t, V_t'] (any float dtypes); student_rows
    and teacher_rows [N]: flat indices into B·T_s and B·T_t of the paired positions (pair k
    compares the student's distribution at student_rows[k] with the teacher's at teacher_rows[k];
    both in the same sequence, each student row at most once). q = softmax(student_logits /
    temperature) over the first student_vocab_size columns, p likewise over teacher_vocab_size.
    distance "uld": `universal_logit_distance`; "aligned": `aligned_vocabulary_distance` with
    `vocabulary_map` = (student ids [M], teacher ids [M]) and D = `kd_loss` with `params`.
    reduction "rows" → [B] (each sequence's sum), "sum" / "mean" → scalar (mean over the N pairs).

    Chunked with the gradient computed in the forward pass, as `divergence`; the teacher gets no
    gradient. Math in at least fp32.
    """
    if distance not in CROSS_TOKENIZER_DISTANCES:
        raise ValueError(f"unknown cross-tokenizer distance {distance!r}; choose from {CROSS_TOKENIZER_DISTANCES}")
    if distance == "uld":
        if params or kd_loss != "forward_kl" or vocabulary_map is not None:
            raise ValueError("ULD compares sorted probabilities: it takes no divergence, parameters or vocabulary map")
        _per_token_divergence("forward_kl", {}, reduction, temperature, chunk_size)  # the shared checks

        def per_token(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
            return universal_logit_distance(log_q, log_p)
    else:
        if vocabulary_map is None:
            raise ValueError("the aligned distance needs the vocabulary map (student ids [M], teacher ids [M])")
        _per_token_divergence(kd_loss, params, reduction, temperature, chunk_size)
        student_ids, teacher_ids = (ids.to(student_logits.device, torch.long) for ids in vocabulary_map)
        if len(student_ids) and (int(student_ids.max()) >= student_vocab_size or int(teacher_ids.max()) >= teacher_vocab_size):
            raise ValueError("the vocabulary map holds ids outside the vocabulary sizes given")

        def per_token(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
            return aligned_vocabulary_distance(log_q, log_p, student_ids, teacher_ids, kd_loss, **params)
    if (student_logits.dim() != 3 or teacher_logits.dim() != 3 or teacher_logits.shape[0] != student_logits.shape[0]
            or student_rows.shape != teacher_rows.shape or student_rows.dim() != 1):
        raise ValueError(f"expected student [B, T_s, V_s], teacher [B, T_t, V_t] and two [N] row tensors; got "
                         f"{tuple(student_logits.shape)}, {tuple(teacher_logits.shape)}, {tuple(student_rows.shape)}, "
                         f"{tuple(teacher_rows.shape)}")
    (batch, student_length, student_columns), teacher_length = student_logits.shape, teacher_logits.shape[1]
    if not (1 <= student_vocab_size <= student_columns and 1 <= teacher_vocab_size <= teacher_logits.shape[-1]):
        raise ValueError(f"vocabulary sizes {student_vocab_size} (student) and {teacher_vocab_size} (teacher) must "
                         f"fit the logits' {student_columns} and {teacher_logits.shape[-1]} columns")
    student_rows, teacher_rows = student_rows.to(student_logits.device), teacher_rows.to(student_logits.device)
    if not torch.equal(student_rows // student_length, teacher_rows // teacher_length):
        raise ValueError("each pair must take its student and teacher positions from the same sequence")
    if student_rows.unique().numel() != student_rows.numel():
        raise ValueError("a student position may be paired at most once")
    teacher_row_of = torch.full((batch * student_length,), -1, dtype=torch.long, device=student_logits.device)
    teacher_row_of[student_rows] = teacher_rows.long()
    dtype = torch.promote_types(torch.promote_types(student_logits.dtype, teacher_logits.dtype), torch.float32)
    flat_teacher = teacher_logits.flatten(0, 1)

    def teacher(rows: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = _scaled_logits(flat_teacher, teacher_row_of[rows], teacher_vocab_size, temperature, dtype)
        return log_p.log_softmax(-1), log_q

    return _reduce_chunked(student_logits, teacher, student_rows.long(), per_token, student_vocab_size, temperature,
                           chunk_size, dtype, reduction)
