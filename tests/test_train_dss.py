"""Step-by-step distillation in the two loops: paired task streams, α weighting, DSS-KD and
DSS-MiniLLM, the task prefix carried to evaluation, and the DSS learning test."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM
from world import (
    MAX_LENGTH,
    MAX_PROMPT_LENGTH,
    load_tool,
    run_entrypoint,
    token_training_args,
)

from minillm import args as cli
from minillm.data.datasets import (
    GlobalBatchSampler,
    PairedStreams,
    TaskStream,
    TokenDataset,
    collate_sft,
)
from minillm.losses import IGNORE_INDEX
from minillm.modeling import load_tokenizer
from minillm.train.checkpoint import best_checkpoint, read_prompt_prefix

pytestmark = pytest.mark.slow
BATCH = 16  # token_training_args' global batch


def process_task(world, out: Path, task: str, *extra: str) -> Path:
    assert load_tool("process_data_dolly").main([
        "--data-dir", str(world.data), "--processed-data-dir", str(out), "--model-path", str(world.tokenizer),
        "--model-type", "tiny", "--dev-num", "40", "--max-prompt-length", str(MAX_PROMPT_LENGTH),
        "--max-length", str(MAX_LENGTH), "--task", task, *extra]) == 0
    return out / "tiny"


@pytest.fixture(scope="module")
def dss_data(world, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dss")
    return {task: process_task(world, root / task, task) for task in ("label", "rationale")}


@pytest.fixture(scope="module")
def dss_prompts(world, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dss-prompts")
    return {task: process_task(world, root / task, task, "--only-prompt") for task in ("label", "rationale")}


def dss_args(entry: str, world, data: dict[str, Path], save: Path, steps: int, *extra: str) -> list[str]:
    args = token_training_args(entry, world, world.student, save, steps, "--rationale-data-dir",
                               str(data["rationale"]), *extra)
    args[args.index("--data-dir") + 1] = str(data["label"])
    return args


def log_records(save: Path) -> list[dict]:
    return [json.loads(line) for line in open(save / "log.jsonl")]


def test_streams_pair_the_tasks_of_each_question(world, dss_data):
    tokenizer = load_tokenizer(world.tokenizer)
    label, rationale = (TokenDataset(dss_data[t], "train", MAX_LENGTH) for t in ("label", "rationale"))
    assert label.task["prefix"] == "[label] " and rationale.task["prefix"] == "[rationale] "
    assert 0 < len(rationale) < len(label)  # only the reasoning families have a rationale
    streams = PairedStreams([TaskStream("label", label, 0.5), TaskStream("rationale", rationale, 0.5)])
    raw = [json.loads(line) for line in open(world.data / "raw.jsonl")][40:]  # after the 40 dev rows
    paired = 0
    for index in range(len(streams)):
        examples = streams.examples(index)
        row = raw[label.source_rows()[index]]
        if not row["rationale"]:  # (a rationale prompt over the length limit is dropped too)
            assert [stream for stream, _ in examples] == [0]
        for stream, example in examples:
            prompt = tokenizer.decode(example.tokens[:example.prompt_len])
            target = tokenizer.decode(example.tokens[example.prompt_len:-1])
            assert prompt.startswith(("[label] ", "[rationale] ")[stream]) and row["instruction"] in prompt
            assert target == (row["output"], row["rationale"])[stream]
            batch = collate_sft([example], tokenizer.pad_token_id)  # supervision = target + EOS only
            assert int((batch["labels"] != IGNORE_INDEX).sum()) == len(example.tokens) - example.prompt_len
        paired += len(examples) == 2
    assert paired == len(rationale)


@pytest.mark.parametrize("alpha", [0.5, 0.8])
def test_the_loss_is_alpha_weighted_token_means_of_the_two_tasks(world, dss_data, tmp_path, alpha):
    """The logged first-step loss equals α·mean CE(label tokens) + (1 − α)·mean CE(rationale
    tokens) of the step's batch, computed here by hand from the initial model."""
    save = tmp_path / "run"
    run_entrypoint(dss_args("train_sft.py", world, dss_data, save, 1, "--label-weight", str(alpha),
                            "--log-interval", "1"))
    first = log_records(save)[0]
    streams = PairedStreams([TaskStream(t, TokenDataset(dss_data[t], "train", MAX_LENGTH), 0.0)
                             for t in ("label", "rationale")])
    indices = GlobalBatchSampler(len(streams), BATCH, seed=10).global_indices(0)
    model = AutoModelForCausalLM.from_pretrained(world.student).eval()
    pad = load_tokenizer(world.tokenizer).pad_token_id
    means = []
    with torch.no_grad():
        for stream in (0, 1):
            examples = [ex for i in indices for s, ex in streams.examples(int(i)) if s == stream]
            batch = collate_sft(examples, pad)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            means.append(float(F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(),
                                               ignore_index=IGNORE_INDEX)))
    assert first["ce_label"] == pytest.approx(means[0], rel=1e-4)
    assert first["ce_rationale"] == pytest.approx(means[1], rel=1e-4)
    assert first["loss"] == pytest.approx(alpha * means[0] + (1 - alpha) * means[1], rel=1e-4)


