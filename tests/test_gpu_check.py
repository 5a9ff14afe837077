"""Issue 16 §1: benchmarks/gpu_check.sh and its reporter. The reporter is tested on synthetic stage
folders (a NaN, a loss that does not fall, a crash, a run that did not finish, fp16 overflow skips,
the MFU arithmetic); the script itself end to end in its CPU smoke mode on the shared dolly sample."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from world import REPO, SHARED_DATA

spec = importlib.util.spec_from_file_location("gpu_check_report", REPO / "benchmarks" / "gpu_check_report.py")
gpu_check_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check_report)

# What benchmarks/gpu_check.sh reads from ../shared/data before its first stage.
needs_shared = pytest.mark.skipif(
    not all((SHARED_DATA / path).is_file() for path in ("minillm-data/dolly/raw.jsonl", "tokenizers/gpt2/tokenizer.json",
                                                        "dss/cqa/cqa_train.json")),
    reason="../shared/data absent: no dolly sample, GPT-2 tokenizer or CQA rationales")
TINY_GPT2 = {"model_type": "gpt2", "vocab_size": 100, "bos_token_id": 99, "eos_token_id": 99, "n_positions": 32,
             "n_embd": 16, "n_layer": 1, "n_head": 2}


def write_stage(check_dir: Path, name: str, files: dict | None = None, kind: str = "train", status: int = 0) -> Path:
    """A stage line in stages.jsonl and its run folder holding `files` ({file name: a JSON object,
    or a list of records for a .jsonl})."""
    run = check_dir / "runs" / name
    run.mkdir(parents=True)
    for filename, content in (files or {}).items():
        path = run / filename
        if isinstance(content, list):
            path.write_text("".join(json.dumps(record) + "\n" for record in content))
        else:
            path.write_text(json.dumps(content))
    with open(check_dir / "stages.jsonl", "a") as stages:
        stages.write(json.dumps({"stage": name, "kind": kind, "run": str(run), "config": "zero1_bf16",
                                 "status": status, "started": 100.0, "ended": 112.5}) + "\n")
    return run


def train_files(model: Path, losses: list[float], **final) -> dict:
    return {"config.json": {"model_path": str(model), "batch_size": 4},
            "log.jsonl": [{"step": k + 1, "loss": loss} for k, loss in enumerate(losses)]
            + [{"event": "eval", "step": len(losses), "valid_loss": 1.0}],
            "final.json": {"steps": len(losses), "tokens": 4000, "skipped_steps": 0, "deepspeed_skipped_steps": 0,
                           "peak_memory_mib": 512.0, "train_seconds": 2.0, "evaluations": [], **final}}


@pytest.fixture
def model(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_GPT2))
    return folder


def report(check_dir: Path, *flags: str) -> tuple[int, dict, str]:
    status = gpu_check_report.main([str(check_dir), "--gpu-name", "NVIDIA H200", *flags])
    return status, json.loads((check_dir / "report.json").read_text()), (check_dir / "report.md").read_text()


def test_a_healthy_run_passes_with_its_speed_mfu_and_overflow_skips(tmp_path, model):
    check = tmp_path / "check"
    check.mkdir()
    files = train_files(model, [10.0, 9.0, 8.5, 8.0], deepspeed_skipped_steps=2)  # two fp16 loss-scale overflows
    write_stage(check, "sft", files)
    status, data, text = report(check)
    row = data["stages"][0]
    parameters = gpu_check_report.parameter_count(str(model))
    assert status == 0 and row["problems"] == [] and "All stages passed." in text
    assert parameters == 100 * 16 + 32 * 16 + 12 * 16 * 16 + 13 * 16 + 2 * 16  # wte, wpe, one block, final norm
    assert row["tokens_per_s"] == 2000.0 and row["seconds_per_sample"] == 2.0 / 16
    assert math.isclose(row["mfu"], 6 * parameters * 4000 / 2.0 / 989e12)
    assert (row["skipped_nonfinite"], row["skipped_overflow"]) == (0, 2)
    assert (row["loss_first"], row["loss_last"]) == (9.5, 8.25) and data["peak_tflops"] == 989.0
    assert "| sft | zero1_bf16 | 12.5 | 2,000 |" in text and "| 0 / 2 | 9.5 → 8.25 | ok |" in text


def test_a_nan_a_flat_loss_a_crash_and_an_unfinished_run_each_fail(tmp_path, model):
    check = tmp_path / "check"
    check.mkdir()
    write_stage(check, "nan", train_files(model, [10.0, math.nan, 8.0, 7.0], skipped_steps=1,
                                          deepspeed_skipped_steps=1))
    write_stage(check, "flat", train_files(model, [10.0, 9.0, 9.5, 9.5]))
    write_stage(check, "crashed", status=137)
    unfinished = train_files(model, [10.0, 9.0])
    del unfinished["final.json"]
    write_stage(check, "unfinished", unfinished)
    status, data, text = report(check)
    problems = {row["stage"]: " ".join(row["problems"]) for row in data["stages"]}
    assert status == 1 and data["failed"] == ["nan", "flat", "crashed", "unfinished"]
    assert "non-finite: loss at step 2" in problems["nan"] and "1 steps skipped for a non-finite" in problems["nan"]
    assert data["stages"][0]["skipped_overflow"] == 0  # DeepSpeed's skip was the guard's, not an overflow
    assert problems["flat"] == "loss does not fall (9.5 → 9.5)"
    assert problems["crashed"] == "exited with status 137 (logs/crashed.log)"
    assert problems["unfinished"] == "no final.json: the run did not finish"
    assert "**FAILED: nan, flat, crashed, unfinished**" in text


def test_on_policy_loss_sampling_speed_and_the_other_kinds(tmp_path, model):
    """MiniLLM's loss is its rollout terms (pg + reg); SeqKD and evaluation rows come from their
    own records."""
    check = tmp_path / "check"
    check.mkdir()
    steps = [{"step": k + 1, "pg_loss": pg, "reg_loss": 0.5, "pt_loss": 9.0, "rollout_seconds": 4.0}
             for k, pg in enumerate([0.2, 0.1, 0.0, -0.1])]
    final = {"steps": 4, "rollout_tokens": 800, "ptx_tokens": 200, "skipped_steps": 0, "deepspeed_skipped_steps": 0,
             "peak_memory_mib": 1.0, "train_seconds": 10.0}
    write_stage(check, "minillm", {"config.json": {"model_path": str(model), "batch_size": 2}, "log.jsonl": steps,
                                   "final.json": final})
    write_stage(check, "seqkd", {"generation.json": {"seconds": 4.0, "tokens": 1000, "generated_rows": 8,
                                                     "peak_memory_mib": 64.0}}, kind="generate")
    write_stage(check, "eval", {"eval_log.jsonl": [
        {"event": "eval", "set": "dolly", "rows": 4, "seconds": 2.0, "tokens": 100, "peak_memory_mib": 10.0},
        {"event": "eval", "set": "vicuna", "rows": 4, "seconds": 2.0, "tokens": 300, "peak_memory_mib": 12.0}]},
                kind="eval")
    status, data, _ = report(check, "--peak-tflops", "100")
    minillm, seqkd, evaluation = data["stages"]
    assert status == 0 and data["peak_tflops"] == 100.0
    assert (minillm["loss_first"], minillm["loss_last"]) == pytest.approx((0.65, 0.45))
    assert minillm["tokens_per_s"] == 100.0 and minillm["sampling_tokens_per_s"] == 200.0
    assert (seqkd["tokens_per_s"], seqkd["seconds_per_sample"]) == (250.0, 0.5)
    assert evaluation["tokens_per_s"] == 100.0 and evaluation["sets"]["vicuna"]["tokens_per_s"] == 150.0
    assert evaluation["peak_memory_mib"] == 12.0


def test_peak_flops_by_gpu_name_or_override():
    assert gpu_check_report.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert gpu_check_report.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert gpu_check_report.peak_tflops("Some Future GPU", None) is None
    assert gpu_check_report.peak_tflops("NVIDIA H200", 500.0) == 500.0
    assert gpu_check_report.peak_tflops(None, None) is None  # CPU: MFU n/a


@pytest.mark.long
@needs_shared
def test_cpu_smoke_runs_every_stage_kind_through_its_script(tmp_path):
    env = {**os.environ, "GPU_CHECK_DIR": str(tmp_path / "check"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-smoke"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "check" / "report.json").read_text())
    rows = {row["stage"]: row for row in data["stages"]}
    assert set(rows) == {"models", "data-dolly", "data-dss", "sft-xl-zero3_bf16", "kd-zero1_fp32", "seqkd",
                         "minillm-zero1_bf16", "dss-kd", "eval"}  # one stage of each kind
    assert all(not row["problems"] for row in rows.values())
    for name in ("sft-xl-zero3_bf16", "kd-zero1_fp32", "minillm-zero1_bf16", "dss-kd"):
        row = rows[name]
        assert row["tokens_per_s"] > 0 and row["peak_memory_mib"] > 0 and row["loss_last"] < row["loss_first"], row
        assert (row["mfu"] is None) == (data["device"] == "cpu") and row["skipped_overflow"] == 0
    assert rows["minillm-zero1_bf16"]["sampling_tokens_per_s"] > 0
    assert rows["seqkd"]["samples"] == 8 and rows["eval"]["sets"]["dolly"]["rows"] == 4
    assert set(rows["eval"]["sets"]) >= {"dolly", "self-inst", "vicuna"}
    assert "All stages passed." in (tmp_path / "check" / "report.md").read_text()
    assert not list((tmp_path / "check" / "runs").glob("*/resume"))  # checkpoints go after each stage


# Records each `python` command line as one JSON line and runs nothing (`-m minillm.train.checkpoint
# resolve PATH` answers PATH, as it does for a model folder; the recipes every script reads are read).
STAND_IN_PYTHON = """#!/usr/bin/env bash
if [[ $1 == -m && $2 == minillm.recipes ]]; then exec "$REAL_PYTHON" "$@"; fi
if [[ $1 == -m && $2 == minillm.train.checkpoint ]]; then echo "$4"; exit 0; fi
"$REAL_PYTHON" -c 'import json, os, sys; print(json.dumps(sys.argv[1:]), file=open(os.environ["COMMANDS"], "a"))' "$@"
"""


@needs_shared
def test_the_gpu_run_launches_every_stage_at_paper_settings(tmp_path):
    """The GPU path cannot run here: its command lines, recorded by a stand-in python (bash only)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(STAND_IN_PYTHON)
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_PYTHON": shutil.which("python3"),
           "COMMANDS": str(tmp_path / "commands.jsonl"), "GPU_CHECK_DIR": str(tmp_path / "check")}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = [json.loads(line) for line in (tmp_path / "commands.jsonl").read_text().splitlines()]

    def launched(entrypoint: str) -> list[dict[str, str]]:
        """Each launch of `entrypoint` as {flag: value}."""
        return [dict(zip(c[1::2], c[2::2])) for c in commands if c[0] == entrypoint]

    def configs(runs: list[dict[str, str]]) -> list[str]:
        return [Path(run["--deepspeed-config"]).stem for run in runs]

    sft, kd, minillm = launched("train_sft.py"), launched("train_kd.py"), launched("train_minillm.py")
    assert configs(sft) == ["zero1_fp16", "zero2_bf16", "zero3_bf16"]
    assert all(run["--model-path"].endswith("models/teacher") and run["--lr"] == "5e-5" and run["--total-steps"] == "12"
               and (run["--batch-size"], run["--micro-batch-size"], run["--max-length"]) == ("32", "2", "512")
               for run in sft)
    assert configs(kd) == ["zero1_fp16", "zero1_bf16", "zero1_bf16"]  # KD twice, then DSS-KD
    assert "--rationale-data-dir" in kd[2] and all(run["--teacher-model-path"].endswith("models/teacher") for run in kd)
    assert configs(minillm) == ["zero1_fp16", "zero1_bf16", "zero3_bf16"]
    assert all((run["--num-rollouts"], run["--batch-size"], run["--ppo-epochs"], run["--total-steps"], run["--lr"],
                run["--warmup-steps"], run["--rollout-batch-size"]) == ("256", "64", "4", "8", "5e-6", "0", "128")
               and "--ptx-data-dir" in run for run in minillm)
    generate, = launched("tools/generate.py")
    assert generate["--dev-num"] == "900" and generate["--dtype"] == "bf16" and generate["--max-new-tokens"] == "256"
    evaluate, = launched("evaluate.py")
    assert evaluate["--max-eval-rows"] == "100" and evaluate["--dtype"] == "bf16"
    built = [c[c.index("--config") + 1] for c in commands if c[0] == "tools/make_random_model.py"]
    assert built == ["configs/models/gpt2-base.json", "configs/models/gpt2-xl.json"]
    assert commands[-1][:2] == ["benchmarks/gpu_check_report.py", str(tmp_path / "check")]
