"""train_kd.py and scripts/kd/kd_base.sh: KD pulls a student toward its teacher; bad pairs are refused."""
from __future__ import annotations

import json
import math
import os
import subprocess

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
from world import (
    MAX_LENGTH,
    MAX_PROMPT_LENGTH,
    REPO,
    run_entrypoint,
    token_training_args,
)

from minillm.data.datasets import TokenDataset
from minillm.eval.evaluation import token_divergences
from minillm.eval.generation import SamplingConfig
from minillm.modeling import load_tokenizer
from minillm.train.checkpoint import best_checkpoint
from minillm.train.response_source import (
    DATA,
    STUDENT,
    GKDConfig,
    GKDResponses,
    ResponseSampler,
)

pytestmark = pytest.mark.slow


def teacher_distance(world, teacher_run, student_folder) -> float:
    """Token-level forward KL(teacher ‖ student) on the validation responses."""
    tokenizer = load_tokenizer(world.tokenizer)
    teacher = AutoModelForCausalLM.from_pretrained(best_checkpoint(teacher_run, "valid_loss"))
    student = AutoModelForCausalLM.from_pretrained(student_folder)
    return token_divergences(student, teacher, TokenDataset(world.processed, "valid", MAX_LENGTH), ["forward_kl"],
                             len(tokenizer), tokenizer.pad_token_id)["forward_kl"]


def test_kd_student_ends_closer_to_the_teacher_than_the_sft_student(world, trained_teacher, tmp_path):
    """Same init, same steps, same batches: adding the forward-KL term must lower the student's
    forward KL to the teacher on the validation responses."""
    run_entrypoint(token_training_args("train_sft.py", world, world.student, tmp_path / "sft", 30))
    run_entrypoint(token_training_args("train_kd.py", world, world.student, tmp_path / "kd", 30,
                              "--teacher-model-path", str(trained_teacher), "--teacher-pick", "valid_loss",
                              "--kd-ratio", "0.5"))
    records = [json.loads(line) for line in open(tmp_path / "kd" / "log.jsonl")]
    assert {"ce", "kd", "loss"} <= set(records[0])
    assert records[0]["loss"] == pytest.approx(0.5 * records[0]["ce"] + 0.5 * records[0]["kd"], rel=1e-6)

    tokenizer = load_tokenizer(world.tokenizer)
    valid = TokenDataset(world.processed, "valid", MAX_LENGTH)
    teacher = AutoModelForCausalLM.from_pretrained(best_checkpoint(trained_teacher, "valid_loss"))
    distance = {}
    for name in ("sft", "kd"):
        student = AutoModelForCausalLM.from_pretrained(best_checkpoint(tmp_path / name, "valid_loss"))
        distance[name] = token_divergences(student, teacher, valid, ["forward_kl", "reverse_kl"],
                                           len(tokenizer), tokenizer.pad_token_id)
    assert distance["kd"]["forward_kl"] < 0.95 * distance["sft"]["forward_kl"], distance


def test_a_teacher_with_another_tokenizer_is_refused(world, tiny_tokenizer_dir, tmp_path):
    other = tmp_path / "other-teacher"
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_head=1, n_embd=8, n_positions=256)
    GPT2LMHeadModel(config).save_pretrained(other)
    tokenizer.save_pretrained(other)
    with pytest.raises(AssertionError, match="tokenizers differ"):
        run_entrypoint(token_training_args("train_kd.py", world, world.student, tmp_path / "kd", 1,
                                  "--teacher-model-path", str(other)))


def test_a_divergence_parameter_must_belong_to_the_chosen_divergence(world, tmp_path):
    with pytest.raises(AssertionError, match="takes no parameter 'skew_alpha'"):
        run_entrypoint(token_training_args("train_kd.py", world, world.student, tmp_path / "kd", 1,
                                  "--teacher-model-path", str(world.teacher), "--skew-alpha", "0.2"))