def test_dss_student_learns_both_tasks_and_answers_behind_the_label_prefix(world, dss_data, tmp_path):
    save = tmp_path / "dss"
    run_entrypoint(dss_args("train_sft.py", world, dss_data, save, 40))
    records = [r for r in log_records(save) if "ce_rationale" in r and "event" not in r]
    assert records[-1]["ce_rationale"] < 0.7 * records[0]["ce_rationale"], records
    assert records[-1]["ce_label"] < 0.7 * records[0]["ce_label"], records
    evaluation = [r for r in log_records(save) if r.get("event") == "eval"][-1]
    assert {"valid_loss", "valid_ce_label", "valid_ce_rationale"} <= set(evaluation)
    checkpoint = best_checkpoint(save, "valid_loss")
    assert read_prompt_prefix(checkpoint) == "[label] "

    run_entrypoint(["evaluate.py", "--model-path", str(save), "--pick", "valid_loss", "--data-root",
                    str(world.data.parent), "--eval-sets", world.data.name, "--seeds", "1", "--max-new-tokens", "24",
                    "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--save", str(tmp_path / "eval")])
    answers = [json.loads(line) for line in open(tmp_path / "eval" / world.data.name / "1" / "answers.jsonl")]
    assert all(a["prompt"].startswith("[label] ") for a in answers)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["prompt_prefix"] == "[label] " and "accuracy_strict" in summary["sets"][world.data.name]

    # Rationales on request: the rationale stream's validation rows (prompts already prefixed,
    # references = the rationales) scored by Rouge-L, with the checkpoint's own prefix switched off.
    rationale_root = dss_data["rationale"].parent
    run_entrypoint(["evaluate.py", "--model-path", str(save), "--pick", "valid_loss", "--data-root",
                    str(rationale_root), "--eval-sets", dss_data["rationale"].name, "--prompt-prefix", "",
                    "--seeds", "1", "--max-new-tokens", "32", "--max-prompt-length", str(MAX_PROMPT_LENGTH),
                    "--save", str(tmp_path / "eval-rationale")])
    rows = [json.loads(line) for line in
            open(tmp_path / "eval-rationale" / dss_data["rationale"].name / "1" / "answers.jsonl")]
    references = [r["output"] for r in TokenDataset(dss_data["rationale"], "valid", MAX_LENGTH).rows()]
    assert [r["reference"] for r in rows] == references
    assert all(r["prompt"].startswith("[rationale] ") for r in rows)
    summary = json.loads((tmp_path / "eval-rationale" / "summary.json").read_text())
    assert summary["sets"][dss_data["rationale"].name]["rougeL_mean"] > 0


def test_train_fraction_trains_on_a_fixed_subset(world, dss_data, tmp_path):
    run_entrypoint(dss_args("train_sft.py", world, dss_data, tmp_path / "run", 1, "--train-fraction", "0.5"))
    log = (tmp_path / "run" / "log.txt").read_text()
    total = len(TokenDataset(dss_data["label"], "train", MAX_LENGTH))
    assert f"training on {round(total / 2)} of {total} items" in log


