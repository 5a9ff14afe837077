"""The benchmarks run (they call the library's hot paths directly, so a refactor can break them)."""
from __future__ import annotations

import json
import subprocess
import sys

from world import REPO


def test_bench_minillm_runs_at_toy_shapes(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "benchmarks/bench_minillm.py", "--preset", "tiny", "--repeats", "1",
                             "--batch", "4", "--prompt-len", "8", "--new-tokens", "8", "--num-rollouts", "8",
                             "--mini-batch", "4", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "optimizer step on 4 rollouts" in result.stdout
    assert json.loads(out.read_text())


def test_bench_methods_runs_at_toy_shapes(tmp_path):
    out = tmp_path / "methods.json"
    result = subprocess.run([sys.executable, "benchmarks/bench_methods.py", "--preset", "tiny", "--repeats", "1",
                             "--batch", "2", "--prompt-len", "4", "--new-tokens", "4", "--num-rollouts", "4",
                             "--rollout-batch", "4", "--ppo-epochs", "1", "--out", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    methods = json.loads(out.read_text())["methods"]
    assert {"sft", "kd", "kd_cached", "minillm"} <= set(methods)
    assert methods["sft"]["ratio_to_sft"] == 1.0 and "ms_per_rollout" in methods["minillm"]
    assert all(figures["floor_ms_per_sample"] > 0 and figures["ratio_to_floor"] > 0 for figures in methods.values())
