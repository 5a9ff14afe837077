"""Evaluation metrics with the Super-NaturalInstructions evaluator's semantics, as MiniLLM reports.

Rouge-L F-measure (Porter stemmer) and exact match, each the max over an example's references,
averaged and scaled to 0-100, rounded to 4 decimals, so numbers compare with published ones.
Reasoning tasks (distilling step-by-step, ref §8) add answer accuracy: the short answer a
prediction states against a gold answer, by value for numbers (`answer_accuracy`), with a safe
arithmetic evaluator for equation answers (`minillm.arithmetic`), strict (only a label behind
an answer marker counts) or flexible (else the last number / the whole text). Prompts with
several valid answers add diversity and validity figures over generation seeds
(`answer_diversity`, `answer_validity`). Answers that state facts of a known world (the embedded
default's animals) are also scored by the facts they state (`fact_scores`), which word overlap
with a templated reference cannot tell apart.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

from minillm.arithmetic import evaluate_expression

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

_PUNCTUATION = frozenset(string.punctuation)


@functools.cache
def _rouge_l_scorer() -> rouge_scorer.RougeScorer:
    """Build the scorer once: constructing it (and its stemmer) per call is slow. Imported here:
    rouge_score costs seconds of start-up to every tool that only parses answers."""
    from rouge_score import rouge_scorer
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


# ---------------------------------------------------------------- answer accuracy (step-by-step)
#
# Reasoning tasks are scored by the short answer a prediction states, not by Rouge-L: for a
# numeric gold answer the predicted VALUE must match (so "$1,000", "1000.0" and "(500 * 2)" all
# count as 1000); for a text answer (e.g. a CommonsenseQA choice) the stated label must match
# after `normalize_answer`.

# Phrases that introduce the answer in chain-of-thought text (ref §8), matched case-insensitively.
ANSWER_MARKERS: tuple[str, ...] = ("So the answer is", "The answer is", "Answer:")

# A number as written in text: optional minus and "$", digit groups with commas or plain digits,
# optional decimals (".5" too). The minus only counts when it does not follow a word or ")", so
# "10-5" holds the numbers 10 and 5, not 10 and -5.
_NUMBER = re.compile(
    r"(?<![\w.])(?:(?<![\w)])-)?\$?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
)
# A hallucinated next question ends an answer (few-shot continuations go on with "Q: ...").
_NEXT_QUESTION = re.compile(r"Q:")
# A multiple-choice letter in front of a label: "(b) bank".
_CHOICE_LETTER = re.compile(r"^\([A-Za-z]\)\s*")
_ABSOLUTE_TOLERANCE = 1e-6  # canonical answers carry 6 decimals (see `format_number`)


def find_answer_marker(text: str, markers: tuple[str, ...] = ANSWER_MARKERS) -> tuple[int, int] | None:
    """(start, end) of the earliest marker in `text` (case-insensitive; at equal starts the
    longest marker), or None."""
    lowered = text.lower()
    best: tuple[int, int] | None = None
    for marker in markers:
        start = lowered.find(marker.lower())
        if start < 0:
            continue
        candidate = (start, start + len(marker))
        if best is None or start < best[0] or (start == best[0] and candidate[1] > best[1]):
            best = candidate
    return best


def clean_label(text: str) -> str:
    """The label in the text that follows an answer marker: up to the first newline or
    hallucinated "Q:", stripped, without one final period ("(84 / 2)." -> "(84 / 2)")."""
    end = len(text)
    newline = text.find("\n")
    if newline >= 0:
        end = newline
    next_question = _NEXT_QUESTION.search(text, 0, end)
    if next_question:
        end = next_question.start()
    label = text[:end].strip()
    if label.endswith("."):
        label = label[:-1].rstrip()
    return label


def strip_choice_letter(label: str) -> str:
    """'(b) bank' -> 'bank'; labels without a leading choice letter are returned unchanged."""
    return _CHOICE_LETTER.sub("", label, count=1)


def parse_number(text: str) -> float | None:
    """The value of `text` when it is exactly one written number ("1,000", "$5", "-2.5", "5.0"),
    else None."""
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        return None
    return float(stripped.replace("$", "").replace(",", ""))


def format_number(value: float) -> str:
    """Canonical decimal string of an answer: 6 decimals at most, no trailing zeros, no
    exponent ("42", "2.5", "0.333333", "-3")."""
    if not math.isfinite(value):
        raise ValueError(f"answer value {value} is not finite")
    rounded = round(value, 6)
    if rounded == int(rounded):
        return str(int(rounded))  # also turns -0.0 into "0"
    return f"{rounded:.6f}".rstrip("0")


def _value_of_label(label: str) -> float | None:
    """A label that is a number or an arithmetic expression ("(84 / 2)"), else None."""
    number = parse_number(label)
    if number is not None:
        return number
    try:
        return evaluate_expression(label)
    except ValueError:
        return None


def _answer_region(prediction: str) -> str:
    """The prediction up to a hallucinated next question: a marker after it answers that
    question, not this one."""
    next_question = _NEXT_QUESTION.search(prediction)
    return prediction[:next_question.start()] if next_question else prediction


def has_answer_marker(prediction: str) -> bool:
    """Whether the prediction states its answer behind a marker (before any next question)."""
    return find_answer_marker(_answer_region(prediction)) is not None


def _stated_label(prediction: str) -> tuple[str, bool]:
    """(label, whether an answer marker introduced it): the text after the first marker, or the
    whole prediction; either up to a hallucinated next question."""
    region = _answer_region(prediction)
    marker = find_answer_marker(region)
    if marker is not None:
        return clean_label(region[marker[1]:]), True
    label = region.strip()
    return (label[:-1].rstrip() if label.endswith(".") else label), False


def predicted_number(prediction: str) -> float | None:
    """The number a prediction gives as its answer: the value of the stated label when it is a
    number or an expression; else the first number after the answer marker when there is one,
    else the last number in the prediction; None when there is none."""
    label, has_marker = _stated_label(prediction)
    value = _value_of_label(strip_choice_letter(label))
    if value is not None:
        return value
    numbers = _NUMBER.findall(label if has_marker else _answer_region(prediction))
    if not numbers:
        return None
    number = numbers[0] if has_marker else numbers[-1]
    return float(number.replace("$", "").replace(",", ""))


def extract_answer(prediction: str) -> str:
    """The short answer a prediction states, as text: what follows the first answer marker (up
    to a hallucinated next question), else the whole prediction, without a choice letter "(b)"
    and the final period. A number or an arithmetic expression becomes its canonical value
    (`format_number`): "So the answer is (84 / 2)." -> "42", "The answer is $1,000." -> "1000",
    "So the answer is (b) bank." -> "bank"."""
    label = strip_choice_letter(_stated_label(prediction)[0])
    value = _value_of_label(label)
    return format_number(value) if value is not None else label


def is_numeric_answer(answer: str) -> bool:
    return parse_number(answer) is not None


def answer_correct(prediction: str, answer: str, strict: bool = False) -> bool:
    """Whether `prediction` states the gold `answer`: by value (`predicted_number`, tolerance
    1e-6) when the answer is a number, else by normalised exact match of `extract_answer`.
    Flexible (default): without an answer marker the last number (numeric answers) or the whole
    cleaned prediction (text answers) counts. Strict: only a label behind a marker counts, so a
    prediction without one is wrong."""
    if strict and not has_answer_marker(prediction):
        return False
    gold_value = parse_number(answer)
    if gold_value is not None:
        value = predicted_number(prediction)
        return value is not None and math.isclose(value, gold_value, rel_tol=1e-9,
                                                  abs_tol=_ABSOLUTE_TOLERANCE)
    return normalize_answer(extract_answer(prediction)) == normalize_answer(answer)


def answer_accuracy(predictions: list[str], answers: list[str], strict: bool = False) -> float:
    """Percent (0-100, 4 decimals) of `answer_correct` predictions over the rows whose answer is
    non-empty (open-ended rows have none). Raises ValueError on a length mismatch or when no
    row has an answer."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions but {len(answers)} answers")
    scored = [(prediction, answer) for prediction, answer in zip(predictions, answers) if answer.strip()]
    if not scored:
        raise ValueError("no row has a non-empty answer to score")
    correct = sum(answer_correct(prediction, answer, strict) for prediction, answer in scored)
    return round(100.0 * correct / len(scored), 4)


