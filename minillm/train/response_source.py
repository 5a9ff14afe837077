"""Where the responses of a token-level step come from: the data's own (gold, or written once
offline by a teacher), or responses generated during training for the same prompts.

- GKD (Agarwal et al., ICLR 2024; TRL's GKDTrainer): in a fraction λ of the optimizer steps the
  student samples them (on-policy); with off_policy="teacher" the other steps use the teacher's
  samples (GKD's mixing with sequence-level KD) instead of the data's.
- DistiLLM's adaptive student-generated outputs (Ko et al., ICML 2024; its finetune.py): a
  probability p of student outputs starts at `init_probability` (0) and rises by 0.1 (at most 1)
  at each validation whose loss is ≥ the loss at the last rise (or the first validation) + loss_eps
  (0.1). Per step, u ~ U(0, 1): u < p·(1 − step/total), or u < p while the replay buffer is not
  full → fresh student samples, also stored in the buffer (`capacity` sequences per rank, the
  oldest dropped first); else u < p → a batch drawn from the buffer; else the data.

A step's kind is drawn once per optimizer step (TRL and DistiLLM draw per micro-batch) from
(seed, step), and DistiLLM's "buffer full" is agreed over ranks, so all ranks agree on a step's
kind and a resumed run draws the same; the state a resume needs (p, the buffer) is in `state()`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from minillm.data.datasets import Example, collate_prompts
from minillm.distributed import DistInfo, all_reduce_sum
from minillm.eval.generation import SamplingConfig, sample

DATA, STUDENT, TEACHER, REPLAY = "data", "student", "teacher", "replay"
Row = tuple[int, Example]  # (task stream, item)


@dataclass(frozen=True)
class GKDConfig:
    student_fraction: float  # λ: the chance that a step trains on the student's own samples
    off_policy: str  # the other steps: DATA (the data's responses) or TEACHER (the teacher's samples)

    def __post_init__(self):
        if not 0 <= self.student_fraction <= 1:
            raise ValueError(f"the student-data fraction λ must be in [0, 1], got {self.student_fraction}")
        if self.off_policy not in (DATA, TEACHER):
            raise ValueError(f"off_policy must be {DATA!r} or {TEACHER!r}, got {self.off_policy!r}")


@dataclass(frozen=True)
class AdaptiveSGOConfig:
    """DistiLLM's defaults (its scripts/gpt2/distillm/*.sh): init 0, loss_eps 0.1, capacity 1000."""
    total_steps: int
    init_probability: float = 0.0
    loss_eps: float = 0.1
    capacity: int = 1000  # sequences per rank, as DistiLLM's per-process buffer
    probability_step: float = 0.1  # DistiLLM's fixed rise

    def __post_init__(self):
        if self.total_steps <= 0 or self.capacity <= 0 or not 0 <= self.init_probability <= 1:
            raise ValueError(f"need total_steps > 0 ({self.total_steps}), capacity > 0 ({self.capacity}) and "
                             f"0 ≤ init_probability ≤ 1 ({self.init_probability})")


class ResponseSampler:
    """Samples responses for the prompts of a micro-batch's rows (the prompts kept as generation
    sees them: their last max_prompt_length tokens)."""

    def __init__(self, sampling: SamplingConfig, max_prompt_length: int, seed: int, dist: DistInfo,
                 eos_token_id: int, pad_token_id: int, sync_ranks: bool):
        self.sampling, self.max_prompt_length, self.seed, self.dist = sampling, max_prompt_length, seed, dist
        self.eos_token_id, self.pad_token_id, self.sync_ranks = eos_token_id, pad_token_id, sync_ranks

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, rows: list[Row], step: int, micro_step: int) -> list[Row]:
        prompts = [example.tokens[:example.prompt_len] for _, example in rows]
        batch = collate_prompts(prompts, self.pad_token_id, self.max_prompt_length)
        generator = torch.Generator(device=self.dist.device).manual_seed(
            ((self.seed * 1_000_003 + step) * 1009 + micro_step) * 1009 + self.dist.rank)
        training = model.training
        model.eval()  # no dropout while sampling, as in MiniLLM's collection
        out = sample(model, batch["input_ids"].to(self.dist.device), batch["attention_mask"].to(self.dist.device),
                     self.sampling, self.eos_token_id, self.pad_token_id, generator=generator,
                     sync_ranks=self.sync_ranks)
        model.train(training)
        responses, lengths = out.tokens.cpu().numpy(), out.lengths.cpu().tolist()
        replaced = []
        for (stream, _), prompt, response, length in zip(rows, prompts, responses, lengths):
            kept = np.asarray(prompt[-self.max_prompt_length:], dtype=np.int64)
            replaced.append((stream, Example(np.concatenate([kept, response[:length]]), len(kept))))
        return replaced


