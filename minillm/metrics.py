"""Evaluation metrics with the Super-NaturalInstructions evaluator's semantics, as MiniLLM reports.

Rouge-L F-measure (Porter stemmer) and exact match, each the max over an example's references,
averaged and scaled to 0-100, rounded to 4 decimals, so numbers compare with published ones.
"""

from __future__ import annotations

import functools
import string

from rouge_score import rouge_scorer

_PUNCTUATION = frozenset(string.punctuation)


@functools.cache
def _rouge_l_scorer() -> rouge_scorer.RougeScorer:
    """Build the scorer once: constructing it (and its stemmer) per call is slow."""
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation and squash whitespace (articles are kept, as in S-NI)."""
    without_punctuation = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(without_punctuation.split())


def compute_metrics(
    predictions: list[str], references: list[str | list[str]]
) -> dict[str, float]:
    """Return {"exact_match", "rougeL"} in percent; a string reference counts as a one-item list."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    scorer = _rouge_l_scorer()
    exact_match_total = 0.0
    rouge_l_total = 0.0
    for index, (prediction, golds) in enumerate(zip(predictions, references)):
        golds = [golds] if isinstance(golds, str) else list(golds)
        if not golds:
            raise ValueError(f"example {index} has no references")
        normalized_prediction = normalize_answer(prediction)
        exact_match_total += max(normalized_prediction == normalize_answer(gold) for gold in golds)
        rouge_l_total += max(
            scorer.score(target=gold, prediction=prediction)["rougeL"].fmeasure for gold in golds
        )
    count = len(predictions)
    return {
        "exact_match": round(100.0 * exact_match_total / count, 4),
        "rougeL": round(100.0 * rouge_l_total / count, 4),
    }
