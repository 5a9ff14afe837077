"""The stories preset's parts on the real llama2.c teacher (stories260K): the story data written by
tools/make_stories_data.py, and students that KD and MiniLLM bring nearer to the teacher.

Skipped when ../shared/data/models/stories260K is absent.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from world import SHARED_DATA, load_tool, run_entrypoint

STORIES = SHARED_DATA / "models" / "stories260K"
pytestmark = [pytest.mark.shared_data,
              pytest.mark.skipif(not (STORIES / "stories260K.bin").is_file(),
                                 reason="../shared/data/models/stories260K absent: no real llama2.c teacher")]
PROMPT_TOKENS, CONTINUATION_TOKENS = 8, 16
SIZES = {"train": 256, "valid": 16, "test": 32}


@contextlib.contextmanager
def one_thread():
    """Models this small run several times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    """The converted teacher, story data sampled from it, and a 1-layer random student."""
    root = tmp_path_factory.mktemp("stories")
    with one_thread():
        load_tool("convert_llama2c").convert(STORIES / "stories260K.bin", STORIES / "tok512.bin", root / "teacher")
        load_tool("make_stories_data").make_stories_data(
            root / "teacher", root / "data", num_train=SIZES["train"], num_valid=SIZES["valid"],
            num_test=SIZES["test"], prompt_tokens=PROMPT_TOKENS, continuation_tokens=CONTINUATION_TOKENS, seed=0)
        load_tool("make_llama_student").make_student(root / "teacher", root / "student", layers=1, dim=16, heads=2,
                                                     kv_heads=1, hidden_dim=32, seed=0)
    return SimpleNamespace(root=root, teacher=root / "teacher", data=root / "data", student=root / "student")


def test_story_data_is_bos_opening_then_teacher_continuation(stories):
    from minillm.data.datasets import TokenDataset
    from minillm.modeling import load_tokenizer

    tokenizer = load_tokenizer(stories.teacher)
    summary = json.loads((stories.data / "stories.json").read_text())
    assert summary["splits"] == {"valid": SIZES["valid"], "test": SIZES["test"], "train": SIZES["train"]}
    for split, size in SIZES.items():
        full = TokenDataset(stories.data / "full", split, max_length=100)
        assert len(full) == size
        rows = [json.loads(line) for line in (stories.data / "full" / f"{split}.jsonl").read_text().splitlines()]
        for index in range(size):
            example = full.example(index)
            assert example.prompt_len == 1 + PROMPT_TOKENS and example.tokens[0] == tokenizer.bos_token_id
            response = example.tokens[example.prompt_len:]
            assert len(response) == CONTINUATION_TOKENS, "cut mid-story: no EOS appended"
            assert rows[index]["output"] == tokenizer.decode(response, skip_special_tokens=True)
        if split != "test":
            prompts = TokenDataset(stories.data / "prompt", split, max_length=100)
            assert all(np.array_equal(prompts.prompt(i), full.prompt(i)) for i in range(size))
    assert not (stories.data / "prompt" / "test_0.bin").exists()


def _distances(stories, models: dict[str, Path]) -> dict[str, dict]:
    compare = load_tool("compare_to_teacher").compare
    with one_thread():
        rows = compare(stories.teacher, stories.data / "full", "test", {k: str(v) for k, v in models.items()},
                       seeds=[1], max_new_tokens=CONTINUATION_TOKENS)
    return {row["model"]: row for row in rows}


@pytest.mark.slow
def test_kd_and_minillm_students_end_nearer_the_real_teacher(stories, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    shape = ["--max-length", str(1 + PROMPT_TOKENS + CONTINUATION_TOKENS), "--max-prompt-length",
             str(1 + PROMPT_TOKENS), "--micro-batch-size", "16", "--lr", "3e-3", "--seed", "1",
             "--deepspeed-config", "configs/deepspeed/zero1_fp32.json", "--teacher-model-path", str(stories.teacher),
             "--model-path", str(stories.student), "--log-interval", "10"]
    kd, minillm = stories.root / "kd", stories.root / "minillm"
    run_entrypoint(["train_kd.py", *shape, "--data-dir", str(stories.data / "full"), "--save", str(kd),
                    "--batch-size", "16", "--total-steps", "40", "--eval-interval", "40", "--eval-gen-num", "-1",
                    "--kd-loss", "forward_kl", "--kd-ratio", "1"])
    # 16 steps = 8 collections of 32 rollouts, one PPO pass of two mini-batches of 16 each.
    run_entrypoint(["train_minillm.py", *shape, "--data-dir", str(stories.data / "prompt"), "--save", str(minillm),
                    "--batch-size", "16", "--num-rollouts", "32", "--ppo-epochs", "1", "--rollout-batch-size", "32",
                    "--warmup-steps", "0", "--total-steps", "16", "--eval-interval", "16", "--eval-gen-num", "8"])
    rows = _distances(stories, {"init": stories.student, "kd": kd, "minillm": minillm})
    assert rows["kd"]["steps"] == 40 and rows["minillm"]["steps"] == 16
    init = rows["init"]
    for name in ("kd", "minillm"):
        for metric in ("forward_kl", "reverse_kl", "reverse_kl_own_samples"):
            assert rows[name][metric] < init[metric], (name, metric, rows[name][metric], init[metric])
