"""compute_metrics must reproduce the Super-NaturalInstructions evaluator's numbers."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from minillm.metrics import compute_metrics, normalize_answer

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def reference_rouge_l(predictions: list[str], references: list[list[str]]) -> float:
    """Rouge-L computed directly with rouge_score: max over references, mean x 100."""
    best = [
        max(SCORER.score(target=gold, prediction=pred)["rougeL"].fmeasure for gold in golds)
        for pred, golds in zip(predictions, references)
    ]
    return 100.0 * sum(best) / len(best)


def test_rouge_l_matches_rouge_score_with_list_references() -> None:
    predictions = [
        "The cats are running quickly across the yard.",
        "Paris is the capital.",
        "",
        "Water boils at 100 degrees Celsius at sea level.",
    ]
    references = [
        ["A cat runs across the yard.", "The dogs sleep."],
        ["The capital of France is Paris.", "Paris"],
        ["Something that was not predicted."],
        ["At sea level, water boils at 100 °C."],
    ]
    expected = reference_rouge_l(predictions, references)
    result = compute_metrics(predictions, references)
    assert result["rougeL"] == round(expected, 4)
    assert 0 < result["rougeL"] < 100
    # the stemmer matters: "cats running" vs "cat runs" only overlap after stemming
    assert SCORER.score(target="cat runs", prediction="cats running")["rougeL"].fmeasure == 1.0
    assert compute_metrics(["cats running"], ["cat runs"])["rougeL"] == 100.0


def test_max_over_references_not_mean() -> None:
    result = compute_metrics(["Paris"], [["London is big.", "Paris"]])
    assert result == {"exact_match": 100.0, "rougeL": 100.0}


def test_string_reference_is_one_element_list() -> None:
    predictions = ["the quick brown fox", "jumps over"]
    assert compute_metrics(predictions, ["the quick fox", "jumped over it"]) == compute_metrics(
        predictions, [["the quick fox"], ["jumped over it"]]
    )


def test_exact_match_normalisation() -> None:
    assert normalize_answer("  The  Answer, is: YES!\n") == "the answer is yes"
    assert normalize_answer("a cat") == "a cat"  # articles are kept (unlike SQuAD)
    predictions = ["Yes.", "the Cat", "no", "Blue!"]
    references = [["yes"], ["cat"], ["No ", "maybe"], ["red", "  BLUE"]]
    assert compute_metrics(predictions, references)["exact_match"] == 75.0


def test_empty_prediction_scores_zero() -> None:
    assert compute_metrics([""], [["a reference answer"]]) == {"exact_match": 0.0, "rougeL": 0.0}


def test_rounded_to_four_decimals() -> None:
    predictions = ["one two three", "alpha beta", "x"]
    references = ["one two four five six seven", "alpha gamma delta", "y"]
    exact = reference_rouge_l(predictions, [[r] for r in references])
    assert exact != round(exact, 4)  # the fixture really exercises rounding
    result = compute_metrics(predictions, references)
    assert result["rougeL"] == round(exact, 4)
    assert result["exact_match"] == 0.0
    assert compute_metrics(["a", "b", "c"], ["a", "x", "y"])["exact_match"] == 33.3333


def test_length_mismatch_and_empty_inputs_raise() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        compute_metrics([], [])
    with pytest.raises(ValueError, match="no references"):
        compute_metrics(["a"], [[]])
