"""Rollouts: collected with the teacher-mixed sampler, scored, and batched for the policy loss.

A collection holds this rank's share of the GLOBAL `num_rollouts`; it is used for `ppo_epochs`
passes of mini-batches and then discarded. Everything per token is a [N, T] tensor over the
response positions (T = max new tokens); no vocabulary-sized tensor is stored, unless the
teacher's logits are kept for the single-step term (`--teacher-logits-budget`, `KeptTeacher`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from minillm.data.datasets import collate_prompts
from minillm.eval.generation import KeepTeacherLogits, SamplingConfig, sample
from minillm.losses import top_k_with_tail
from minillm.modeling import position_ids_from_mask
from minillm.ppo import losses as ppo
from minillm.ppo.cross_tokenizer import RolloutTeacherTerms

WHITENING = ("tokens", "reference", "none")


@dataclass
class Rollouts:
    prompts: list[np.ndarray]  # N prompt token arrays
    responses: torch.Tensor  # [N, T] sampled tokens (EOS kept, pad after)
    mask: torch.Tensor  # [N, T] 1.0 on response tokens
    old_logprobs: torch.Tensor  # [N, T] log q_old(y_t): the student when sampling
    teacher_logprobs: torch.Tensor  # [N, T] log p(y_t)
    weights: torch.Tensor  # [N, T] importance weights q(y_t) / p̃(y_t) of teacher-mixed sampling
    # [N, T] length-normalised discounted returns, whitened over the collection (whiten="tokens")
    # or raw, to be whitened per mini-batch by `whiten_minibatch` (whiten="reference")
    advantages: torch.Tensor
    streams: torch.Tensor  # [N] task stream of each prompt (0 unless step-by-step)
    # The teacher's next-token distributions from sampling (`KeptTeacher.tensors`), or None
    kept_teacher: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    def state(self) -> dict:
        """Tensors and lists only, so that a resume state loads with torch.load(weights_only=True)."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["prompts"] = [torch.from_numpy(np.asarray(p, dtype=np.int64)) for p in self.prompts]
        return state

    @classmethod
    def from_state(cls, state: dict) -> Rollouts:
        return cls(**{**state, "prompts": [p.numpy() for p in state["prompts"]]})

    def statistics(self) -> dict[str, float]:
        """Per-token reward (log p − log q_old), sequence-level reverse-KL estimate, length."""
        lengths = self.mask.sum(1)
        log_ratio = (self.teacher_logprobs - self.old_logprobs) * self.mask
        return {"reward": float(log_ratio.sum() / lengths.sum().clamp(min=1)),
                "rev_kl": float(-log_ratio.sum(1).mean()),
                "response_len": float(lengths.mean())}


# Bytes per position of a top-k kept teacher: int32 ids [k] + float32 log-probs [k + 1].
def _topk_bytes(k: int) -> int:
    return 8 * k + 4


