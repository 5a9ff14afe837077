"""Seeding, the global-batch arithmetic, optimizer/scheduler and the DeepSpeed engine.

Users state GLOBAL quantities; per-rank micro-batch and accumulation are derived here from the
world size, so a run on 1, 2 or 16 devices follows the same algorithm.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minillm.distributed import bound_collective_waits, skip_deepspeed_shm_op
from minillm.train.guard import SkippingAdamW


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's GLOBAL batch is split: world_size × accumulation × micro_batch."""
    global_batch: int
    world_size: int
    micro_batch: int
    accumulation: int

    @property
    def per_rank(self) -> int:
        return self.micro_batch * self.accumulation

    def describe(self) -> str:
        return (f"global batch {self.global_batch} = {self.world_size} rank(s) x "
                f"{self.accumulation} accumulation step(s) x micro-batch {self.micro_batch}")


def plan_batches(global_batch: int, max_micro_batch: int, world_size: int) -> BatchPlan:
    """Largest micro-batch ≤ max_micro_batch that divides the per-rank share of the global batch."""
    if global_batch % world_size:
        raise ValueError(f"global batch size {global_batch} is not divisible by the number of "
                         f"ranks {world_size}; choose a multiple of {world_size}")
    per_rank = global_batch // world_size
    micro = max(d for d in range(1, min(max_micro_batch, per_rank) + 1) if per_rank % d == 0)
    return BatchPlan(global_batch, world_size, micro, per_rank // micro)


def load_deepspeed_config(path: str | Path, plan: BatchPlan, clip_grad: float) -> dict:
    """Read a ZeRO/precision config and fill in the batch arithmetic; refuse what cannot run."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read DeepSpeed config {path}: {err}") from err
    if config.get("fp16", {}).get("enabled") and not torch.cuda.is_available():
        raise ValueError(f"{path}: fp16 needs a GPU (DeepSpeed refuses fp16 on CPU); "
                         "use configs/deepspeed/zero1_fp32.json or zero1_bf16.json on CPU")
    config.update(
        train_batch_size=plan.global_batch,
        train_micro_batch_size_per_gpu=plan.micro_batch,
        gradient_accumulation_steps=plan.accumulation,
        gradient_clipping=clip_grad,
        # Our optimizer is torch's AdamW (no JIT-compiled op); DeepSpeed needs this to wrap it.
        zero_allow_untested_optimizer=True,
    )
    config.setdefault("steps_per_print", 10 ** 9)  # we log ourselves
    return config


def precision_dtype(ds_config: dict) -> torch.dtype:
    if ds_config.get("bf16", {}).get("enabled"):
        return torch.bfloat16
    if ds_config.get("fp16", {}).get("enabled"):
        return torch.float16
    return torch.float32


def zero_stage(ds_config: dict) -> int:
    return int(ds_config.get("zero_optimization", {}).get("stage", 0))


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """AdamW without decay on biases and normalisation weights (every parameter with ndim < 2),
    fused on a GPU; it skips a step with a non-finite gradient (minillm.train.guard.SkippingAdamW)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (one launch for every parameter) where all of them are on a GPU; elsewhere
    # (CPU) torch's default implementation.
    on_gpu = bool(decay + no_decay) and all(param.is_cuda for param in decay + no_decay)
    return SkippingAdamW(groups, lr=lr, betas=betas, fused=True if on_gpu else None)


def build_scheduler(optimizer: torch.optim.Optimizer, kind: str, total_steps: int,
                    warmup_steps: int, lr_min: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to `lr_min` at `total_steps`, or constant."""
    base_lr = optimizer.param_groups[0]["lr"]
    floor = lr_min / base_lr if base_lr > 0 else 0.0

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    if kind not in ("cosine", "constant"):
        raise ValueError(f"unknown lr scheduler {kind!r}; choose cosine or constant")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def initialize_engine(model: torch.nn.Module, optimizer, scheduler, ds_config: dict):
    import deepspeed

    skip_deepspeed_shm_op()  # deepspeed.initialize creates the backend itself where none exists yet
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                           lr_scheduler=scheduler, config=ds_config)
    bound_collective_waits()  # the groups deepspeed.initialize made, too
    return engine


def per_stream_sums(stream: torch.Tensor, rows: torch.Tensor, streams: int) -> list[float]:
    """Σ of per-sequence values `rows` [B] by task stream (`stream` [B]) → `streams` floats."""
    totals = torch.zeros(streams, dtype=torch.float64).index_add_(0, stream.cpu(), rows.detach().double().cpu())
    return totals.tolist()
