"""evaluate.py and the eval-set loader: outputs per set and seed, summaries, clear errors."""
from __future__ import annotations

import json

import pytest
from world import SHARED_DATA, run_entrypoint

from minillm.eval.evaluation import load_eval_set, summarize_set
from minillm.experiments.rendering import summary_table
from minillm.statistics import mean_and_std


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
    assert (entry["rougeL_mean"], entry["rougeL_std"]) == tuple(round(v, 4) for v in mean_and_std(entry["rougeL_per_seed"]))
    # Different seeds really sample differently.
    a = [json.loads(line)["prediction"] for line in open(save / "tiny" / "10" / "answers.jsonl")]
    b = [json.loads(line)["prediction"] for line in open(save / "tiny" / "20" / "answers.jsonl")]
    assert a != b
    assert "| student |" in (save / "summary.md").read_text()
    # The toy set's first rows have answers, families and a multi-answer row ("name"). Rows with an
    # answer are also decoded once greedily and scored strict and flexible.
    greedy = [json.loads(line) for line in open(save / "tiny" / "greedy" / "answers.jsonl")]
    assert len(greedy) == 10 and entry["accuracy_decoding"] == "greedy" and entry["answer_rows"] >= 1
    assert 0 <= entry["accuracy_strict"] <= entry["accuracy_flexible"] <= 100
    greedy_metrics = json.loads((save / "tiny" / "greedy" / "metrics.json").read_text())
    assert greedy_metrics["accuracy_strict"] == entry["accuracy_strict"]
    assert entry["multi_answer_rows"] >= 1 and 1 <= entry["distinct_per_prompt"] <= 2
    assert sum(scoped["rows"] for scoped in entry["families"].values()) == 10
    assert all(len(scoped["rougeL_per_seed"]) == 2 for scoped in entry["families"].values())
    assert {"category", "answer"} <= set(greedy[0])
    # Each sampling pass's speed and memory, for benchmarks/gpu_check_report.py; at most 12 new tokens a row
    timed = [json.loads(line) for line in open(save / "eval_log.jsonl") if '"set"' in line]
    assert len(timed) == 3 and all(r["seconds"] > 0 and 10 <= r["tokens"] <= 120 and r["peak_memory_mib"] > 0
                                   for r in timed), timed


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
    assert mean_and_std([10.0, 20.0, 30.0]) == (20.0, 10.0)
    assert mean_and_std([5.0]) == (5.0, 0.0)
    table = summary_table([{"model": "m", "sets": {"a": {"rougeL_mean": 1.234, "rougeL_std": 0.5}}}])
    assert "| m | 1.23 ± 0.50 |" in table
    greedy = summary_table([{"model": "m", "sets": {"a": {"accuracy_strict": 40.0}, "b": {}}}], "accuracy_strict")
    assert "| m | 40.00 | – |" in greedy


@pytest.mark.skipif(not (SHARED_DATA / "minillm-data").is_dir(), reason="../shared/data absent: no MiniLLM eval sets")
def test_minillm_eval_sets_load_with_their_references():
    root = SHARED_DATA / "minillm-data"
    sinst = load_eval_set(root, "sinst")
    assert len(sinst.rows) == 1694 and isinstance(sinst.references[0], list)
    dolly = load_eval_set(root, "dolly")
    assert len(dolly.rows) == 500 and dolly.prompts[0].endswith("### Response:\n")


def test_summarize_set_greedy_accuracy_families_and_diversity():
    references = ["So the answer is 4.", "The answer is yes.", ["red", "blue"], ["red", "blue"]]
    answers = ["4", "yes", "", ""]
    families = ["arithmetic", "logic", "colour", "colour"]
    sampled = [["So the answer is 4.", "no", "red", "red"],  # seed 1
               ["4", "The answer is yes.", "blue", "green"]]  # seed 2
    greedy = ["I think 4", "The answer is yes.", "red", "red"]
    entry = summarize_set(references, answers, families, sampled, greedy)
    # Greedy accuracy over the 2 answer rows: strict 1 of 2 ("I think 4" has no marker), flexible 2 of 2.
    assert (entry["answer_rows"], entry["accuracy_strict"], entry["accuracy_flexible"]) == (2, 50.0, 100.0)
    assert entry["accuracy_decoding"] == "greedy" and "accuracy_strict_per_seed" not in entry
    assert entry["exact_match_per_seed"] == [75.0, 50.0] and len(entry["rougeL_per_seed"]) == 2
    # Multi-answer rows: row 2 gives {red, blue} (2 distinct, covers 2/2), row 3 {red, green} (covers 1/2).
    assert (entry["multi_answer_rows"], entry["distinct_per_prompt"], entry["coverage"]) == (2, 2.0, 75.0)
    colour = entry["families"]["colour"]
    assert colour["rows"] == 2 and "answer_rows" not in colour and colour["coverage"] == 75.0
    arithmetic = entry["families"]["arithmetic"]
    assert (arithmetic["rows"], arithmetic["accuracy_strict"], arithmetic["accuracy_flexible"]) == (1, 0.0, 100.0)
    assert arithmetic["rougeL_per_seed"][0] == 100.0 and "multi_answer_rows" not in arithmetic
    # Accuracy from the samples instead: per seed, and the mean as the headline number.
    entry = summarize_set(references, answers, families, sampled, None)
    assert entry["accuracy_decoding"] == "sampled"
    assert entry["accuracy_strict_per_seed"] == [50.0, 50.0] and entry["accuracy_flexible_per_seed"] == [50.0, 100.0]
    assert entry["accuracy_flexible"] == entry["accuracy_flexible_mean"] == 75.0


def test_summarize_set_without_answers_or_families():
    entry = summarize_set(["a b", "c"], ["", ""], [None, None], [["a b", "x"]], None)
    assert set(entry) == {"rows", "rougeL_per_seed", "rougeL_mean", "rougeL_std", "exact_match_per_seed",
                          "exact_match_mean", "exact_match_std"}
    assert entry["exact_match_per_seed"] == [50.0] and entry["rougeL_std"] == 0.0
