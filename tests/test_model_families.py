"""configs/models/: every config builds its architecture, the paper-scale ones at the official
parameter counts; toy Llama and Qwen2 students train through SFT, KD and a MiniLLM step."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from minillm.train.checkpoint import best_checkpoint
from world import MAX_LENGTH, MAX_PROMPT_LENGTH, REPO, load_tool, run_entrypoint, token_training_args

CONFIGS = REPO / "configs" / "models"
# The model cards' parameter counts (billions, embeddings included; tied where the family ties).
OFFICIAL_BILLIONS = {"qwen2.5-0.5b": 0.49, "qwen2.5-1.5b": 1.54, "llama-3.2-1b": 1.24, "gpt2-xl": 1.56,
                     "gpt2-base": 0.124}


def test_every_model_config_builds_and_the_paper_scale_ones_have_the_official_size():
    names = sorted(path.stem for path in CONFIGS.glob("*.json"))
    assert {"llama-toy", "llama-toy-teacher", "qwen2-toy", "qwen2-toy-teacher", *OFFICIAL_BILLIONS} <= set(names)
    for name in names:
        config = AutoConfig.from_pretrained(CONFIGS / f"{name}.json")
        with torch.device("meta"):  # shapes only: a 1.5B model is built without memory
            model = AutoModelForCausalLM.from_config(config)
        if name in OFFICIAL_BILLIONS:
            assert model.num_parameters() / 1e9 == pytest.approx(OFFICIAL_BILLIONS[name], abs=0.005), name


@pytest.fixture(scope="module")
def prompt_data(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("prompt")
    assert load_tool("process_data_dolly").main([
        "--data-dir", str(world.data), "--processed-data-dir", str(out), "--model-path", str(world.tokenizer),
        "--model-type", "tiny", "--dev-num", "40", "--max-prompt-length", str(MAX_PROMPT_LENGTH),
        "--max-length", str(MAX_LENGTH), "--only-prompt"]) == 0
    return out / "tiny"


@pytest.mark.slow
def test_toy_llama_and_qwen2_students_train_by_sft_kd_and_minillm(world, prompt_data, tmp_path):
    """The toy configs with the toy world's tokenizer, three launches: two SFT steps of a Llama
    student; two KD steps of a Qwen2 student from a Llama teacher (one tokenizer, two
    architectures); one MiniLLM step from that Qwen2 student (rollouts through the KV-cache
    sampler, the Llama teacher scoring them). The mechanics per architecture, not learning;
    a Llama student's MiniLLM runs in tests/test_stories.py."""
    make = load_tool("make_random_model")
    for name in ("llama-toy", "qwen2-toy", "llama-toy-teacher"):
        assert make.main(["--config", str(CONFIGS / f"{name}.json"), "--tokenizer", str(world.tokenizer),
                          "--seed", "1", "--out", str(tmp_path / name)]) == 0
    teacher = ["--teacher-model-path", str(tmp_path / "llama-toy-teacher")]
    run_entrypoint(token_training_args("train_sft.py", world, tmp_path / "llama-toy", tmp_path / "sft", 2))
    run_entrypoint(token_training_args("train_kd.py", world, tmp_path / "qwen2-toy", tmp_path / "kd", 2, *teacher))
    run_entrypoint(["train_minillm.py", "--model-path", str(best_checkpoint(tmp_path / "kd", "valid_loss")), *teacher,
                    "--data-dir", str(prompt_data), "--save", str(tmp_path / "minillm"),
                    "--max-length", str(MAX_LENGTH), "--max-prompt-length", str(MAX_PROMPT_LENGTH),
                    "--max-new-tokens", "8", "--num-rollouts", "8", "--batch-size", "8", "--micro-batch-size", "8",
                    "--ppo-epochs", "1", "--rollout-batch-size", "8", "--total-steps", "1", "--eval-interval", "1",
                    "--eval-gen-num", "4", "--lr", "5e-4", "--warmup-steps", "0", "--log-interval", "1",
                    "--deepspeed-config", "configs/deepspeed/zero1_fp32.json"])
    for run, steps, family, pick in (("sft", 2, "llama", "valid_loss"), ("kd", 2, "qwen2", "valid_loss"),
                                     ("minillm", 1, "qwen2", "rougeL")):
        rows = [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        trained = [row for row in rows if "event" not in row and "step" in row]
        assert trained and trained[-1]["step"] == steps, (run, rows[-3:])
        assert AutoConfig.from_pretrained(best_checkpoint(tmp_path / run, pick)).model_type == family
