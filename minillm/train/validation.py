"""Sampled validation during training, alike for every method: the student alone generates for
the first `eval_gen_num` validation prompts (the evaluation protocol's sampling), scored by
Rouge-L / exact match / accuracy against the gold responses; with a teacher, it also scores the
samples: reverse-KL estimate, per-token reward, mean response length (on-policy methods)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from minillm.eval.evaluation import generate_texts, score_generations
from minillm.eval.generation import SamplingConfig
from minillm.train.setup import TrainingSetup


@dataclass(frozen=True)
class ValidationConfig:
    sampling: SamplingConfig
    eval_gen_num: int  # prompts; 0 = all, -1 = no generation
    seed: int
    max_prompt_length: int
    batch_tokens: int

    def __post_init__(self):
        if self.eval_gen_num < -1 or self.batch_tokens <= 0 or self.max_prompt_length <= 0:
            raise ValueError(f"need eval_gen_num ≥ -1 (got {self.eval_gen_num}), batch_tokens > 0 "
                             f"(got {self.batch_tokens}) and max_prompt_length > 0 (got {self.max_prompt_length})")


def sampled_validation(setup: TrainingSetup, config: ValidationConfig,
                       teacher: torch.nn.Module | None = None) -> dict[str, float]:
    valid = setup.valid_set
    count = len(valid) if config.eval_gen_num == 0 else min(config.eval_gen_num, len(valid))
    if config.eval_gen_num < 0 or count == 0:
        return {}
    out = generate_texts(setup.engine.module, setup.tokenizer, [valid.prompt(i) for i in range(count)],
                         config.sampling, seed=config.seed, dist_info=setup.dist,
                         max_prompt_length=config.max_prompt_length, batch_tokens=config.batch_tokens,
                         sync_ranks=setup.sync_ranks, logger=setup.log, desc="validate", teacher=teacher)
    metrics = score_generations(out.texts, valid.references()[:count], valid.answers()[:count])
    if teacher is not None:
        log_ratio = np.asarray(out.teacher_logprobs) - np.asarray(out.student_logprobs)
        lengths = np.asarray(out.lengths, dtype=np.float64)
        metrics.update({"rev_kl": float(-log_ratio.mean()), "reward": float(log_ratio.sum() / max(lengths.sum(), 1.0)),
                        "response_len": float(lengths.mean())})
    return metrics