class GKDResponses:
    needs_initial_validation = False

    def __init__(self, config: GKDConfig, sampler: ResponseSampler, teacher: torch.nn.Module):
        self.config, self.sampler, self.teacher = config, sampler, teacher

    def describe(self) -> str:
        return (f"GKD: responses sampled by the student in a fraction {self.config.student_fraction:g} of the "
                f"steps, else the {self.config.off_policy}'s")

    def kind(self, step: int) -> str:
        """DATA, STUDENT or TEACHER for optimizer step `step` (0-based)."""
        if np.random.default_rng([self.sampler.seed, step]).random() < self.config.student_fraction:
            return STUDENT
        return self.config.off_policy

    def rows(self, kind: str, student: torch.nn.Module, rows: list[Row], step: int, micro_step: int) -> list[Row]:
        return self.sampler(student if kind == STUDENT else self.teacher, rows, step, micro_step)

    def after_validation(self, valid_loss: float) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}

    def state(self) -> tuple[dict, dict]:
        return {}, {}

    def restore(self, shared: dict, own: dict) -> None:
        pass


class AdaptiveStudentOutputs:
    needs_initial_validation = True  # the first validation loss is the reference of the first rise

    def __init__(self, config: AdaptiveSGOConfig, sampler: ResponseSampler):
        self.config, self.sampler = config, sampler
        self.probability = config.init_probability
        self.reference_loss: float | None = None
        self.buffer: deque[Row] = deque(maxlen=config.capacity)

    def describe(self) -> str:
        return (f"DistiLLM adaptive student outputs: probability {self.probability:g} now, +{self.config.probability_step:g} "
                f"when the validation loss rises by ≥ {self.config.loss_eps:g}; replay buffer of "
                f"{self.config.capacity} sequences per rank")

    def kind(self, step: int) -> str:
        """Collective: every rank calls it at every step (buffers may fill unevenly when items bring
        one or two task rows, and ranks must agree on whether a step samples)."""
        draw = np.random.default_rng([self.sampler.seed, step]).random()
        fresh = self.probability * (1 - step / self.config.total_steps)
        not_full, = all_reduce_sum([float(len(self.buffer) < self.config.capacity)], self.sampler.dist.device)
        if draw < fresh or (draw < self.probability and not_full > 0):
            return STUDENT
        return REPLAY if draw < self.probability else DATA

    def rows(self, kind: str, student: torch.nn.Module, rows: list[Row], step: int, micro_step: int) -> list[Row]:
        if kind == STUDENT:
            generated = self.sampler(student, rows, step, micro_step)
            self.buffer.extend(generated)
            return generated
        rng = np.random.default_rng([self.sampler.seed, step, micro_step, self.sampler.dist.rank])
        picks = rng.choice(len(self.buffer), size=len(rows), replace=len(self.buffer) < len(rows))
        return [self.buffer[int(i)] for i in picks]

    def after_validation(self, valid_loss: float) -> None:
        if self.reference_loss is None:
            self.reference_loss = valid_loss
        elif valid_loss >= self.reference_loss + self.config.loss_eps:
            self.probability = min(1.0, self.probability + self.config.probability_step)
            self.reference_loss = valid_loss

    def metrics(self) -> dict[str, float]:
        """Logged at each validation: p after this validation's update, and the replay buffer's
        sequences over all ranks. Collective."""
        buffered, = all_reduce_sum([float(len(self.buffer))], self.sampler.dist.device)
        return {"sgo_probability": self.probability, "replay_buffer": buffered}

    def state(self) -> tuple[dict, dict]:
        own = {"streams": [stream for stream, _ in self.buffer],
               "tokens": [torch.from_numpy(example.tokens) for _, example in self.buffer],
               "prompt_lengths": [example.prompt_len for _, example in self.buffer]}
        return {"probability": self.probability, "reference_loss": self.reference_loss}, {"replay_buffer": own}

    def restore(self, shared: dict, own: dict) -> None:
        self.probability, self.reference_loss = shared["probability"], shared["reference_loss"]
        saved = own["replay_buffer"]
        self.buffer.clear()
        self.buffer.extend((stream, Example(tokens.numpy(), prompt_len))
                           for stream, tokens, prompt_len in zip(saved["streams"], saved["tokens"],
                                                                 saved["prompt_lengths"]))
