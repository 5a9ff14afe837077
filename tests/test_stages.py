"""minillm/experiments/stages.py: a stage is skipped when nothing it depends on changed (the
content of its inputs, its command and variables, the code it runs), runs into building folders,
and replaces its outputs and record only on success; an interrupted stage resumes, an
interrupted swap is completed, no abort costs a finished stage."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from minillm.experiments.stages import (
    ContentHashes,
    Stage,
    StageBook,
    StageError,
    code_files,
    fingerprint_parts,
    imported_files,
    rewrite_outputs,
)


def make_stage(tmp_path: Path, word: str = "a", env: dict | None = None) -> Stage:
    return Stage("s", [sys.executable, "-c", "pass", word], [tmp_path / "out"], [tmp_path / "in.txt"], env or {})


def run(book: StageBook, stage: Stage, fail: bool = False, content: str = "new") -> str:
    """What the driver does with a stage, the command played by writing `content` into the
    building folder; returns the decision's reason ("unchanged" when skipped)."""
    decision = book.decide(stage)
    if decision.skip:
        return decision.reason
    book.begin(decision)
    building = decision.building[stage.outputs[0]]
    building.mkdir(exist_ok=True)
    (building / "result").write_text(content)
    if not fail:
        book.complete(decision, 1.0)
    return decision.reason


@pytest.fixture
def book(tmp_path) -> StageBook:
    (tmp_path / "in.txt").write_text("x")
    return StageBook(tmp_path / "stages", ContentHashes(tmp_path / "hashes.json"))


def test_skips_unchanged_and_says_what_changed(tmp_path, book):
    stage = make_stage(tmp_path)
    assert run(book, stage) == "no previous run" and (tmp_path / "out/result").read_text() == "new"
    assert run(book, stage) == "unchanged"
    (tmp_path / "in.txt").write_text("y")  # same size: the content decides, not size or time
    assert run(book, stage) == f"changed: input {tmp_path / 'in.txt'}"
    assert run(book, make_stage(tmp_path, word="b")) == "changed: command"
    assert run(book, make_stage(tmp_path, word="b", env={"LR": "1e-3"})) == "changed: $LR"
    assert run(book, make_stage(tmp_path, word="b", env={"LR": "1e-3", "MASTER_PORT": "29500"})) == "unchanged"
    assert book.decide(make_stage(tmp_path, word="b", env={"LR": "1e-3"}), force=True).reason == "forced"
    (tmp_path / "out/result").unlink()
    (tmp_path / "out").rmdir()
    assert run(book, make_stage(tmp_path, word="b", env={"LR": "1e-3"})) == "outputs missing"
    (tmp_path / "in.txt").unlink()
    with pytest.raises(StageError, match=f"missing inputs {tmp_path / 'in.txt'}"):
        book.decide(make_stage(tmp_path))


def test_a_failed_run_keeps_the_previous_outputs_and_record_then_resumes(tmp_path, book):
    stage = make_stage(tmp_path)
    run(book, stage, content="first")
    record = book.record("s")
    changed = make_stage(tmp_path, word="b")
    changed.resumable = True
    run(book, changed, fail=True, content="partial")  # e.g. killed mid-training
    assert (tmp_path / "out/result").read_text() == "first" and book.record("s") == record
    assert run(book, stage) == "unchanged"  # the old settings still find their finished stage
    decision = book.decide(changed)
    assert decision.resume and (decision.building[tmp_path / "out"] / "result").read_text() == "partial"
    book.begin(decision)  # resuming keeps the building folder
    assert (decision.building[tmp_path / "out"] / "result").read_text() == "partial"
    book.complete(decision, 2.0)
    assert (tmp_path / "out/result").read_text() == "partial" and book.record("s")["fingerprint"] != record["fingerprint"]
    assert not list(tmp_path.glob(".out.*")) and not book.running_path("s").exists()


def test_a_stage_that_is_not_resumable_starts_again_and_old_attempts_are_cleaned(tmp_path, book):
    stage = make_stage(tmp_path)
    run(book, stage, fail=True)
    first = book.decide(stage)
    assert not first.resume
    run(book, make_stage(tmp_path, word="b"), fail=True)
    assert len(list(tmp_path.glob(".out.building-*"))) == 1  # the first attempt's folder went