def answer_accuracies(predictions: list[str], answers: list[str]) -> dict[str, float]:
    """{"accuracy_strict", "accuracy_flexible"}: `answer_accuracy` both ways."""
    return {f"accuracy_{kind}": answer_accuracy(predictions, answers, strict=kind == "strict")
            for kind in ("strict", "flexible")}


# ---------------------------------------------------------------- diversity (multi-answer rows)

def _check_seeds_by_rows(predictions_per_seed: list[list[str]], references: list[list[str]], measure: str) -> None:
    if not references or not predictions_per_seed:
        raise ValueError(f"no multi-answer rows or no seeds to measure {measure} on")
    if any(len(predictions) != len(references) for predictions in predictions_per_seed):
        raise ValueError(f"every seed needs {len(references)} predictions, got "
                         f"{[len(predictions) for predictions in predictions_per_seed]}")


def answer_diversity(predictions_per_seed: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """For prompts with several equally valid answers, over the generation seeds: the mean
    number of distinct normalised predictions per prompt ("distinct_per_prompt") and the mean
    percent of a prompt's references produced (normalised exact match) by at least one seed
    ("coverage"). `predictions_per_seed[seed][row]`; raises ValueError on ragged input."""
    _check_seeds_by_rows(predictions_per_seed, references, "diversity")
    distinct_total = coverage_total = 0.0
    for row, golds in enumerate(references):
        produced = {normalize_answer(predictions[row]) for predictions in predictions_per_seed}
        wanted = {normalize_answer(gold) for gold in golds}
        if not wanted:
            raise ValueError(f"multi-answer row {row} has no references")
        distinct_total += len(produced)
        coverage_total += len(produced & wanted) / len(wanted)
    return {"distinct_per_prompt": round(distinct_total / len(references), 4),
            "coverage": round(100.0 * coverage_total / len(references), 4)}


def bits_per_character(nats: Sequence[float], characters: Sequence[int]) -> float:
    """Σ nats / (ln 2 · Σ characters): a negative log-likelihood per character of text, in bits,
    which does not depend on how a model cuts the text into tokens (pooled over the rows, so a long
    row weighs in proportion to its characters). ValueError when there are no characters."""
    total = sum(characters)
    if len(nats) != len(characters) or total <= 0:
        raise ValueError(f"need one character count per row and some characters; got {len(nats)} log-likelihoods, "
                         f"{len(characters)} counts, {total} characters")
    return sum(nats) / (math.log(2) * total)


def answer_validity(predictions_per_seed: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """For prompts with several equally valid answers (`references[row]`, every valid one), over
    the generation seeds: the percent of predictions that are valid (normalised exact match with
    a reference, "validity") and the mean number of distinct valid predictions per prompt
    ("distinct_valid_per_prompt"; `answer_diversity` counts every distinct prediction, so a
    model babbling a new wrong answer per seed scores high there and 0 here)."""
    _check_seeds_by_rows(predictions_per_seed, references, "validity")
    valid_total = distinct_total = 0
    for row, golds in enumerate(references):
        wanted = {normalize_answer(gold) for gold in golds}
        if not wanted:
            raise ValueError(f"multi-answer row {row} has no references")
        produced = [normalize_answer(predictions[row]) for predictions in predictions_per_seed]
        valid_total += sum(prediction in wanted for prediction in produced)
        distinct_total += len(set(produced) & wanted)
    return {"validity": round(100.0 * valid_total / (len(references) * len(predictions_per_seed)), 4),
            "distinct_valid_per_prompt": round(distinct_total / len(references), 4)}


# ---------------------------------------------------------------- facts stated (a synthetic world)
#
# An answer that states facts (describe an animal, compare two, list a category's items) is
# checked against the world the data came from, not only by word overlap: each eval row carries a
# fact check (minillm.data.synthetic.fact_check) — the phrases that name a subject or a fact, every
# fact true of the row's subjects, and the facts its reference states.

@functools.cache
def _fact_pattern(subjects: tuple[str, ...], facts: tuple[str, ...]) -> re.Pattern:
    """One alternation over every phrase, longest first, on word boundaries, so "thick brown fur"
    is read as one fact and "grass" never inside "grassland"."""
    overlap = sorted(set(subjects) & set(facts))
    if overlap:
        raise ValueError(f"phrases {overlap[:5]} name both a subject and a fact: a stated fact would be ambiguous")
    phrases = sorted(set(subjects) | set(facts), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(phrase) for phrase in phrases) + r")\b", re.IGNORECASE)


def stated_facts(text: str, subjects: list[str], facts: list[str], subject: str | None = None) -> set[tuple[str | None, str]]:
    """The (subject, fact) pairs `text` states: each fact phrase it contains is about the subject
    named last before it ("The fox is small. It lives in the forest." -> fox small, fox forest),
    or about `subject` before any is named (None: about no one, so never true). Phrases match
    case-insensitively, whole words, the longest at each place; pairs come back lower-case."""
    subject_set = {phrase.lower() for phrase in subjects}
    pattern = _fact_pattern(tuple(sorted(subject_set)), tuple(sorted({phrase.lower() for phrase in facts})))
    current = subject.lower() if subject is not None else None
    stated = set()
    for match in pattern.finditer(text):
        phrase = match.group(0).lower()
        if phrase in subject_set:
            current = phrase
        else:
            stated.add((current, phrase))
    return stated


def fact_scores(predictions: list[str], checks: list[dict]) -> dict[str, float]:
    """{"fact_precision", "fact_recall", "fact_f1"}: per row, precision = the share of the facts a
    prediction states (`stated_facts`) that the world holds (`check["true"]`: subject -> facts),
    recall = the share of the reference's facts (`check["reference"]`: [subject, fact] pairs) it
    states — or, when the question allows several complete answers (`check["allowed"]`: lists of
    such pairs), the best share over them — F1 their harmonic mean (0 when both are 0; a
    prediction stating nothing scores 0 on all three); means over rows in percent, 4 decimals.
    `check["subjects"]`, `check["facts"]`: the phrases read; `check["subject"]`: who a fact
    before any named subject is about."""
    if len(predictions) != len(checks):
        raise ValueError(f"{len(predictions)} predictions but {len(checks)} fact checks")
    if not predictions:
        raise ValueError("no rows with a fact check to score")
    totals = dict.fromkeys(("fact_precision", "fact_recall", "fact_f1"), 0.0)
    for index, (prediction, check) in enumerate(zip(predictions, checks)):
        missing = {"reference", "true", "subjects", "facts"} - set(check)
        if missing:
            raise ValueError(f"fact check of row {index} lacks {sorted(missing)}")
        stated = stated_facts(prediction, check["subjects"], check["facts"], check.get("subject"))
        true = {(subject.lower(), fact.lower()) for subject, facts in check["true"].items() for fact in facts}
        allowed = [{(subject.lower(), fact.lower()) for subject, fact in facts}
                   for facts in check.get("allowed", [check["reference"]])]
        if not all(allowed):
            raise ValueError(f"fact check of row {index} has an empty set of reference facts")
        precision = len(stated & true) / len(stated) if stated else 0.0
        recall = max(len(stated & reference) / len(reference) for reference in allowed)
        totals["fact_precision"] += precision
        totals["fact_recall"] += recall
        totals["fact_f1"] += 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {name: round(100.0 * total / len(predictions), 4) for name, total in totals.items()}
