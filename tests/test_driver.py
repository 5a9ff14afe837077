"""The main command end to end: scripts/run_comparison.sh, tiny preset at a minimal size (a few
steps per stage), two stages at a time, with its default METHODS; then, on that finished WORK,
what a careful user does to it: a second driver while one holds the WORK, a run stopped by
SIGTERM after its changed settings reached the teacher, results of an earlier plan left in the
folder, a rerun that must skip everything. (submitit's executor: the cross-tokenizer driver test in
tests/test_custom_preset.py.)

The opt-in arms (METHODS=all) are planned as tests/test_plan.py says and trained by
tests/test_train_kd.py and tests/test_train_minillm.py."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from world import REPO

from minillm.locks import HolderLock

pytestmark = pytest.mark.slow

MINIMAL = {  # the tiny preset shrunk to a few steps per stage; the teachers get just enough to
    # write parsable chain of thought (the DSS data stage fails when no rationale parses)
    "N_TRAIN": "120", "N_DEV": "24", "N_TEST": "16", "N_PRETRAIN": "60", "DEV_NUM": "24",
    "TEACHER_EPOCHS": "8", "DSS_TEACHER_EPOCHS": "12", "DSS_TEACHER_LR": "3e-3", "STUDENT_EPOCHS": "1",
    "BATCH_SIZE": "16", "MICRO_BATCH_SIZE": "16", "TEACHER_MICRO_BATCH": "16", "MINILLM_STEPS": "2",
    "NUM_ROLLOUTS": "16", "MINI_BATCH": "8", "PPO_EPOCHS": "1", "MINILLM_EVAL_INTERVAL": "2", "EVAL_SEEDS": "10 20",
    "EVAL_GEN_NUM": "4", "MAX_LENGTH": "112", "MAX_PROMPT_LENGTH": "80", "JOBS": "2",
    "METHODS": "default",  # every primary arm (the tiny preset's own METHODS holds the 15-minute subset)
}
METHODS = ("sft", "kd-forward_kl", "seqkd", "minillm", "sft-continued", "dss", "dss-gold", "dss-kd", "dss-minillm",
           "dss-continued")
DRIVER_VARIABLES = set(MINIMAL) | {"METHODS", "JOBS", "EXECUTOR", "TEACHER_EPOCHS", "WORK", "DS_CONFIG", "FORCE"}


def environment(work: Path, **changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DRIVER_VARIABLES}
    return {**env, **MINIMAL, "WORK": str(work), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **changes}


def drive(work: Path, *args: str, expect: int = 0, **changes: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "scripts/run_comparison.sh", str(REPO), *args], cwd=REPO,
                            env=environment(work, **changes), capture_output=True, text=True, timeout=1800)
    assert result.returncode == expect, result.stdout[-6000:] + result.stderr[-6000:]
    return result


def stage_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[stage ")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("work")
    drive(work)
    return work


def test_the_main_command_runs_every_default_method(finished):
    results = finished / "results" / "tiny"
    for name in ("comparison.md", "comparison.csv", "comparison.json", "plots/rougeL.png", "plots/accuracy.png",
                 "plots/training_curves.png", "driver.json", "driver.log", "driver.jsonl", "logs/teacher.log"):
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
        best = json.loads((results / "runs" / method / "seed10" / "best.json").read_text())
        assert not Path(best["rougeL"]["path"]).is_absolute()  # the run folder moved after building
    # the control arms add exactly the on-policy runs' optimizer steps, on as many sequences per step
    for on_policy, control in (("minillm", "sft-continued"), ("dss-minillm", "dss-continued")):
        assert finals[control]["steps"] == finals[on_policy]["steps"] == int(MINIMAL["MINILLM_STEPS"])
        control_config = json.loads((results / "runs" / control / "seed10" / "config.json").read_text())
        assert control_config["batch_size"] == int(MINIMAL["MINI_BATCH"])
        assert finals[control]["ptx_tokens"] == finals[on_policy]["ptx_tokens"] > 0  # the same corpus chunks
    assert finals["minillm"]["ptx_tokens"] > 0 and set(finals["dss"]["tokens_by_stream"]) == {"label", "rationale"}
    assert (finished / "checkpoints" / "student-init" / "seed10" / "model.safetensors").is_file()
    stats = json.loads((results / "data" / "dss-teacher" / "raw.stats.json").read_text())
    assert stats["rationale_rows"] > 0 and stats["consistency_rate"] is not None
    events = [json.loads(line) for line in (results / "driver.jsonl").read_text().splitlines()]
    starts = {event["stage"]: event["time"] for event in events if event["event"] == "started"}
    ends = {event["stage"]: event["time"] for event in events if event["event"] == "done" and "stage" in event}
    assert any(starts[a] < ends[b] and starts[b] < ends[a] for a in starts for b in starts if a < b), \
        "JOBS=2 never ran two stages at once"
    assert not list(results.rglob("*.building-*")) and not list(results.glob("stages/*.running.json"))


def test_a_second_driver_on_the_same_work_is_refused_naming_the_first(finished):
    lock = HolderLock(finished / ".driver.lock")
    lock.acquire()
    try:
        refused = drive(finished, expect=1)
    finally:
        lock.release()
    assert f"another driver is running on WORK={finished}: pid {os.getpid()}" in refused.stderr
    assert not stage_lines(refused.stdout)


def test_the_calibration_benchmark_sets_the_estimate_beside_the_runs_stage_times(finished):
    """benchmarks/budget_calibration.py costs a finished run with the driver's own plan report and
    reads the times the driver measured (before the next test changes the run)."""
    result = subprocess.run([sys.executable, "benchmarks/budget_calibration.py", "--run", str(finished), "--gflops",
                             "60"], cwd=REPO, env=environment(finished), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| teacher | teacher-sft |" in result.stdout and "| eval-sft-seed10 | evaluation |" in result.stdout
    assert "sum of stage times: estimate" in result.stdout and "wall with JOBS=2: estimate" in result.stdout


def test_a_stopped_run_costs_no_finished_stage_and_the_report_reads_only_the_current_plan(finished):
    results = finished / "results" / "tiny"
    teacher = results / "runs" / "teacher" / "seed10"
    before = (teacher / "best.json").read_text()
    # A run whose changed settings reach the teacher, stopped by SIGTERM while the teacher trains.
    process = subprocess.Popen(["bash", "scripts/run_comparison.sh", str(REPO)], cwd=REPO, text=True,
                               env=environment(finished, TEACHER_EPOCHS="9"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    for line in process.stdout:
        if line.startswith("[stage teacher] running"):
            deadline = time.time() + 300
            while not list(teacher.parent.glob(".seed10.building-*/*")) and time.time() < deadline:
                time.sleep(0.5)  # until the new teacher has started writing its building folder
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stdout.read()
    assert process.wait(timeout=120) == 128 + signal.SIGTERM, rest
    assert "[stage teacher] stopped (SIGTERM)" in rest
    orphans = [pid for pid in os.listdir("/proc") if pid.isdigit() and str(finished).encode()
               in _cmdline(pid) and int(pid) != os.getpid()]
    assert not orphans, "the teacher's training went on after the driver stopped"
    assert (teacher / "best.json").read_text() == before and list(teacher.parent.glob(".seed10.building-*"))
    # Results of an earlier plan (another TRAIN_SEEDS) left in the folder.
    for kind in ("eval", "runs"):
        shutil.copytree(results / kind / "sft" / "seed10", results / kind / "sft" / "seed20")
    again = drive(finished)
    lines = stage_lines(again.stdout)
    assert lines and all("skipped: outputs exist and inputs are unchanged" in line for line in lines), lines
    comparison = json.loads((results / "comparison.json").read_text())
    sft = next(method for method in comparison["methods"] if method["key"] == "sft")
    assert sft["evaluated_runs"] == ["seed10"] and sft["trained_runs"] == ["seed10"]


def without_paths(sets: dict) -> dict:
    """The scores of each set, without the path it was read from (each WORK has its own)."""
    return {name: {key: value for key, value in entry.items() if key != "path"} for name, entry in sets.items()}


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