def teacher_logits_top_k(budget_mib: float, rollouts: int, new_tokens: int, vocab_size: int,
                         dtype: torch.dtype) -> int:
    """How much of the teacher a collection of `rollouts` × `new_tokens` positions keeps within
    `budget_mib`: vocab_size (the full logits, in `dtype`) when they fit, else the largest k whose
    top-k records fit. ValueError when not even k = 1 fits."""
    positions = rollouts * new_tokens
    budget = budget_mib * 2 ** 20
    if positions * vocab_size * dtype.itemsize <= budget:
        return vocab_size
    k = int((budget / positions - _topk_bytes(0)) // (_topk_bytes(1) - _topk_bytes(0)))
    if k < 1:
        raise ValueError(f"--teacher-logits-budget {budget_mib:g} MiB cannot hold even the top-1 teacher token at "
                         f"{positions} response positions ({_topk_bytes(1) * positions / 2 ** 20:.3g} MiB); raise it")
    return k


# Without --teacher-logits-budget the single-step term reuses the sampler's teacher logits when
# the full vocabulary fits in this many MiB per rank: exact up to float rounding (a decode step and
# a full forward round differently). A top-k record is an approximation, so it is never a default.
DEFAULT_TEACHER_LOGITS_MIB = 1024.0


def default_teacher_logits_budget(rollouts: int, new_tokens: int, vocab_size: int, dtype: torch.dtype) -> float:
    """The budget that applies when none is given: DEFAULT_TEACHER_LOGITS_MIB if the full logits of
    `rollouts` × `new_tokens` positions fit in it, else 0 (a teacher forward per mini-batch)."""
    fits = rollouts * new_tokens * vocab_size * dtype.itemsize <= DEFAULT_TEACHER_LOGITS_MIB * 2 ** 20
    return DEFAULT_TEACHER_LOGITS_MIB if fits else 0.0


def describe_teacher_logits_plan(budget_mib: float, rollouts: int, new_tokens: int, vocab_size: int,
                                 dtype: torch.dtype) -> str:
    """The log line that says what the single-step term will use (budget 0: a teacher forward)."""
    positions = rollouts * new_tokens
    if budget_mib == 0:
        size = positions * vocab_size * dtype.itemsize / 2 ** 20
        return (f"single-step term: a teacher forward per mini-batch (the full logits of {positions} response "
                f"positions would take {size:.1f} MiB per rank; --teacher-logits-budget 0, or unset and above "
                f"{DEFAULT_TEACHER_LOGITS_MIB:g} MiB)")
    k = teacher_logits_top_k(budget_mib, rollouts, new_tokens, vocab_size, dtype)
    if k >= vocab_size:
        size = positions * vocab_size * dtype.itemsize / 2 ** 20
        return (f"single-step term: the sampler's teacher logits, full vocabulary ({size:.1f} MiB per rank for "
                f"{positions} response positions; --teacher-logits-budget {budget_mib:g} MiB); no teacher forward")
    return (f"single-step term: the sampler's teacher as top-{k} tokens + tail ({_topk_bytes(k) * positions / 2 ** 20:.1f} "
            f"MiB per rank): the full vocabulary would exceed --teacher-logits-budget {budget_mib:g} MiB; this "
            f"approximates the exact reverse KL (minillm.losses.topk_divergence); no teacher forward")


class KeptTeacher:
    """The teacher's next-token distribution at every response position of a collection, filled
    by the sampler (`record`): full logits [N, T, V] in the teacher's dtype when k ≥ V, else
    top-k ids [N, T, k] (int32) and bucket log-probs [N, T, k + 1] (`top_k_with_tail`)."""

    def __init__(self, rows: int, steps: int, vocab_size: int, k: int, dtype: torch.dtype, device: torch.device):
        self.vocab_size, self.k, self.device = vocab_size, k, device
        if k >= vocab_size:
            self.tensors = {"teacher_logits": torch.zeros(rows, steps, vocab_size, dtype=dtype, device=device)}
        else:
            self.tensors = {"teacher_ids": torch.zeros(rows, steps, k, dtype=torch.int32, device=device),
                            "teacher_log_probs": torch.zeros(rows, steps, k + 1, device=device)}

    def recorder(self, first_row: int) -> KeepTeacherLogits:
        """`sample`'s keep_teacher_logits for the sampling batch that starts at row `first_row`."""
        def record(rows: torch.Tensor, steps: slice, logits: torch.Tensor) -> None:
            logits = logits[..., :self.vocab_size]
            rows = (rows + first_row).to(self.device)
            if "teacher_logits" in self.tensors:
                self.tensors["teacher_logits"][rows, steps] = logits.to(self.device)
            else:
                ids, log_probs = top_k_with_tail(logits.float().log_softmax(-1), self.k)
                self.tensors["teacher_ids"][rows, steps] = ids.int().to(self.device)
                self.tensors["teacher_log_probs"][rows, steps] = log_probs.to(self.device)
        return record


@torch.no_grad()
def collect(student: torch.nn.Module, teacher: torch.nn.Module, prompts: list[np.ndarray], *, config: SamplingConfig,
            teacher_mix: float, reward_scaling: float, reward_clip: float, gamma: float, length_norm: bool,
            eos_token_id: int, pad_token_id: int, max_prompt_length: int, batch_size: int,
            generator: torch.Generator, device: torch.device, sync_ranks: bool,
            streams: list[int] | None = None, whiten: str = "tokens", teacher_logits_budget_mib: float = 0.0,
            vocab_size: int | None = None,
            teacher_terms: Callable[[list[np.ndarray], torch.Tensor, torch.Tensor], RolloutTeacherTerms] | None = None
            ) -> Rollouts:
    """Sample one response per prompt with the current policy (mixed with the teacher), then
    rewards → returns → advantages. whiten="tokens": the advantages are the returns whitened over
    the real response tokens of the whole collection on all ranks (over every task stream at
    once); whiten="reference": they are the raw returns (0 off the mask), for `whiten_minibatch`;
    whiten="none": the raw returns, used as they are (on-policy distillation).
    `streams`: each prompt's task stream, kept for the loss weights (default all 0).
    teacher_logits_budget_mib > 0: also keep the teacher's distributions over the first
    `vocab_size` columns at every response position, as `teacher_logits_top_k` decides (on `device`).
    teacher_terms: a teacher with ANOTHER tokenizer (minillm.ppo.cross_tokenizer): the student samples
    alone and `teacher_terms(prompts, tokens, lengths)` scores the finished responses; its log-probs
    replace the teacher's, and positions it does not score leave the mask (needs teacher_mix 0 and
    no kept logits)."""
    if teacher_terms is not None and (teacher_mix > 0 or teacher_logits_budget_mib > 0):
        raise ValueError("a teacher with another tokenizer cannot mix into sampling or keep its logits")
    student.eval()  # dropout is off for the whole MiniLLM run; eval() also keeps it so here
    kept = None
    if teacher_logits_budget_mib > 0:
        vocab_size = vocab_size or teacher.get_output_embeddings().weight.shape[0]
        dtype = next(teacher.parameters()).dtype
        kept = KeptTeacher(len(prompts), config.max_new_tokens, vocab_size,
                           teacher_logits_top_k(teacher_logits_budget_mib, len(prompts), config.max_new_tokens,
                                                vocab_size, dtype), dtype, device)
    parts = []
    for start in range(0, len(prompts), batch_size):
        batch = collate_prompts(prompts[start:start + batch_size], pad_token_id, max_prompt_length)
        out = sample(student, batch["input_ids"].to(device), batch["attention_mask"].to(device), config,
                     eos_token_id, pad_token_id, generator=generator, sync_ranks=sync_ranks,
                     teacher=teacher if teacher_terms is None else None, teacher_mix=teacher_mix, record_logprobs=True,
                     keep_teacher_logits=kept.recorder(start) if kept is not None else None)
        mask = (torch.arange(config.max_new_tokens, device=device)[None, :] < out.lengths[:, None]).float()
        teacher_logprobs = out.teacher_logprobs
        if teacher_terms is not None:
            terms = teacher_terms(prompts[start:start + batch_size], out.tokens.cpu(), out.lengths.cpu())
            teacher_logprobs, mask = terms.teacher_logprobs.to(device), mask * terms.scored.to(device)
        parts.append((out.tokens, mask, out.student_logprobs, teacher_logprobs))
    student.train()
    responses, mask, old, teacher_lp = (torch.cat(x).cpu() for x in zip(*parts))
    weights = ppo.importance_weights(old, ppo.mixed_logprob(old, teacher_lp, teacher_mix))
    returns = ppo.discounted_returns(ppo.rewards(teacher_lp, old, mask, reward_scaling, reward_clip), mask,
                                     gamma, length_norm)
    if whiten not in WHITENING:
        raise ValueError(f"whiten must be one of {WHITENING}, got {whiten!r}")
    advantages = ppo.whiten(returns.to(device), mask.to(device)).cpu() if whiten == "tokens" else returns
    stream_ids = torch.as_tensor(streams if streams is not None else [0] * len(prompts), dtype=torch.long)
    return Rollouts([np.asarray(p) for p in prompts], responses, mask, old, teacher_lp, weights * mask, advantages,
                    stream_ids, kept.tensors if kept is not None else None)


def whiten_minibatch(rollouts: Rollouts, rows: np.ndarray, device: torch.device) -> Rollouts:
    """`rollouts` (collected with whiten="reference") with the advantages of `rows`, this rank's
    share of one optimizer step's mini-batch, whitened as LMOps' MiniLLM does; other rows as they are.

    LMOps (minillm/minillm/losses.py, `Loss._get_advantages_and_returns`, called from `ppo_loss`
    for every batch of the rollout loader) whitens with `utils.whiten` → `get_global_statistics`:
    mean and biased variance over EVERY element of the [batch, response] tensor summed over all
    ranks, the padding slots' zero returns included. Its response slots are the full
    max_length − max_prompt_length (generate() pads to max_length, prompts are padded to
    max_prompt_length), as are ours: [N, max_new_tokens]. Its loader batch is one rank's share of
    the optimizer step's mini-batch at its recipe's gradient accumulation of 1; here the whole
    step's mini-batch is one whitening group whatever the accumulation, so that
    --micro-batch-size stays free to change. Collective: every rank calls it at every step.
    """
    index = torch.as_tensor(rows)
    returns = rollouts.advantages[index].to(device)
    advantages = rollouts.advantages.clone()
    advantages[index] = ppo.whiten(returns, torch.ones_like(returns)).cpu()
    return replace(rollouts, advantages=advantages)


def collate_rollouts(rollouts: Rollouts, indices: np.ndarray, pad_token_id: int, max_prompt_length: int,
                     device: torch.device) -> dict[str, torch.Tensor]:
    """[left-padded prompt | response] sequences for a forward pass, and the per-token tensors
    cut to the longest response. `response_start` = P: logits[:, P-1 : P-1+T] predict the response."""
    prompt = collate_prompts([rollouts.prompts[i] for i in indices], pad_token_id, max_prompt_length)
    index = torch.as_tensor(indices)
    mask = rollouts.mask[index]
    width = max(int(mask.sum(1).max()), 1)
    mask = mask[:, :width]
    input_ids = torch.cat([prompt["input_ids"], rollouts.responses[index, :width]], 1)
    attention_mask = torch.cat([prompt["attention_mask"], mask.long()], 1)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask,
             "position_ids": position_ids_from_mask(attention_mask), "mask": mask,
             "responses": rollouts.responses[index, :width]}
    for name in ("old_logprobs", "weights", "advantages"):
        batch[name] = getattr(rollouts, name)[index, :width]
    batch["stream"] = rollouts.streams[index]
    for name, values in (rollouts.kept_teacher or {}).items():
        batch[name] = values[index.to(values.device), :width]
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["response_start"] = prompt["input_ids"].shape[1]
    return batch