def test_a_fraction_sized_in_epochs_trains_the_whole_sets_steps_unless_told_otherwise(world, dss_data, tmp_path):
    """The DSS reference's curves hold the optimizer steps on every fraction (run.py --max_steps):
    --epochs on a --train-fraction counts passes over all the items; --fraction-budget epochs, over
    the fraction (fewer steps)."""
    for budget in ("steps", "epochs"):
        save = tmp_path / budget
        args = dss_args("train_sft.py", world, dss_data, save, 1, "--train-fraction", "0.5", "--fraction-budget", budget)
        at = args.index("--total-steps")
        args[at:at + 2] = ["--total-steps", "0", "--epochs", "1"]
        args[args.index("--eval-interval") + 1] = "1000"
        run_entrypoint(args)
        used, total = map(int, re.search(r"training on (\d+) of (\d+) items", (save / "log.txt").read_text()).groups())
        final = json.loads((save / "final.json").read_text())
        assert final["steps"] == (total if budget == "steps" else used) // 16 and used < total
        assert final["epochs"] == pytest.approx(final["steps"] / (used // 16))  # passes over the fraction


def test_the_token_matched_control_trains_the_label_task_for_both_tasks_tokens(world, dss_data, tmp_path):
    """--token-matched-to: the label task alone, its steps scaled by (label + rationale tokens) ÷
    label tokens of the training items, counted here from the examples as the DSS run pairs them."""
    label, rationale = (TokenDataset(dss_data[t], "train", MAX_LENGTH) for t in ("label", "rationale"))
    partner = {row: k for k, row in enumerate(rationale.source_rows())}
    label_tokens = sum(len(label.example(i).tokens) for i in range(len(label)))
    rationale_tokens = sum(len(rationale.example(partner[row]).tokens) for row in label.source_rows() if row in partner)
    ratio = (label_tokens + rationale_tokens) / label_tokens
    assert ratio > 1.2
    save = tmp_path / "matched"
    args = token_training_args("train_sft.py", world, world.student, save, 4, "--token-matched-to", str(dss_data["rationale"]))
    args[args.index("--data-dir") + 1] = str(dss_data["label"])
    run_entrypoint(args)
    final = json.loads((save / "final.json").read_text())
    assert final["steps"] == round(4 * ratio) and "epochs" not in final  # sized in steps, not epochs
    assert f"{round(4 * ratio)} steps instead of 4" in (save / "log.txt").read_text()
    assert "rationale" not in final["tokens_by_stream"]
    both = dss_args("train_sft.py", world, dss_data, tmp_path / "both", 1, "--token-matched-to", str(dss_data["rationale"]))
    with pytest.raises(SystemExit, match="drop --rationale-data-dir"):
        cli.validate(cli.token_training_parser("").parse_args(both[1:]))
    on_policy = cli.token_training_parser("", cli.add_teacher_args, cli.add_pretraining_args, cli.add_minillm_args)
    with pytest.raises(SystemExit, match="an on-policy run samples its own tokens"):
        cli.validate(on_policy.parse_args(args[1:] + ["--teacher-model-path", str(world.teacher)]))


def test_dss_kd_mixes_ce_and_divergence_in_each_stream(world, trained_teacher, dss_data, tmp_path):
    save = tmp_path / "dss-kd"
    run_entrypoint(dss_args("train_kd.py", world, dss_data, save, 2, "--teacher-model-path", str(trained_teacher),
                            "--teacher-pick", "valid_loss", "--kd-ratio", "0.3", "--label-weight", "0.6",
                            "--log-interval", "1"))
    first = log_records(save)[0]
    for part in ("loss", "ce", "kd"):  # each part combines the streams with weights α, 1 − α
        assert first[part] == pytest.approx(0.6 * first[f"{part}_label"] + 0.4 * first[f"{part}_rationale"], rel=1e-6)
    for stream in ("label", "rationale"):
        assert first[f"loss_{stream}"] == pytest.approx(0.7 * first[f"ce_{stream}"] + 0.3 * first[f"kd_{stream}"],
                                                        rel=1e-6)


def test_dss_minillm_samples_both_tasks(world, trained_teacher, dss_prompts, tmp_path):
    save = tmp_path / "dss-minillm"
    run_entrypoint(["train_minillm.py", "--model-path", str(world.student), "--teacher-model-path",
                    str(trained_teacher), "--teacher-pick", "valid_loss", "--data-dir", str(dss_prompts["label"]),
                    "--rationale-data-dir", str(dss_prompts["rationale"]), "--save", str(save),
                    "--max-length", str(MAX_LENGTH), "--max-prompt-length", str(MAX_PROMPT_LENGTH),
                    "--max-new-tokens", "16", "--num-rollouts", "32", "--batch-size", "16", "--micro-batch-size", "16",
                    "--ppo-epochs", "1", "--rollout-batch-size", "32", "--total-steps", "2", "--eval-interval", "2",
                    "--eval-gen-num", "8", "--log-interval", "1", "--warmup-steps", "0",
                    "--deepspeed-config", "configs/deepspeed/zero1_fp32.json"])
    log = (save / "log.txt").read_text()
    assert "task 'rationale' (weight 0.5" in log
    assert read_prompt_prefix(best_checkpoint(save, "rougeL")) == "[label] "
    steps = [r for r in log_records(save) if "pg_loss" in r]
    assert len(steps) == 2 and all(np.isfinite(r["pg_loss"]) and np.isfinite(r["reg_loss"]) for r in steps)