def test_an_interrupted_swap_is_completed_by_the_next_run(tmp_path, book):
    stage = make_stage(tmp_path)
    run(book, stage, content="first")
    decision = book.decide(make_stage(tmp_path, word="b"))
    book.begin(decision)
    decision.building[tmp_path / "out"].mkdir()
    (decision.building[tmp_path / "out"] / "result").write_text("second")
    journal = json.loads(book.running_path("s").read_text())
    book.running_path("s").write_text(json.dumps({**journal, "swapping": True, "seconds": 1.0}))
    (tmp_path / "out").rename(tmp_path / f".out.old-{decision.fingerprint[:12]}")  # a crash between the renames
    assert run(book, make_stage(tmp_path, word="b")) == "unchanged"
    assert (tmp_path / "out/result").read_text() == "second" and not list(tmp_path.glob(".out.*"))


def test_a_failed_check_leaves_the_previous_outputs(tmp_path, book):
    stage = make_stage(tmp_path)
    run(book, stage, content="first")
    checked = make_stage(tmp_path, word="b")
    checked.check = lambda building: f"too few items in {building(tmp_path / 'out')}"
    with pytest.raises(StageError, match="too few items in .*out.building"):
        run(book, checked)
    assert (tmp_path / "out/result").read_text() == "first"


def test_outputs_are_rewritten_to_their_building_folders():
    building = {Path("/r/runs/sft/seed1"): Path("/r/runs/sft/.seed1.building-x"), Path("/p/dss"): Path("/p/.dss.b")}
    assert rewrite_outputs(["--save", "/r/runs/sft/seed1", "SAVE_PATH=/r/runs/sft/seed1", "--out",
                            "/r/runs/sft/seed1/x.json", "/r/runs/sft/seed10", "PROCESSED_DIR=/p/dss/full",
                            "DATA=/p/dss-gold"], building) == [
        "--save", "/r/runs/sft/.seed1.building-x", "SAVE_PATH=/r/runs/sft/.seed1.building-x", "--out",
        "/r/runs/sft/.seed1.building-x/x.json", "/r/runs/sft/seed10", "PROCESSED_DIR=/p/.dss.b/full",
        "DATA=/p/dss-gold"]


def test_the_code_a_stage_runs_is_part_of_its_fingerprint_and_its_comments_are_not(tmp_path):
    """A program's own modules (imports followed transitively), a script's shared lib/ and the
    recipes; editing a comment or docstring changes nothing, editing code does."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text("")
    (tmp_path / "pkg/deep.py").write_text('"""Doc."""\nVALUE = 1  # a comment\n')
    (tmp_path / "pkg/mid.py").write_text("from .deep import VALUE\n")
    (tmp_path / "pkg/unused.py").write_text("X = 2\n")
    (tmp_path / "main.py").write_text("import json\nfrom pkg import mid\n")
    assert [p.relative_to(tmp_path).as_posix() for p in imported_files(tmp_path / "main.py", tmp_path)] == [
        "main.py", "pkg/__init__.py", "pkg/deep.py", "pkg/mid.py"]
    stage = Stage("s", ["python", "main.py"], [tmp_path / "out"], code=[Path("main.py")])
    hashes = ContentHashes(None)
    before = fingerprint_parts(stage, hashes, tmp_path)
    (tmp_path / "pkg/deep.py").write_text('"""Other words."""\n# more words\nVALUE = 1  # changed comment\n')
    assert fingerprint_parts(stage, hashes, tmp_path) == before
    (tmp_path / "pkg/deep.py").write_text("VALUE = 2\n")
    after = fingerprint_parts(stage, hashes, tmp_path)
    assert [key for key in after if after[key] != before[key]] == ["code pkg/deep.py"]
    (tmp_path / "pkg/unused.py").write_text("X = 3\n")
    assert fingerprint_parts(stage, hashes, tmp_path) == after
    script = Stage("t", ["bash", "scripts/kd/kd_base.sh"], [tmp_path / "o"], code=[Path("scripts/kd/kd_base.sh")])
    files = {path.as_posix() for path in code_files(script)}
    assert {"scripts/kd/kd_base.sh", "scripts/lib/common.sh", "scripts/lib/kd.sh", "minillm/recipes.py"} <= files


def test_content_hashes_are_cached_by_file_stamp(tmp_path, monkeypatch):
    big = tmp_path / "model"
    big.mkdir()
    (big / "weights").write_bytes(b"x" * 1000)
    cache = tmp_path / "hashes.json"
    first = ContentHashes(cache)
    digest = first.path(big)
    first.save()
    again = ContentHashes(cache)
    with monkeypatch.context() as patch:
        patch.setattr(Path, "open", lambda *args, **kwargs: pytest.fail("an unchanged file was read again"))
        assert again.path(big) == digest
    (big / "weights").write_bytes(b"y" * 1000)  # same size, new content and time
    assert ContentHashes(cache).path(big) != digest
