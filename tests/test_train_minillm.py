"""train_minillm.py: logs, ablation switches, world-size invariance and the learning test."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
from world import (
    MAX_LENGTH,
    MAX_PROMPT_LENGTH,
    load_tool,
    run_entrypoint,
    token_training_args,
)

from minillm.data.datasets import TokenDataset
from minillm.distributed import DistInfo
from minillm.eval.evaluation import generate_texts
from minillm.eval.generation import SamplingConfig
from minillm.modeling import load_tokenizer
from minillm.ppo import losses as ppo
from minillm.ppo.rollouts import collect
from minillm.recipes import reference_flags
from minillm.train.checkpoint import best_checkpoint

pytestmark = pytest.mark.slow
PROMPTS_PER_CHECK = 4  # samples per validation prompt in the reverse-KL estimate


@pytest.fixture(scope="module")
def prompt_data(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prompt")
    assert load_tool("process_data_dolly").main([
        "--data-dir", str(world.data), "--processed-data-dir", str(out), "--model-path", str(world.tokenizer),
        "--model-type", "tiny", "--dev-num", "40", "--max-prompt-length", str(MAX_PROMPT_LENGTH),
        "--max-length", str(MAX_LENGTH), "--only-prompt"]) == 0
    return out / "tiny"


@pytest.fixture(scope="module")
def ptx_data(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ptx")
    assert load_tool("process_data_pretrain").main([
        "--data-path", str(world.data / "pretrain.txt"), "--processed-data-dir", str(out),
        "--model-path", str(world.tokenizer), "--model-type", "tiny", "--chunk-length", str(MAX_LENGTH),
        "--dev-num", "1"]) == 0
    return out / "tiny"


def minillm_args(init: Path, teacher: Path, prompts: Path, save: Path, steps: int, *extra: str) -> list[str]:
    return ["train_minillm.py", "--model-path", str(init), "--teacher-model-path", str(teacher),
            "--teacher-pick", "valid_loss", "--data-dir", str(prompts), "--save", str(save),
            "--max-length", str(MAX_LENGTH), "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--max-new-tokens", "24",
            "--num-rollouts", "32", "--batch-size", "16", "--micro-batch-size", "8", "--ppo-epochs", "2",
            "--rollout-batch-size", "16", "--total-steps", str(steps), "--eval-interval", str(steps),
            "--eval-gen-num", "16", "--lr", "5e-4", "--warmup-steps", "0", "--log-interval", "1",
            "--deepspeed-config", "configs/deepspeed/zero1_fp32.json", *extra]


def records(save: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in open(save / "log.jsonl")]
    return [r for r in rows if "event" not in r], [r for r in rows if r.get("event") == "eval"]


def sampled_reverse_kl(model_path: Path, teacher_path: Path, world) -> float:
    """Mean over sampled responses of Σ_t log q(y_t) − log p(y_t): the sequence-level reverse KL."""
    tokenizer = load_tokenizer(world.tokenizer)
    valid = TokenDataset(world.processed, "valid", MAX_LENGTH)
    prompts = [valid.prompt(i) for i in range(len(valid))] * PROMPTS_PER_CHECK
    out = generate_texts(AutoModelForCausalLM.from_pretrained(model_path), tokenizer, prompts,
                         SamplingConfig(max_new_tokens=24), seed=7, dist_info=DistInfo(0, 1, 0, torch.device("cpu")),
                         max_prompt_length=MAX_PROMPT_LENGTH, batch_tokens=8192,
                         teacher=AutoModelForCausalLM.from_pretrained(teacher_path))
    return float(np.mean(np.asarray(out.student_logprobs) - np.asarray(out.teacher_logprobs)))


def test_minillm_lowers_the_sampled_reverse_kl_below_its_sft_initialisation(
        world, trained_teacher, sft_student, prompt_data, ptx_data, tmp_path):
    init = best_checkpoint(sft_student, "valid_loss")
    teacher = best_checkpoint(trained_teacher, "valid_loss")
    save = tmp_path / "minillm"
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, save, 48, "--ptx-data-dir", str(ptx_data)))
    steps, evals = records(save)
    assert len(steps) == 48 and [e["step"] for e in evals] == [0, 48]
    for key in ("step", "reward", "rev_kl", "pg_loss", "reg_loss", "pt_loss", "response_len", "lr"):
        assert key in steps[-1], key
    assert "rougeL" in evals[-1]
    before, after = sampled_reverse_kl(init, teacher, world), sampled_reverse_kl(save / "48", teacher, world)
    assert after < 0.9 * before, (before, after)


def test_on_policy_distillation_lowers_the_per_token_reverse_kl(world, trained_teacher, sft_student, prompt_data,
                                                               tmp_path):
    """--recipe opd: the same step with OPD's settings (each still overridable) learns too."""
    init = best_checkpoint(sft_student, "valid_loss")
    save = tmp_path / "opd"
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, save, 24, "--recipe", "opd", "--lr", "2e-3",
                                "--num-rollouts", "0", "--ppo-epochs", "1"))
    config = json.loads((save / "config.json").read_text())
    assert (config["teacher_mix_alpha"], config["gamma"], config["whiten"], config["clip_eps"]) == (0.0, 0.0, "none", 0.0)
    assert config["no_single_step_reg"] and config["no_length_norm"] and config["num_rollouts"] == 16
    steps, evals = records(save)
    assert all("reg_loss" not in r and r["clip_fraction"] == 0 for r in steps)
    # OPD's objective is the per-token reverse KL at the states the student visits (its samples
    # grow longer here, so the sequence-level sum is not what it lowers): the teacher-scored
    # per-token log p − log q of validation samples moves towards 0.
    before, after = evals[0]["reward"], evals[-1]["reward"]
    assert after > 0.9 * before, (before, after)


