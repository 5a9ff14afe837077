"""minillm/experiments/stages.py: skip when nothing changed, rerun when an input, the command, a tracked
variable or a script changes, --force, and resuming an interrupted stage."""
from __future__ import annotations

import sys
from pathlib import Path

from minillm.experiments import stages
from minillm.experiments.stages import fingerprint_parts, run_stage

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


def test_what_a_stage_script_sources_runs_or_reads_from_the_recipes_is_part_of_its_fingerprint(
        tmp_path, monkeypatch, capsys):
    """Editing scripts/lib/*.sh (a launcher's defaults), a script a stage script runs, or a recipe
    value it reads reruns that stage, as editing the stage script itself does; other stages keep
    their fingerprint."""
    monkeypatch.chdir(tmp_path)  # the driver runs its stages from the repository root
    files = {"scripts/kd/kd_base.sh": 'source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"\n'
                                      'source "$BASE_PATH/scripts/lib/kd.sh"\n'
                                      'DEV_NUM=1 bash scripts/tools/process.sh "$BASE_PATH"\n',
             "scripts/lib/common.sh": "# PAPER_SFT_EPOCHS in a comment is not read\n",
             "scripts/lib/kd.sh": "LR=${LR:-$PAPER_SFT_LR}\n", "scripts/tools/process.sh": "echo process\n",
             "scripts/eval/run_eval.sh": "source scripts/lib/gone.sh\n"}
    for path, text in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    kd, evaluation = ["env", "LR=1", "bash", "scripts/kd/kd_base.sh", "."], ["bash", "scripts/eval/run_eval.sh", "."]
    before = fingerprint_parts(kd, [], []), fingerprint_parts(evaluation, [], [])
    assert set(before[0]) == {"command", "recipe PAPER_SFT_LR", *(f"script {path}" for path in files if "eval" not in path)}
    assert "scripts/lib/gone.sh, which is not there" in capsys.readouterr().err
    for path in ("scripts/lib/kd.sh", "scripts/tools/process.sh"):
        Path(path).write_text(Path(path).read_text() + "# changed\n")
        after = fingerprint_parts(kd, [], []), fingerprint_parts(evaluation, [], [])
        assert after[0][f"script {path}"] != before[0][f"script {path}"] and after[1] == before[1]
    monkeypatch.setattr(stages, "shell_values", lambda: {"PAPER_SFT_LR": "1e-3", "PAPER_SFT_EPOCHS": "20"})
    after = fingerprint_parts(kd, [], [])
    assert after["recipe PAPER_SFT_LR"] != before[0]["recipe PAPER_SFT_LR"]
