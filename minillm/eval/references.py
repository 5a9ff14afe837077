"""Reference rows a report sets beside the models, computed from an eval set alone.

- `chance_accuracy`: a reasoning row that names its answer options (`choices`) is answered right
  by a uniform guess among them with probability 1 / len(choices): the accuracy floor.
- `constant_answers` / `constant_answer_summary`: one fixed answer per family, whatever the
  question, scored with every metric a model gets (`summarize_set`): the template floor. A
  metric that rates this row near the models rewards form, not knowledge.
"""
from __future__ import annotations

from collections.abc import Sequence

from minillm.eval.evaluation import EvalSet, summarize_set
from minillm.metrics import compute_metrics

POOLED = "pooled"


def chance_accuracy(eval_set: EvalSet) -> dict:
    """{"families": {family: percent}, "pooled": percent, "rows": n}: the expected accuracy of
    picking uniformly among each row's `choices`, averaged over the rows that have an answer and
    choices (per family by `category`, rows without one only pooled, and over all of them). Raises ValueError when no row has
    both, or a row's answer is not among its choices."""
    by_family: dict[str, list[float]] = {}
    chances: list[float] = []
    for index, row in enumerate(eval_set.rows):
        choices, answer = row.get("choices"), row.get("answer", "")
        if not choices or not answer.strip():
            continue
        if answer not in choices:
            raise ValueError(f"{eval_set.path}: row {index + 1}: answer {answer!r} is not among its choices {choices}")
        chances.append(100.0 / len(set(choices)))
        if row.get("category"):
            by_family.setdefault(row["category"], []).append(chances[-1])
    if not chances:
        raise ValueError(f"{eval_set.path}: no row has an answer and its choices: chance accuracy is undefined")
    return {"families": {family: round(sum(values) / len(values), 4) for family, values in by_family.items()},
            POOLED: round(sum(chances) / len(chances), 4), "rows": len(chances)}


def _candidates(reference: str | list[str]) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def constant_answers(references: Sequence[str | list[str]], families: Sequence[str | None],
                     max_candidates: int = 20) -> dict[str | None, str]:
    """One fixed answer per family (None: the rows without one): of the family's gold responses
    (the first `max_candidates` distinct ones, in row order), the one with the highest mean
    Rouge-L against all of the family's references — the best a model that ignores the question
    can do with one answer taken from the gold data. Deterministic (ties: the earliest)."""
    if len(references) != len(families):
        raise ValueError(f"{len(references)} references but {len(families)} families")
    rows_of: dict[str | None, list[int]] = {}
    for index, family in enumerate(families):
        rows_of.setdefault(family, []).append(index)
    answers = {}
    for family, rows in rows_of.items():
        candidates = list(dict.fromkeys(text for i in rows for text in _candidates(references[i])))[:max_candidates]
        golds = [references[i] for i in rows]
        scores = [compute_metrics([candidate] * len(golds), golds)["rougeL"] for candidate in candidates]
        answers[family] = candidates[scores.index(max(scores))]
    return answers


def constant_answer_summary(eval_set: EvalSet, max_candidates: int = 20) -> tuple[dict[str | None, str], dict]:
    """(the constant answer per family, its summary entry): `constant_answers` scored like a
    model's answers (one "seed" that is also the greedy decoding, so every `_greedy` key equals
    its `_mean`), with the set's label references and fact checks; no entropy (no model)."""
    answers = constant_answers(eval_set.references, eval_set.families, max_candidates)
    texts = [answers[family] for family in eval_set.families]
    entry = summarize_set(eval_set.references, eval_set.answers, eval_set.families, [texts], texts,
                          label_references=eval_set.label_references, fact_checks=eval_set.fact_checks)
    return answers, entry
