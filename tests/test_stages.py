"""minillm/experiments/stages.py: skip when nothing changed, rerun when an input, the command, a tracked
variable or a script changes, --force, and resuming an interrupted stage."""
from __future__ import annotations

import sys
from pathlib import Path

from minillm.experiments.stages import run_stage

WRITE = "import pathlib, sys; out = pathlib.Path(sys.argv[1]); out.mkdir(exist_ok=True); " \
        "(out / 'n').write_text(str(len(list(out.iterdir()))) + sys.argv[2])"


def stage(tmp_path: Path, capsys, *, force=False, word="a", env=()) -> tuple[int, str]:
    """Run the test stage; returns its status and everything it printed."""
    status = run_stage("s", [sys.executable, "-c", WRITE, str(tmp_path / "out"), word], [tmp_path / "in.txt"],
                       [tmp_path / "out"], tmp_path / "stages", force, list(env))
    printed = capsys.readouterr()
    return status, printed.out + printed.err


def test_skips_unchanged_and_reruns_on_change(tmp_path, capsys, monkeypatch):
    (tmp_path / "in.txt").write_text("x")
    assert stage(tmp_path, capsys)[1].startswith("[stage s] running (no previous run)")
    assert "skipped: outputs exist and inputs are unchanged" in stage(tmp_path, capsys)[1]

    (tmp_path / "in.txt").write_text("longer input")
    out = stage(tmp_path, capsys)[1]
    assert f"changed: input {tmp_path / 'in.txt'}" in out
    assert "changed: command" in stage(tmp_path, capsys, word="b")[1]
    monkeypatch.setenv("KNOB", "1")
    assert "changed: $KNOB" in stage(tmp_path, capsys, word="b", env=["KNOB"])[1]
    assert "skipped" in stage(tmp_path, capsys, word="b", env=["KNOB"])[1]
    assert "running (forced)" in stage(tmp_path, capsys, word="b", env=["KNOB"], force=True)[1]
    # each rerun started from an empty output folder: the file counts only itself
    assert (tmp_path / "out" / "n").read_text() == "0b"



def test_a_tracked_knob_counts_only_once_set(tmp_path, capsys, monkeypatch):
    """Tracking one more variable leaves the fingerprint of every stage run without it as it was
    (so already-computed results are reused); exporting it then reruns the stage."""
    (tmp_path / "in.txt").write_text("x")
    monkeypatch.delenv("USER_KNOB", raising=False)
    stage(tmp_path, capsys)
    assert "skipped" in stage(tmp_path, capsys, env=["USER_KNOB"])[1]
    monkeypatch.setenv("USER_KNOB", "0.3")
    assert "changed: $USER_KNOB" in stage(tmp_path, capsys, env=["USER_KNOB"])[1]

def test_missing_outputs_rerun_and_missing_inputs_fail(tmp_path, capsys):
    (tmp_path / "in.txt").write_text("x")
    stage(tmp_path, capsys)
    (tmp_path / "out" / "n").unlink()
    (tmp_path / "out").rmdir()
    assert "running (outputs missing)" in stage(tmp_path, capsys)[1]
    (tmp_path / "in.txt").unlink()
    status, printed = stage(tmp_path, capsys)
    assert status == 1 and f"missing inputs {tmp_path / 'in.txt'}" in printed


def test_a_failed_stage_is_resumed_with_its_outputs_kept(tmp_path, capsys):
    (tmp_path / "in.txt").write_text("x")
    fail = "import pathlib, sys; out = pathlib.Path(sys.argv[1]); out.mkdir(exist_ok=True); " \
           "marker = out / 'partial'; sys.exit(0 if marker.exists() else (marker.touch() or 3))"
    command = [sys.executable, "-c", fail, str(tmp_path / "out")]
    args = ([tmp_path / "in.txt"], [tmp_path / "out"], tmp_path / "stages")
    assert run_stage("r", command, *args) == 3
    assert (tmp_path / "stages" / "r.running.json").exists() and not (tmp_path / "stages" / "r.json").exists()
    assert run_stage("r", command, *args) == 0  # the partial output survived: the command could finish
    assert "resuming an interrupted run" in capsys.readouterr().out
    assert (tmp_path / "stages" / "r.json").exists() and not (tmp_path / "stages" / "r.running.json").exists()
