"""evaluate.py and the eval-set loader: outputs per set and seed, summaries, clear errors."""
from __future__ import annotations

import json

import pytest

from minillm.evaluation import load_eval_set, mean_std
from minillm.report import summary_table
from world import SHARED_DATA, run_entrypoint


def test_evaluate_writes_answers_metrics_and_summary(world, tmp_path):
    data_root = world.data.parent  # the set is named after its folder: "tiny"
    save = tmp_path / "eval"
    run_entrypoint(["evaluate.py", "--model-path", str(world.student), "--data-root", str(data_root),
                    "--eval-sets", "tiny", "--seeds", "10", "20", "--save", str(save),
                    "--max-new-tokens", "12", "--max-eval-rows", "10", "--name", "student"])
    for seed in (10, 20):
        answers = [json.loads(line) for line in open(save / "tiny" / str(seed) / "answers.jsonl")]
        assert len(answers) == 10 and {"prompt", "reference", "prediction"} <= set(answers[0])
        metrics = json.loads((save / "tiny" / str(seed) / "metrics.json").read_text())
        assert metrics["rows"] == 10 and 0 <= metrics["rougeL"] <= 100
    summary = json.loads((save / "summary.json").read_text())
    entry = summary["sets"]["tiny"]
    assert (entry["rougeL_mean"], entry["rougeL_std"]) == mean_std(entry["rougeL_per_seed"])
    # Different seeds really sample differently.
    a = [json.loads(line)["prediction"] for line in open(save / "tiny" / "10" / "answers.jsonl")]
    b = [json.loads(line)["prediction"] for line in open(save / "tiny" / "20" / "answers.jsonl")]
    assert a != b
    assert "| student |" in (save / "summary.md").read_text()


def test_a_named_missing_set_is_an_error(world, tmp_path):
    with pytest.raises(AssertionError, match="eval set.*not found"):
        run_entrypoint(["evaluate.py", "--model-path", str(world.student), "--data-root", str(tmp_path),
                        "--eval-sets", "dolly", "--save", str(tmp_path / "e")])


def test_eval_rows_need_an_output_field(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "valid.jsonl").write_text('{"instruction": "x", "output": "y"}\n{"instruction": "z"}\n')
    with pytest.raises(ValueError, match=r"valid.jsonl:2: field 'output'"):
        load_eval_set(tmp_path, "bad")


def test_mean_std_and_the_table():
    assert mean_std([10.0, 20.0, 30.0]) == (20.0, 10.0)
    assert mean_std([5.0]) == (5.0, 0.0)
    table = summary_table([{"model": "m", "sets": {"a": {"rougeL_mean": 1.234, "rougeL_std": 0.5}}}])
    assert "| m | 1.23 ± 0.50 |" in table


@pytest.mark.skipif(not (SHARED_DATA / "minillm-data").is_dir(), reason="../shared/data absent: no MiniLLM eval sets")
def test_minillm_eval_sets_load_with_their_references():
    root = SHARED_DATA / "minillm-data"
    sinst = load_eval_set(root, "sinst")
    assert len(sinst.rows) == 1694 and isinstance(sinst.references[0], list)
    dolly = load_eval_set(root, "dolly")
    assert len(dolly.rows) == 500 and dolly.prompts[0].endswith("### Response:\n")
