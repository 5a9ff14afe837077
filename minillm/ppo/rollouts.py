"""Rollouts: collected with the teacher-mixed sampler, scored, and batched for the policy loss.

A collection holds this rank's share of the GLOBAL `num_rollouts`; it is used for `ppo_epochs`
passes of mini-batches and then discarded. Everything per token is a [N, T] tensor over the
response positions (T = max new tokens); no vocabulary-sized tensor is stored.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from minillm.data.datasets import collate_prompts
from minillm.generation import SamplingConfig, sample
from minillm.modeling import position_ids_from_mask
from minillm.ppo import losses as ppo

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


@torch.no_grad()
def collect(student: torch.nn.Module, teacher: torch.nn.Module, prompts: list[np.ndarray], *, config: SamplingConfig,
            teacher_mix: float, reward_scaling: float, reward_clip: float, gamma: float, length_norm: bool,
            eos_token_id: int, pad_token_id: int, max_prompt_length: int, batch_size: int,
            generator: torch.Generator, device: torch.device, sync_ranks: bool,
            streams: list[int] | None = None, whiten: str = "tokens") -> Rollouts:
    """Sample one response per prompt with the current policy (mixed with the teacher), then
    rewards → returns → advantages. whiten="tokens": the advantages are the returns whitened over
    the real response tokens of the whole collection on all ranks (over every task stream at
    once); whiten="reference": they are the raw returns (0 off the mask), for `whiten_minibatch`;
    whiten="none": the raw returns, used as they are (on-policy distillation).
    `streams`: each prompt's task stream, kept for the loss weights (default all 0)."""
    student.eval()  # dropout is off for the whole MiniLLM run; eval() also keeps it so here
    parts = []
    for start in range(0, len(prompts), batch_size):
        batch = collate_prompts(prompts[start:start + batch_size], pad_token_id, max_prompt_length)
        out = sample(student, batch["input_ids"].to(device), batch["attention_mask"].to(device), config,
                     eos_token_id, pad_token_id, generator=generator, sync_ranks=sync_ranks, teacher=teacher,
                     teacher_mix=teacher_mix, record_logprobs=True)
        mask = (torch.arange(config.max_new_tokens, device=device)[None, :] < out.lengths[:, None]).float()
        parts.append((out.tokens, mask, out.student_logprobs, out.teacher_logprobs))
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
                    stream_ids)


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
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["response_start"] = prompt["input_ids"].shape[1]
    return batch
