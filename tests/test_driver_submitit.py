"""The SLURM executor's code path at a minimal size: EXECUTOR=submitit-local (each stage a submitit
job, run as a local process) one stage at a time gives the evaluations of the local pool's two at
a time. A file of its own, so that it runs beside tests/test_driver.py (pytest -n). (That an edited
DeepSpeed config reruns exactly the stages that read it: tests/test_plan.py and tests/test_stages.py.)"""
from __future__ import annotations

import json

import pytest
from test_driver import drive, without_paths

pytestmark = pytest.mark.slow


def test_submitit_one_stage_at_a_time_gives_the_evaluations_of_the_local_pool(tmp_path):
    pool, serial = tmp_path / "pool", tmp_path / "serial"
    drive(pool, METHODS="sft", JOBS="2")
    drive(serial, METHODS="sft", JOBS="1", EXECUTOR="submitit-local")
    assert list((serial / "results/tiny/submitit").rglob("*.pkl")), "no submitit job ran"
    assert not list((pool / "results/tiny").glob("submitit"))
    for method, run in (("untrained", "init"), ("teacher", "seed10"), ("sft", "seed10")):
        parallel, one_at_a_time = (json.loads((root / "results/tiny/eval" / method / run / "summary.json").read_text())
                                   for root in (pool, serial))
        assert without_paths(parallel["sets"]) == without_paths(one_at_a_time["sets"]), method
