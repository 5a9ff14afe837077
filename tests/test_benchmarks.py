"""The benchmarks run (they call the library's hot paths directly, so a refactor can break them)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from world import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_peers  # noqa: E402


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


def test_bench_peers_figures_drop_the_warm_up_and_weight_gkd_steps_by_lambda():
    on, off = bench_peers.ON_POLICY, bench_peers.OFF_POLICY
    run = {"durations": [9.6, 3.2, 6.4, 3.2, 6.4, 3.2], "kinds": [on, off, on, off, on, off]}
    assert bench_peers.ms_per_sample(run, "sft", warmup=1, batch=32) == pytest.approx(1000 * 3.2 / 32)
    # λ 0.5: half the median on-policy step (6.4 s) and half the median off-policy one (3.2 s)
    assert bench_peers.ms_per_sample(run, "gkd", warmup=1, batch=32) == pytest.approx(1000 * 4.8 / 32)
    with pytest.raises(SystemExit, match="no on-policy step after the warm-up"):
        bench_peers.ms_per_sample({"durations": [1.0, 2.0], "kinds": [off, off]}, "gkd", warmup=0, batch=32)


def test_bench_peers_says_how_to_install_trl_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # import trl raises ImportError
    assert 'pip install -e ".[peers]"' in bench_peers.trl_missing()


def test_bench_divergence_runs_at_toy_shapes(tmp_path):
    """The capped and uncapped chunkings give the same bits (exit 0) and a report a script reads."""
    out = tmp_path / "divergence.json"
    result = subprocess.run([sys.executable, "benchmarks/bench_divergence.py", "--vocab", "64", "5000", "--rows", "2",
                             "--length", "8", "--repeats", "1", "--out", str(out)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["vocab"]["5000"]["rows_per_chunk"] == 838 and report["vocab"]["64"]["same_bits"]