def test_the_control_arm_trains_minillms_pretraining_term_on_the_same_chunks(world, trained_teacher, sft_student,
                                                                              prompt_data, ptx_data, tmp_path):
    """train_kd.py --kd-ratio 0 --ptx-kd-ratio 0.5 (SFT (continued)) with MiniLLM's steps, batch and
    seed trains MiniLLM's corpus term on exactly its chunks, whatever the micro-batch split: at
    step 1, from the same init, both runs' corpus losses agree term by term."""
    init = best_checkpoint(sft_student, "valid_loss")
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, tmp_path / "minillm", 3,
                                "--ptx-data-dir", str(ptx_data)))
    run_entrypoint(token_training_args("train_kd.py", world, init, tmp_path / "control", 3,
                                       "--teacher-model-path", str(trained_teacher), "--teacher-pick", "valid_loss",
                                       "--kd-ratio", "0", "--ptx-data-dir", str(ptx_data), "--ptx-kd-ratio", "0.5",
                                       "--micro-batch-size", "4", "--log-interval", "1"))
    minillm, control = (json.loads((tmp_path / run / "final.json").read_text()) for run in ("minillm", "control"))
    assert control["ptx_tokens"] == minillm["ptx_tokens"] > 0
    (first_minillm, *_), _ = records(tmp_path / "minillm")
    (first_control, *_), _ = records(tmp_path / "control")
    for term in ("pt_loss", "pt_ce", "pt_kd"):
        assert first_control[term] == pytest.approx(first_minillm[term], rel=1e-5), term
    assert "kd" not in first_control  # --kd-ratio 0: cross-entropy on the task, the teacher never runs there


def test_one_and_two_ranks_take_the_same_steps_with_the_same_global_settings(
        world, trained_teacher, sft_student, prompt_data, tmp_path):
    init = best_checkpoint(sft_student, "valid_loss")
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, tmp_path / "one", 8))
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, tmp_path / "two", 8), ranks=2)
    one, _ = records(tmp_path / "one")
    two, _ = records(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 9))
    text = (tmp_path / "two" / "log.txt").read_text()
    assert "32 rollouts per collection (16 per rank)" in text and "-> 4 steps per collection" in text


def test_without_the_single_step_term_no_regulariser_is_computed(world, trained_teacher, sft_student, prompt_data,
                                                                 tmp_path):
    init = best_checkpoint(sft_student, "valid_loss")
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, tmp_path / "noreg", 2, "--no-single-step-reg"))
    steps, _ = records(tmp_path / "noreg")
    assert all("reg_loss" not in r and "pt_loss" not in r for r in steps)


