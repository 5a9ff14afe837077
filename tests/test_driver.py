"""The main command end to end: scripts/run_comparison.sh, tiny preset at a minimal size (a few
steps per stage), then a rerun that skips every stage (--force: tests/test_stages.py)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from world import REPO

pytestmark = pytest.mark.slow

MINIMAL = {  # the tiny preset shrunk to a few steps per stage
    "N_TRAIN": "120", "N_DEV": "24", "N_TEST": "16", "N_PRETRAIN": "60", "DEV_NUM": "24",
    "TEACHER_EPOCHS": "1", "DSS_TEACHER_EPOCHS": "1", "STUDENT_EPOCHS": "1", "BATCH_SIZE": "16",
    "MICRO_BATCH_SIZE": "16", "TEACHER_MICRO_BATCH": "16", "MINILLM_STEPS": "2", "NUM_ROLLOUTS": "16",
    "MINI_BATCH": "8", "PPO_EPOCHS": "1", "MINILLM_EVAL_INTERVAL": "2", "EVAL_SEEDS": "10 20",
    "EVAL_GEN_NUM": "4", "MAX_LENGTH": "112", "MAX_PROMPT_LENGTH": "80",
}
METHODS = ("sft", "kd-forward_kl", "seqkd", "minillm", "dss", "dss-kd", "dss-minillm")


def drive(work, *args: str) -> str:
    env = {**os.environ, **MINIMAL, "WORK": str(work), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(["bash", "scripts/run_comparison.sh", str(REPO), *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return result.stdout


def test_the_main_command_runs_every_method_then_skips_everything(tmp_path):
    first = drive(tmp_path)
    results = tmp_path / "results" / "tiny"
    for name in ("comparison.md", "comparison.csv", "comparison.json", "plots/rougeL.png",
                 "plots/accuracy.png", "plots/training_curves.png"):
        assert (results / name).is_file(), name
    table = (results / "comparison.md").read_text()
    for label in ("SFT", "KD (forward KL)", "SeqKD", "MiniLLM", "DSS", "DSS-KD", "DSS-MiniLLM", "Teacher"):
        assert f"| {label} |" in table, label
    assert "Accuracy tiny" in table  # the reasoning families are scored by answer accuracy
    for method in METHODS:
        assert (results / "runs" / method / "seed10" / "final.json").is_file(), method
        summary = json.loads((results / "eval" / method / "seed10" / "summary.json").read_text())
        assert summary["seeds"] == [10, 20]
        assert summary["prompt_prefix"] == ("[label] " if method.startswith("dss") else "")
    assert "[stage dss-teacher-data] running" in first

    second = drive(tmp_path)
    stages = [line for line in second.splitlines() if line.startswith("[stage ")]
    assert stages and all("skipped: outputs exist and inputs are unchanged" in line for line in stages), stages
