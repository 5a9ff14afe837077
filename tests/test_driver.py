"""The main command end to end: scripts/run_comparison.sh, tiny preset at a minimal size (a few
steps per stage), with its default METHODS, then a rerun that skips every stage (--force:
tests/test_stages.py). The opt-in arms (METHODS=all) are wired as their dry run in
tests/test_custom_preset.py says, and trained by tests/test_train_kd.py and test_train_minillm.py."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from world import REPO

pytestmark = pytest.mark.slow

MINIMAL = {  # the tiny preset shrunk to a few steps per stage; the teachers get just enough to
    # write parsable chain of thought (the DSS data stage fails when no rationale parses)
    "N_TRAIN": "120", "N_DEV": "24", "N_TEST": "16", "N_PRETRAIN": "60", "DEV_NUM": "24",
    "TEACHER_EPOCHS": "8", "DSS_TEACHER_EPOCHS": "12", "DSS_TEACHER_LR": "3e-3", "STUDENT_EPOCHS": "1",
    "BATCH_SIZE": "16",
    "MICRO_BATCH_SIZE": "16", "TEACHER_MICRO_BATCH": "16", "MINILLM_STEPS": "2", "NUM_ROLLOUTS": "16",
    "MINI_BATCH": "8", "PPO_EPOCHS": "1", "MINILLM_EVAL_INTERVAL": "2", "EVAL_SEEDS": "10 20",
    "EVAL_GEN_NUM": "4", "MAX_LENGTH": "112", "MAX_PROMPT_LENGTH": "80",
}
METHODS = ("sft", "kd-forward_kl", "seqkd", "minillm", "sft-continued", "dss", "dss-gold", "dss-kd", "dss-minillm",
           "dss-continued")


def drive(work, *args: str) -> str:
    env = {**{k: v for k, v in os.environ.items() if k != "METHODS"}, **MINIMAL, "WORK": str(work),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
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
    for label in ("SFT", "KD (forward KL)", "SeqKD", "MiniLLM", "SFT (continued)", "DSS", "DSS (gold labels)",
                  "DSS-KD", "DSS-MiniLLM", "DSS (continued)", "Teacher", "Majority answer"):
        assert f"| {label} |" in table, label
    finals = {}
    for method in METHODS:
        finals[method] = json.loads((results / "runs" / method / "seed10" / "final.json").read_text())
        summary = json.loads((results / "eval" / method / "seed10" / "summary.json").read_text())
        assert summary["seeds"] == [10, 20] and "accuracy_strict" in summary["sets"]["tiny"]
        assert summary["prompt_prefix"] == ("[label] " if method.startswith("dss") else "")
    # the control arms add exactly the on-policy runs' optimizer steps, on as many sequences per step
    for on_policy, control in (("minillm", "sft-continued"), ("dss-minillm", "dss-continued")):
        assert finals[control]["steps"] == finals[on_policy]["steps"] == int(MINIMAL["MINILLM_STEPS"])
        control_config = json.loads((results / "runs" / control / "seed10" / "config.json").read_text())
        assert control_config["batch_size"] == int(MINIMAL["MINI_BATCH"])
        # ... and the same pretraining corpus tokens (the same chunks, with the same corpus term)
        assert finals[control]["ptx_tokens"] == finals[on_policy]["ptx_tokens"] > 0
    assert finals["minillm"]["ptx_tokens"] > 0 and set(finals["dss"]["tokens_by_stream"]) == {"label", "rationale"}
    # each training seed draws its own student initialisation
    assert (tmp_path / "checkpoints" / "student-init" / "seed10" / "model.safetensors").is_file()
    assert "[stage dss-teacher-data] running" in first
    stats = json.loads((results / "data" / "dss-teacher" / "raw.stats.json").read_text())
    assert stats["rationale_rows"] > 0 and stats["consistency_rate"] is not None

    second = drive(tmp_path)
    stages = [line for line in second.splitlines() if line.startswith("[stage ")]
    assert stages and all("skipped: outputs exist and inputs are unchanged" in line for line in stages), stages
