"""train_sft.py end to end: it learns, it is launch-invariant, it resumes exactly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from world import MAX_LENGTH, MAX_PROMPT_LENGTH, run_entrypoint

pytestmark = pytest.mark.slow


def sft_args(world, save: Path, *extra: str) -> list[str]:
    return ["train_sft.py", "--model-path", str(world.student), "--data-dir", str(world.processed),
            "--save", str(save), "--max-length", str(MAX_LENGTH), "--max-prompt-length", str(MAX_PROMPT_LENGTH),
            "--max-new-tokens", "16", "--eval-gen-num", "8", "--batch-size", "8", "--micro-batch-size", "4",
            "--lr", "2e-3", "--log-interval", "1", "--deepspeed-config", "configs/deepspeed/zero1_fp32.json",
            *extra]


def read_log(save: Path) -> tuple[list[dict], list[dict]]:
    records = [json.loads(line) for line in open(save / "log.jsonl")]
    return [r for r in records if "event" not in r], [r for r in records if r.get("event") == "eval"]


def test_sft_learns_and_writes_loadable_checkpoints(world, tmp_path):
    save = tmp_path / "sft"
    run_entrypoint(sft_args(world, save, "--total-steps", "30", "--eval-interval", "15"))
    steps, evals = read_log(save)
    assert [r["step"] for r in steps] == list(range(1, 31))
    first, last = sum(r["loss"] for r in steps[:3]) / 3, sum(r["loss"] for r in steps[-3:]) / 3
    assert last < first - 1.0, (first, last)
    assert evals[1]["valid_loss"] < evals[0]["valid_loss"]
    assert {"rougeL", "exact_match", "valid_loss", "epoch"} <= set(evals[0])
    best = json.loads((save / "best.json").read_text())
    assert set(best) == {"rougeL", "valid_loss"}
    assert best["valid_loss"]["step"] == 30
    model = AutoModelForCausalLM.from_pretrained(save / best["valid_loss"]["path"])
    assert model.config.vocab_size == AutoModelForCausalLM.from_pretrained(world.student).config.vocab_size
    final = json.loads((save / "final.json").read_text())
    assert final["steps"] == 30 and final["tokens"] > 0
    assert final["deepspeed_skipped_steps"] == final["skipped_steps"] == 0 and final["peak_memory_mib"] > 0
    assert "config:" in (save / "log.txt").read_text()


def test_two_ranks_follow_the_same_trajectory_as_one(world, tmp_path):
    """Same GLOBAL batch on 1 rank (micro 4 x 2 accumulation) and on 2 DeepSpeed ranks:
    identical batches and token-mean gradients, so identical losses (dropout off)."""
    common = ("--total-steps", "6", "--eval-interval", "6", "--dropout", "0", "--eval-gen-num", "-1")
    run_entrypoint(sft_args(world, tmp_path / "one", *common))
    run_entrypoint(sft_args(world, tmp_path / "two", *common), ranks=2)
    one, _ = read_log(tmp_path / "one")
    two, _ = read_log(tmp_path / "two")
    assert len(one) == len(two) == 6
    for a, b in zip(one, two):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["tokens"] == b["tokens"]
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["world_size"] == 2


def test_interrupted_and_resumed_run_ends_where_an_uninterrupted_one_does(world, tmp_path):
    common = ("--total-steps", "8", "--eval-interval", "4", "--eval-gen-num", "-1")
    run_entrypoint(sft_args(world, tmp_path / "straight", *common))
    run_entrypoint(sft_args(world, tmp_path / "resumed", *common, "--stop-after-steps", "3"))
    assert not (tmp_path / "resumed" / "final.json").exists()
    run_entrypoint(sft_args(world, tmp_path / "resumed", *common, "--resume"))
    straight, _ = read_log(tmp_path / "straight")
    resumed, _ = read_log(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == list(range(1, 9))
    for a, b in zip(straight, resumed):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5), a["step"]
    weights_a = load_file(tmp_path / "straight" / "8" / "model.safetensors")
    weights_b = load_file(tmp_path / "resumed" / "8" / "model.safetensors")
    for name in weights_a:
        torch.testing.assert_close(weights_a[name], weights_b[name], rtol=1e-5, atol=1e-6)


def test_fp16_on_cpu_is_refused_up_front(world, tmp_path):
    with pytest.raises(AssertionError, match="fp16 needs a GPU"):
        run_entrypoint(sft_args(world, tmp_path / "fp16", "--total-steps", "1",
                                "--deepspeed-config", "configs/deepspeed/zero1_fp16.json"))