def tiny_gpt2(seed: int, width: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=40, n_layer=1, n_head=2, n_embd=width, n_positions=64)).eval()


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_collect_weights_and_length_normalisation(alpha):
    student, teacher = tiny_gpt2(0, 16), tiny_gpt2(1, 32)
    prompts = [np.array([3, 4, 5]), np.array([6, 7]), np.array([8, 9, 10, 11])]

    def run(length_norm: bool, whiten: str = "tokens"):
        return collect(student, teacher, prompts, config=SamplingConfig(max_new_tokens=10), teacher_mix=alpha,
                       reward_scaling=0.5, reward_clip=100.0, gamma=0.95, length_norm=length_norm, eos_token_id=-1,
                       pad_token_id=0, max_prompt_length=8, batch_size=2,
                       generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), sync_ranks=False,
                       whiten=whiten)

    normed, plain = run(True), run(False)
    # --whiten reference keeps the raw returns, whitened later per mini-batch.
    raw = run(True, "reference")
    returns = ppo.discounted_returns(ppo.rewards(raw.teacher_logprobs, raw.old_logprobs, raw.mask, 0.5, 100.0),
                                     raw.mask, 0.95, True)
    assert torch.equal(raw.advantages, returns)
    torch.testing.assert_close(ppo.whiten(returns, raw.mask), normed.advantages)
    assert torch.equal(normed.responses, plain.responses)  # same samples: only the returns differ
    assert not torch.allclose(normed.advantages, plain.advantages)
    if alpha == 0:
        assert torch.equal(normed.weights, normed.mask)  # no teacher mixing: every weight exactly 1
    else:
        expected = torch.exp(normed.old_logprobs - torch.log(
            alpha * normed.teacher_logprobs.exp() + (1 - alpha) * normed.old_logprobs.exp())) * normed.mask
        torch.testing.assert_close(normed.weights, expected)
    assert normed.advantages[normed.mask.bool()].mean().abs() < 1e-5  # whitened


def test_a_run_interrupted_mid_collection_resumes_exactly(world, trained_teacher, sft_student, prompt_data, tmp_path):
    """Stopped at step 3 of a 4-step collection: the saved rollouts let the resumed run finish
    with the same losses as an uninterrupted one."""
    args = (best_checkpoint(sft_student, "valid_loss"), trained_teacher, prompt_data)
    run_entrypoint(minillm_args(*args, tmp_path / "straight", 8))
    run_entrypoint(minillm_args(*args, tmp_path / "resumed", 8, "--stop-after-steps", "3"))
    run_entrypoint(minillm_args(*args, tmp_path / "resumed", 8, "--resume"))
    straight, _ = records(tmp_path / "straight")
    resumed, _ = records(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == list(range(1, 9))
    for a, b in zip(straight, resumed):
        assert (a["pg_loss"], a["reg_loss"]) == pytest.approx((b["pg_loss"], b["reg_loss"]), rel=1e-5), a["step"]


def test_lmops_whitening_trains_end_to_end(world, trained_teacher, sft_student, prompt_data, tmp_path):
    """--whiten reference (the driver's minillm-lmops arm): a collection and 2 of its steps run, the
    step says how it whitens, and the student moves. (The whitening itself: test_ppo_losses.py.)"""
    init = best_checkpoint(sft_student, "valid_loss")
    save = tmp_path / "lmops"
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, save, 2, "--whiten", "reference",
                                "--eval-gen-num", "-1"))
    assert "advantages whitened per mini-batch over every response slot (LMOps)" in (save / "log.txt").read_text()
    steps, _ = records(save)
    assert [r["step"] for r in steps] == [1, 2]
    assert all(np.isfinite([r["pg_loss"], r["reg_loss"]]).all() for r in steps)
    assert (save / "2" / "model.safetensors").read_bytes() != (init / "model.safetensors").read_bytes()


def test_on_policy_distillations_reference_recipe_samples_groups_and_sums_over_tokens(
        world, trained_teacher, sft_student, prompt_data, tmp_path):
    """reference_flags("opd-ref"): 4 samples of each drawn prompt, the policy-gradient loss summed
    over tokens (ρ = 1 in a one-step collection, so pg_loss = −Σ_t (log p − log q) = −reward ×
    the collection's tokens, where the token mean would give −reward), no clipping, no corpus."""
    init = best_checkpoint(sft_student, "valid_loss")
    save = tmp_path / "opd-ref"
    flags = reference_flags("opd-ref", {"lr": 5e-4, "warmup_steps": 0, "total_steps": 2, "batch_size": 16,
                                        "eval_interval": 2})
    run_entrypoint(minillm_args(init, trained_teacher, prompt_data, save, 2, "--eval-gen-num", "-1", *flags))
    text = (save / "log.txt").read_text()
    assert "16 rollouts per collection (4 samples of each of 4 prompts)" in text
    assert "rollout terms summed over tokens" in text and '"clip_grad": 0.0' in text
    steps, _ = records(save)
    assert len(steps) == 2 and all("pt_loss" not in r and "reg_loss" not in r for r in steps)
    for r in steps:
        assert r["pg_loss"] == pytest.approx(-r["reward"] * r["response_len"] * 16, rel=1e-3), r
