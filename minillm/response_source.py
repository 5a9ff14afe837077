"""Where the responses of a token-level step come from: the data's own (gold, or written once
offline by a teacher), or, for GKD (Agarwal et al., ICLR 2024; TRL's GKDTrainer), responses
generated at that step for the same prompts. In a fraction λ of the optimizer steps the student
samples them (on-policy); with off_policy="teacher" the other steps use the teacher's samples
(GKD's mixing with sequence-level KD) instead of the data's. Which kind a step gets is drawn from
(seed, step), so every rank agrees and a resumed run draws the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from minillm.data.datasets import Example, collate_prompts
from minillm.engine import DistInfo
from minillm.generation import SamplingConfig, sample

DATA, STUDENT, TEACHER = "data", "student", "teacher"


@dataclass(frozen=True)
class GKDConfig:
    student_fraction: float  # λ: the chance that a step trains on the student's own samples
    off_policy: str  # the other steps: DATA (the data's responses) or TEACHER (the teacher's samples)
    sampling: SamplingConfig
    max_prompt_length: int
    seed: int

    def __post_init__(self):
        if not 0 <= self.student_fraction <= 1:
            raise ValueError(f"the student-data fraction λ must be in [0, 1], got {self.student_fraction}")
        if self.off_policy not in (DATA, TEACHER):
            raise ValueError(f"off_policy must be {DATA!r} or {TEACHER!r}, got {self.off_policy!r}")


class GeneratedResponses:
    def __init__(self, config: GKDConfig, teacher: torch.nn.Module, dist: DistInfo, eos_token_id: int,
                 pad_token_id: int, sync_ranks: bool):
        self.config, self.teacher, self.dist = config, teacher, dist
        self.eos_token_id, self.pad_token_id, self.sync_ranks = eos_token_id, pad_token_id, sync_ranks

    def source(self, step: int) -> str:
        """DATA, STUDENT or TEACHER for optimizer step `step` (0-based)."""
        if np.random.default_rng([self.config.seed, step]).random() < self.config.student_fraction:
            return STUDENT
        return self.config.off_policy

    @torch.no_grad()
    def generate(self, source: str, student: torch.nn.Module, examples: list[Example], step: int,
                 micro_step: int) -> list[Example]:
        """`examples` with their responses replaced by `source`'s samples (prompts kept, as
        generation sees them: their last max_prompt_length tokens)."""
        model = student if source == STUDENT else self.teacher
        prompts = [ex.tokens[:ex.prompt_len] for ex in examples]
        batch = collate_prompts(prompts, self.pad_token_id, self.config.max_prompt_length)
        generator = torch.Generator(device=self.dist.device).manual_seed(
            ((self.config.seed * 1_000_003 + step) * 1009 + micro_step) * 1009 + self.dist.rank)
        training = model.training
        model.eval()  # no dropout while sampling, as in MiniLLM's collection
        out = sample(model, batch["input_ids"].to(self.dist.device), batch["attention_mask"].to(self.dist.device),
                     self.config.sampling, self.eos_token_id, self.pad_token_id, generator=generator,
                     sync_ranks=self.sync_ranks)
        model.train(training)
        responses, lengths = out.tokens.cpu().numpy(), out.lengths.cpu().tolist()
        replaced = []
        for prompt, response, length in zip(prompts, responses, lengths):
            kept = np.asarray(prompt[-self.config.max_prompt_length:], dtype=np.int64)
            replaced.append(Example(np.concatenate([kept, response[:length]]), len(kept)))
        return replaced