def test_kd_base_script_picks_the_divergence_from_its_variables(world, tmp_path):
    kd_loss, kd_args = "skew_forward_kl", "--skew-alpha 0.2"  # one with a parameter: KD_ARGS reaches it too
    save = tmp_path / kd_loss
    env = {**os.environ, "KD_LOSS": kd_loss, "KD_ARGS": kd_args, "MODEL_PATH": str(world.student),
           "TEACHER_PATH": str(world.teacher), "DATA_DIR": str(world.processed), "SAVE_PATH": str(save),
           "DS_CONFIG": "configs/deepspeed/zero1_fp32.json", "MAX_LENGTH": str(MAX_LENGTH),
           "MAX_PROMPT_LENGTH": str(MAX_PROMPT_LENGTH), "BATCH_SIZE": "8", "MICRO_BATCH_SIZE": "8",
           "EVAL_GEN_NUM": "-1", "EXTRA_ARGS": "--total-steps 2 --log-interval 1"}
    result = subprocess.run(["bash", "scripts/kd/kd_base.sh", "."], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = json.loads((save / "config.json").read_text())
    assert config["entrypoint"] == "train_kd" and config["kd_loss"] == kd_loss and config["skew_alpha"] == 0.2
    assert f"D = {kd_loss}" in (save / "log.txt").read_text()
    assert torch.isfinite(torch.tensor([json.loads(l)["kd"] for l in open(save / "log.jsonl") if '"kd"' in l])).all()


def test_gkd_trains_on_the_students_own_samples_in_a_fraction_lambda_of_the_steps(world, trained_teacher, tmp_path):
    """--gkd-lambda 0.5: the steps drawn "student" train on responses the student sampled (counted
    as rollout tokens), the others on the data (counted by stream), with GKD's pure JSD loss."""
    steps = 6
    run_entrypoint(token_training_args("train_kd.py", world, world.student, tmp_path / "gkd", steps,
                                       "--teacher-model-path", str(trained_teacher), "--teacher-pick", "valid_loss",
                                       "--kd-ratio", "1", "--kd-loss", "js_divergence", "--jsd-beta", "0.5",
                                       "--gkd-lambda", "0.5", "--max-new-tokens", "16", "--log-interval", "1"))
    sampler = ResponseSampler(SamplingConfig(), MAX_PROMPT_LENGTH, 10, None, 0, 0, False)
    drawn = [GKDResponses(GKDConfig(0.5, DATA), sampler, None).kind(step) for step in range(steps)]
    assert STUDENT in drawn and DATA in drawn, drawn  # the seed gives both kinds of step
    final = json.loads((tmp_path / "gkd" / "final.json").read_text())
    records = [json.loads(line) for line in open(tmp_path / "gkd" / "log.jsonl") if '"event"' not in line]
    # student steps: the prompt plus at most 16 sampled tokens, every one of them supervised
    student_tokens = [r["supervised_tokens"] - p["supervised_tokens"]
                      for r, p, kind in zip(records, [{"supervised_tokens": 0}] + records, drawn) if kind == STUDENT]
    assert final["rollout_tokens"] == sum(student_tokens) > 0
    assert all(tokens <= 16 * 16 for tokens in student_tokens)
    assert final["tokens_by_stream"]["default"] < final["tokens"]
    assert records[0]["loss"] == pytest.approx(records[0]["kd"], rel=1e-6)  # kd_ratio 1: no CE term
    before, after = (teacher_distance(world, trained_teacher, model) for model in (world.student, tmp_path / "gkd" / "6"))
    assert after < 0.9 * before, (before, after)  # the student moved towards the teacher


def test_distillm_resumes_exactly_with_its_replay_buffer(world, trained_teacher, tmp_path):
    """--adaptive-sgo from p = 1: steps sample into the buffer and replay it; a run stopped at
    step 3 and resumed ends with the weights of an uninterrupted one (p and the buffer are saved)."""
    def run(save, *extra):
        run_entrypoint(token_training_args("train_kd.py", world, world.student, save, 6,
                                           "--teacher-model-path", str(trained_teacher), "--teacher-pick",
                                           "valid_loss", "--kd-ratio", "1", "--kd-loss", "skew_forward_kl",
                                           "--adaptive-sgo", "--sgo-init-probability", "1", "--sgo-capacity", "24",
                                           "--max-new-tokens", "12", "--eval-interval", "3", *extra))
    run(tmp_path / "straight")
    run(tmp_path / "resumed", "--stop-after-steps", "3")
    run(tmp_path / "resumed", "--resume")
    finals = [json.loads((tmp_path / name / "final.json").read_text()) for name in ("straight", "resumed")]
    assert finals[0]["rollout_tokens"] == finals[1]["rollout_tokens"] > 0
    assert "tokens_by_stream" not in finals[0]  # p = 1 throughout: no step on the data's responses
    weights = [(tmp_path / name / "6" / "model.safetensors").read_bytes() for name in ("straight", "resumed")]
    assert weights[0] == weights[1]
    before, after = (teacher_distance(world, trained_teacher, model) for model in (world.student, tmp_path / "straight" / "6"))
    assert after < 0.9 * before, (before, after)  # the student moved towards the teacher


def test_gkd_with_the_teachers_samples_off_policy(world, trained_teacher, tmp_path):
    """--gkd-off-policy teacher: the steps not drawn "student" train on the teacher's samples (GKD's
    mixing with sequence-level KD), none on the data's; both kinds of sample are at most
    --response-max-new-tokens long, not the validation's --max-new-tokens."""
    save = tmp_path / "gkd-teacher"
    run_entrypoint(token_training_args("train_kd.py", world, world.student, save, 4,
                                       "--teacher-model-path", str(trained_teacher), "--teacher-pick", "valid_loss",
                                       "--kd-ratio", "1", "--kd-loss", "js_divergence", "--gkd-lambda", "0.5",
                                       "--gkd-off-policy", "teacher", "--response-max-new-tokens", "4",
                                       "--log-interval", "1"))
    assert "else the teacher's" in (save / "log.txt").read_text()
    final = json.loads((save / "final.json").read_text())
    # seed 10 draws steps 1-4 as teacher, student, student, teacher
    assert final["teacher_sampled_tokens"] > 0 and final["rollout_tokens"] > 0 and "tokens_by_stream" not in final
    records = [json.loads(line) for line in open(save / "log.jsonl") if '"event"' not in line]
    supervised = [r["supervised_tokens"] - p["supervised_tokens"] for r, p in zip(records, [{"supervised_tokens": 0}] + records)]
    assert all(0 < tokens <= 16 * 4 for tokens in supervised), supervised
    assert all(math.isfinite(r["kd"]) for r in records)
    assert (save / "4" / "model.safetensors").read_bytes() != (world.student / "model.safetensors").read_bytes()


def test_distillm_raises_p_when_the_validation_loss_rises_then_trains_on_student_outputs(world, trained_teacher,
                                                                                         tmp_path):
    """From p = 0 (DistiLLM's init_threshold): a learning rate far too high makes the validation loss
    rise at every evaluation, each rise adds 0.1 to p, and the steps then drawn under p train on
    fresh student samples (into the buffer) and on replayed ones."""
    save = tmp_path / "distillm"
    run_entrypoint(token_training_args("train_kd.py", world, world.student, save, 6,
                                       "--teacher-model-path", str(trained_teacher), "--teacher-pick", "valid_loss",
                                       "--kd-ratio", "1", "--kd-loss", "skew_forward_kl", "--adaptive-sgo",
                                       "--sgo-capacity", "16", "--response-max-new-tokens", "8", "--lr", "1.0",
                                       "--eval-interval", "1", "--seed", "3", "--log-interval", "1"))
    evals = [json.loads(line) for line in open(save / "log.jsonl") if '"eval"' in line]
    assert evals[0]["step"] == 0 and evals[0]["sgo_probability"] == 0
    losses = [e["valid_loss"] for e in evals]
    probabilities = [e["sgo_probability"] for e in evals]
    assert probabilities[-1] > 0 and probabilities == sorted(probabilities), (losses, probabilities)
    final = json.loads((save / "final.json").read_text())
    assert final["rollout_tokens"] > 0 and final["replayed_tokens"] > 0, final
    assert evals[-1]["replay_buffer"] == 16
