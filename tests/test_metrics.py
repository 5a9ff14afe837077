"""compute_metrics must reproduce the Super-NaturalInstructions evaluator's numbers."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from minillm.metrics import (answer_accuracies, answer_accuracy, answer_correct, answer_diversity, answer_validity,
                             compute_metrics, fact_scores, has_answer_marker, normalize_answer, stated_facts)

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


# ---------------------------------------------------------------- strict vs flexible answer accuracy

@pytest.mark.parametrize("prediction, answer, strict, flexible", [
    # A marker: both read only the label behind it.
    ("3 + 4 = 7. So the answer is 7.", "7", True, True),
    ("The answer is 12 because 3 * 4 = 12, not 15", "15", False, False),
    ("Answer: (b) bank", "bank", True, True),
    # No marker: strict is wrong; flexible takes the last number ...
    ("She has 3 and gets 4, so 7 apples.", "7", False, True),
    ("7 apples, she gave away 3", "7", False, False),  # ... which is 3 here
    # ... or the whole cleaned text for a text answer.
    ("Bank.", "bank", False, True),
    ("The river bank is where", "bank", False, False),
    # A marker inside a hallucinated next question answers that question, not this one.
    ("She has 7 apples.\n\nQ: How many pears? A: The answer is 9.", "7", False, True),
    ("She has 7 apples.\n\nQ: How many pears? A: The answer is 9.", "9", False, False),
    ("The answer is 7.\n\nQ: next? The answer is 9.", "7", True, True),
])
def test_strict_and_flexible_answers(prediction, answer, strict, flexible):
    assert answer_correct(prediction, answer, strict=True) is strict
    assert answer_correct(prediction, answer, strict=False) is flexible
    assert answer_correct(prediction, answer) is flexible  # flexible is the default (rationale tools rely on it)


def test_answer_marker_before_the_next_question_only():
    assert has_answer_marker("so the answer is 4") and has_answer_marker("Answer: 4")
    assert not has_answer_marker("4\nQ: what? The answer is 5") and not has_answer_marker("just 4")


def test_answer_accuracies_both_ways():
    predictions = ["The answer is 5.", "5 apples", "So the answer is 6", "open-ended"]
    # Rows with an answer: 3. Strict: only the first (marker + right). Flexible: the first two.
    assert answer_accuracies(predictions, ["5", "5", "5", ""]) == {"accuracy_strict": 33.3333,
                                                                   "accuracy_flexible": 66.6667}
    assert answer_accuracy(predictions, ["5", "5", "5", ""], strict=True) == 33.3333


def test_answer_diversity_by_hand():
    references = [["red", "blue", "green"], ["cat", "dog"]]
    predictions_per_seed = [["Red.", "cat"], ["blue", "cat"], ["red", "a bird"]]
    # Row 0: distinct {red, blue} = 2, covers 2 of 3; row 1: {cat, a bird} = 2, covers 1 of 2.
    assert answer_diversity(predictions_per_seed, references) == {
        "distinct_per_prompt": 2.0, "coverage": round(100 * (2 / 3 + 1 / 2) / 2, 4)}
    with pytest.raises(ValueError, match="every seed needs 2 predictions"):
        answer_diversity([["red"]], references)
    with pytest.raises(ValueError, match="no references"):
        answer_diversity([["x"]], [[]])


def test_answer_validity_by_hand():
    references = [["red", "blue", "green"], ["cat", "dog"]]
    predictions_per_seed = [["Red.", "cat"], ["blue", "cat"], ["pink", "a bird"]]
    # Valid: red, blue (row 0), cat, cat (row 1) = 4 of 6; distinct valid: {red, blue} = 2, {cat} = 1.
    assert answer_validity(predictions_per_seed, references) == {"validity": 66.6667, "distinct_valid_per_prompt": 1.5}
    # Babbling a new wrong answer per seed is diverse (answer_diversity) but never valid.
    babble = [["pink", "bird"], ["grey", "fish"], ["gold", "cow"]]
    assert answer_diversity(babble, references)["distinct_per_prompt"] == 3.0
    assert answer_validity(babble, references) == {"validity": 0.0, "distinct_valid_per_prompt": 0.0}
    with pytest.raises(ValueError, match="every seed needs 2 predictions"):
        answer_validity([["red"]], references)


# A toy world: two animals, their facts, and the phrases a stated fact is read from.
SUBJECTS = ["fox", "wolf", "rabbit"]
FACTS = ["small", "large", "forest", "grass", "grassland", "rabbits", "red fur", "thick red fur", "4 legs", "10 legs"]


def check(reference: list[list[str]], subject: str | None = "fox") -> dict:
    return {"reference": reference, "true": {"fox": ["small", "forest", "rabbits", "red fur", "4 legs"],
                                             "wolf": ["large", "forest", "4 legs"]},
            "subjects": SUBJECTS, "facts": FACTS, "subject": subject}


def test_stated_facts_reads_subject_then_facts():
    text = "The fox is small. It eats rabbits and lives in the forest. A wolf is large and has 4 legs."
    assert stated_facts(text, SUBJECTS, FACTS, "fox") == {
        ("fox", "small"), ("fox", "rabbits"), ("fox", "forest"), ("wolf", "large"), ("wolf", "4 legs")}
    # whole words, longest phrase first, case-insensitive; before any subject: the default one
    assert stated_facts("Thick red fur in the GRASSLAND, 10 legs", SUBJECTS, FACTS, None) == {
        (None, "thick red fur"), (None, "grassland"), (None, "10 legs")}
    with pytest.raises(ValueError, match="both a subject and a fact"):
        stated_facts("x", ["fox"], ["fox"])


def test_fact_scores_by_hand():
    reference = [["fox", "small"], ["fox", "forest"]]
    rows = {
        "the reference": ("The fox is small. It lives in the forest.", (100.0, 100.0)),
        "one right, one wrong": ("The fox is large. It lives in the forest.", (50.0, 50.0)),
        "a true extra fact": ("The fox is small, lives in the forest and has 4 legs.", (100.0, 100.0)),
        "another animal's facts": ("The wolf is large. It lives in the forest.", (100.0, 0.0)),
        "nothing stated (echo)": ("Describe the fox's size and home.", (0.0, 0.0)),
        "before any subject, no default": ("Small, forest.", (0.0, 0.0)),
    }
    for name, (text, (precision, recall)) in rows.items():
        subject = None if name.startswith("before") else "fox"
        scores = fact_scores([text], [check(reference, subject)])
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert scores == {"fact_precision": precision, "fact_recall": recall, "fact_f1": round(f1, 4)}, name
    # means over rows
    both = fact_scores(["The fox is small. It lives in the forest.", "The fox is large."],
                       [check(reference), check(reference)])
    assert both == {"fact_precision": 50.0, "fact_recall": 50.0, "fact_f1": 50.0}
    with pytest.raises(ValueError, match="lacks"):
        fact_scores(["x"], [{"reference": reference}])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        fact_scores(["x", "y"], [check(reference)])


def test_fact_recall_takes_the_best_of_the_answers_a_question_allows():
    """"How does a fox differ from a wolf?" is answered in full by their sizes or by their homes."""
    by_size, by_home = [["fox", "small"], ["wolf", "large"]], [["fox", "forest"], ["wolf", "forest"]]
    allowed = {**check(by_size), "allowed": [by_size, by_home]}
    assert fact_scores(["The fox lives in the forest, the wolf in the forest."], [allowed])["fact_recall"] == 100.0
    assert fact_scores(["The fox lives in the forest, the wolf in the forest."], [check(by_size)])["fact_recall"] == 0.0
    assert fact_scores(["The fox is small and lives in the forest."], [allowed])["fact_recall"] == 50.0