def scored_logprobs(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] at the positions of `mask`, 0 elsewhere: logits [B, T, V], tokens
    and mask [B, T] → [B, T] float32. The log-softmax runs over the masked positions only (a
    mini-batch's responses end at different lengths); each position's value is what the full
    log-softmax gives there."""
    valid = mask.bool()
    picked = logits[valid].float().log_softmax(-1).gather(1, tokens[valid][:, None]).squeeze(1)
    return torch.zeros(mask.shape, dtype=picked.dtype, device=picked.device).masked_scatter(valid, picked)


def single_step_term(student_logits: torch.Tensor, batch: dict[str, torch.Tensor],
                     teacher_forward: Callable[[], torch.Tensor], vocab_size: int,
                     row_weights: torch.Tensor) -> torch.Tensor:
    """The single-step reverse KL of a mini-batch of `collate_rollouts`: against the teacher the
    sampler kept (full logits, or top-k + tail) when the batch has it, else against
    `teacher_forward()` (the teacher's logits over the response positions, [B, T, V])."""
    mask = batch["mask"]
    if "teacher_ids" in batch:
        return ppo.single_step_regulariser_topk(student_logits, batch["teacher_ids"], batch["teacher_log_probs"],
                                                mask, vocab_size, row_weights)
    if "teacher_logits" in batch:
        return ppo.single_step_regulariser(student_logits, batch["teacher_logits"], mask, vocab_size, row_weights)
    with torch.no_grad():
        teacher_logits = teacher_forward()
    return ppo.single_step_regulariser(student_logits, teacher_logits, mask, vocab_size, row_weights)
