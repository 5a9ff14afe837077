"""MiniLLM's pretraining term as a component any method can add to its optimizer step: each step
also trains on one GLOBAL batch of corpus chunks, with a token-level objective (MiniLLM:
(1 − kd_ratio)·CE + kd_ratio·KD to the teacher; its control arms: CE alone), as a token mean
over that global batch with weight 1. The chunks of step k are the same for every method with
the same seed and batch, so an on-policy run and its control arm train on identical corpus tokens.
"""
from __future__ import annotations

import torch

from minillm.data.datasets import GlobalBatchSampler, TokenDataset, collate_sft
from minillm.distributed import DistInfo, all_reduce_sum
from minillm.losses import IGNORE_INDEX
from minillm.train.engine import BatchPlan
from minillm.train.objectives import Objective


class PretrainingTerm:
    def __init__(self, corpus: TokenDataset, objective: Objective, global_batch: int, plan: BatchPlan,
                 dist: DistInfo, seed: int, pad_token_id: int):
        per_micro_step = dist.world_size * plan.accumulation
        if global_batch % per_micro_step:
            raise ValueError(f"--ptx-batch-size ({global_batch}) must be a multiple of ranks × accumulation steps "
                             f"({dist.world_size} × {plan.accumulation}): each micro-step takes an equal share")
        self.corpus, self.objective, self.global_batch = corpus, objective, global_batch
        self.dist, self.pad_token_id = dist, pad_token_id
        self.micro_batch = global_batch // per_micro_step
        self.sampler = GlobalBatchSampler(len(corpus), global_batch, seed)

    def batches(self, step: int) -> tuple[list[dict[str, torch.Tensor]], float]:
        """This rank's micro-batches of step `step` (one per accumulation step, on the device) and
        the supervised tokens of the whole global batch (all ranks)."""
        indices = self.sampler.micro_batches(step, self.dist.rank, self.dist.world_size, self.micro_batch)
        batches = [{k: v.to(self.dist.device) for k, v in
                    collate_sft([self.corpus.example(int(i)) for i in ids], self.pad_token_id).items()}
                   for ids in indices]
        tokens, = all_reduce_sum([sum(float((b["labels"] != IGNORE_INDEX).sum()) for b in batches)], self.dist.device)
        return batches, tokens

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], global_tokens: float,
             scale: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The term of one micro-batch: its loss sum × scale / global_tokens (scale = ranks ×
        accumulation steps, undone by DeepSpeed's averaging), and its parts as token sums
        ("pt_loss", "pt_<part>")."""
        rows, parts = self.objective(model, batch)
        return rows.sum() * (scale / max(global_tokens, 1.0)), {
            "pt_loss": rows.detach().sum(), **{f"pt_{name}": value.sum() for name, value in parts.items()}}
