"""evaluate.py and the eval-set loader: outputs per set and seed, summaries, clear errors."""
from __future__ import annotations

import json

import pytest
from world import SHARED_DATA, run_entrypoint

from minillm.eval.evaluation import load_eval_set, mean_token_entropy, summarize_set
from minillm.eval.references import chance_accuracy, constant_answer_summary, constant_answers
from minillm.eval.summary import summary_table
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
    # Beside the samples: greedy Rouge-L, the samples' entropy, the label references (the toy set's
    # rows carry them) and the world's facts (its describe / extract rows).
    assert greedy_metrics["rougeL"] == entry["rougeL_greedy"] and 0 <= entry["rougeL_label_greedy"] <= 100
    assert len(entry["entropy_per_seed"]) == 2 and all(value > 0 for value in entry["entropy_per_seed"])
    assert entry["fact_rows"] >= 1 and 0 <= entry["fact_f1_mean"] <= 100 and "validity_greedy" in entry
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


def test_summarize_set_label_references_facts_entropy_and_validity():
    references = ["So the answer is fox.", "The fox is small.", ["A cat.", "A dog."]]
    labels = ["The answer is fox.", "The fox is small.", ["A cat.", "A dog."]]
    fact_check = {"reference": [["fox", "small"]], "true": {"fox": ["small"]}, "subjects": ["fox"],
                  "facts": ["small", "large"], "subject": "fox"}
    sampled = [["The answer is fox.", "The fox is large.", "A cat."], ["So the answer is fox.", "It is small.", "A cow."]]
    greedy = ["The answer is fox.", "The fox is small.", "A dog."]
    entry = summarize_set(references, ["fox", "", ""], ["biggest", "describe", "name"], sampled, greedy,
                          label_references=labels, fact_checks=[None, fact_check, None],
                          entropies=[[2.0, 1.0, 0.0], [4.0, 0.0, 0.0]], lengths=[[4, 4, 2], [6, 3, 3]])
    biggest, describe, name = (entry["families"][family] for family in ("biggest", "describe", "name"))
    # A label answer matches the label reference exactly, and the chain of thought the shared one.
    assert biggest["exact_match_label_per_seed"] == [100.0, 0.0] and biggest["exact_match_per_seed"] == [0.0, 100.0]
    assert biggest["exact_match_label_greedy"] == 100.0 and biggest["accuracy_strict"] == 100.0
    assert describe["fact_rows"] == 1 and describe["fact_precision_per_seed"] == [0.0, 100.0]
    assert describe["fact_f1_greedy"] == 100.0 and "fact_rows" not in biggest
    assert name["validity_per_seed"] == [100.0, 0.0] and name["validity_greedy"] == 100.0
    assert name["distinct_valid_per_prompt"] == 1.0 and name["distinct_per_prompt"] == 2.0
    # Entropy per token, every token weighing the same: seed 1 (2 + 1 + 0) / 10, seed 2 4 / 12.
    assert entry["entropy_per_seed"] == [0.3, 0.3333] and biggest["entropy_per_seed"] == [0.5, 0.6667]
    # Greedy Rouge-L: "The answer is fox." against "So the answer is fox." is P 1, R 4/5; the others match.
    assert entry["rougeL_greedy"] == round(100 * (2 * 0.8 / 1.8 + 1 + 1) / 3, 4)
    with pytest.raises(ValueError, match="come together"):
        summarize_set(references, ["fox", "", ""], [None] * 3, sampled, None, entropies=[[0.0] * 3] * 2)


def test_mean_token_entropy():
    assert mean_token_entropy([3.0, 1.0], [3, 1]) == 1.0
    with pytest.raises(ValueError, match="no generated tokens"):
        mean_token_entropy([0.0], [0])


def _eval_set(tmp_path, rows: list[dict]):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "valid.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_eval_set(tmp_path, "toy")


def test_chance_accuracy_is_a_uniform_guess_among_the_named_animals(tmp_path):
    rows = [{"instruction": "q", "output": "o", "category": "biggest", "answer": "fox", "choices": ["fox", "owl", "bee"]},
            {"instruction": "q", "output": "o", "category": "more_legs", "answer": "fox", "choices": ["fox", "owl"]},
            {"instruction": "q", "output": "o", "category": "more_legs", "answer": "bee", "choices": ["bee", "owl"]},
            {"instruction": "q", "output": "o", "category": "describe"}]
    assert chance_accuracy(_eval_set(tmp_path, rows)) == {
        "families": {"biggest": 33.3333, "more_legs": 50.0}, "pooled": round(100 * (1 / 3 + 1 / 2 + 1 / 2) / 3, 4),
        "rows": 3}


def test_constant_answer_is_the_family_gold_closest_to_all_and_is_scored_like_a_model(tmp_path):
    references = ["The fox is small. So the answer is fox.", "The owl is small. So the answer is owl.",
                  "The bee is tiny. So the answer is bee.", "Red fur.", ["A cat.", "A dog."]]
    families = ["biggest", "biggest", "biggest", "describe", "name"]
    answers = constant_answers(references, families)
    # the two "... is small." answers share most words with each other: the first of them wins
    assert answers == {"biggest": references[0], "describe": "Red fur.", "name": "A cat."}
    rows = [{"instruction": "q", "output": reference, "category": family, "answer": answer}
            for reference, family, answer in zip(references, families, ["fox", "owl", "bee", "", ""])]
    constant, entry = constant_answer_summary(_eval_set(tmp_path, rows))
    assert constant == answers and entry["accuracy_strict"] == round(100 / 3, 4)
    assert entry["rougeL_greedy"] == entry["rougeL_mean"] and "entropy_mean" not in entry


def test_summarize_set_without_answers_or_families():
    entry = summarize_set(["a b", "c"], ["", ""], [None, None], [["a b", "x"]], None)
    assert set(entry) == {"rows", "rougeL_per_seed", "rougeL_mean", "rougeL_std", "exact_match_per_seed",
                          "exact_match_mean", "exact_match_std"}
    assert entry["exact_match_per_seed"] == [50.0] and entry["rougeL_std"] == 0.0
