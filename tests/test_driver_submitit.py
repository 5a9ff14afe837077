"""The SLURM executor's code path at a minimal size: a stage run as a submitit job
(EXECUTOR=submitit-local, a local process) computes what the local pool computes. A file of its
own, so that it runs beside tests/test_driver.py (pytest -n). (That an edited DeepSpeed config
reruns exactly the stages that read it: tests/test_plan.py and tests/test_stages.py.)"""
from __future__ import annotations

import json
import shutil

import pytest
from test_driver import drive, stage_lines, without_paths

pytestmark = pytest.mark.slow


def test_a_stage_run_as_a_submitit_job_gives_what_the_local_pool_gave(tmp_path):
    small = {"METHODS": "sft", "TEACHER_EPOCHS": "1"}  # equal results need no competent teacher
    drive(tmp_path, JOBS="2", **small)
    results = tmp_path / "results/tiny"
    assert not (results / "submitit").exists()
    pooled = json.loads((results / "eval/sft/seed10/summary.json").read_text())
    # The SFT student and its evaluation again, one at a time, each a submitit job: their outputs
    # are gone, nothing else changed, so only they (and the report) rerun.
    for output in (results / "runs/sft/seed10", results / "eval/sft/seed10"):
        shutil.rmtree(output)
    again = drive(tmp_path, JOBS="1", EXECUTOR="submitit-local", **small)
    reran = {line.split("]")[0].removeprefix("[stage ") for line in stage_lines(again.stdout) if "skipped" not in line}
    assert {"sft-seed10", "eval-sft-seed10"} <= reran and not {"teacher", "eval-teacher-seed10"} & reran, reran
    assert list((results / "submitit").rglob("*.pkl")), "no submitit job ran"
    one_at_a_time = json.loads((results / "eval/sft/seed10/summary.json").read_text())
    assert without_paths(one_at_a_time["sets"]) == without_paths(pooled["sets"])
