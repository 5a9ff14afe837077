"""Batch arithmetic, DeepSpeed config checks, optimizer groups and the LR schedule."""
from __future__ import annotations

import json
import math

import pytest
import torch

from minillm.train.engine import (
    build_optimizer,
    build_scheduler,
    load_deepspeed_config,
    plan_batches,
)


@pytest.mark.parametrize("world,micro_max,expected", [
    (1, 16, (16, 2)), (16, 16, (2, 1)), (2, 16, (16, 1)), (4, 3, (2, 4)), (1, 5, (4, 8))])
def test_global_batch_is_split_into_micro_batches_and_accumulation(world, micro_max, expected):
    plan = plan_batches(32, micro_max, world)
    assert (plan.micro_batch, plan.accumulation) == expected
    assert plan.micro_batch * plan.accumulation * plan.world_size == 32


def test_indivisible_global_batch_is_refused():
    with pytest.raises(ValueError, match="not divisible"):
        plan_batches(30, 4, 4)


def test_deepspeed_config_gets_the_batch_plan(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    config = load_deepspeed_config(path, plan_batches(32, 4, 2), clip_grad=1.0)
    assert (config["train_batch_size"], config["train_micro_batch_size_per_gpu"],
            config["gradient_accumulation_steps"], config["gradient_clipping"]) == (32, 4, 4, 1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed on a GPU")
def test_fp16_is_refused_on_cpu(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"fp16": {"enabled": True}}))
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        load_deepspeed_config(path, plan_batches(8, 8, 1), clip_grad=1.0)


def test_no_weight_decay_on_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    decay, no_decay = build_optimizer(model, lr=1e-3, weight_decay=0.01).param_groups
    assert decay["weight_decay"] == 0.01 and [p.shape for p in decay["params"]] == [(4, 4)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3
    assert not decay["fused"]  # the fused kernel is for parameters on a GPU only


def test_cosine_schedule_decays_to_the_floor():
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0)
    scheduler = build_scheduler(optimizer, "cosine", total_steps=10, warmup_steps=0, lr_min=1e-7)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[5] == pytest.approx(1e-7 + (1e-3 - 1e-7) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[10] == pytest.approx(1e-7)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
