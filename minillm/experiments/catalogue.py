"""The metrics the report reads, their labels and where a single value comes from (the methods
themselves, their roles and order: minillm/experiments/methods.py)."""
from __future__ import annotations


MAJORITY_LABEL = "Majority answer"
# evaluate.py's per-set (and per-family) metrics; "accuracy" is the sampled accuracy of old summaries.
METRICS = ("rougeL", "exact_match", "accuracy_strict", "accuracy_flexible", "distinct_per_prompt", "coverage",
           "accuracy")
METRIC_LABELS = {"rougeL": "Rouge-L", "exact_match": "Exact match", "accuracy_strict": "Accuracy strict",
                 "accuracy_flexible": "Accuracy flexible", "distinct_per_prompt": "Distinct answers per prompt",
                 "coverage": "Coverage", "accuracy": "Accuracy (sampled, old summary)"}
# A metric that is one value per run, not one per generation seed: where that value comes from.
SINGLE_VALUE_SOURCE = {"accuracy_strict": "greedy", "accuracy_flexible": "greedy",
                       "distinct_per_prompt": "over generation seeds", "coverage": "over generation seeds"}
COMPARED_METRICS = ("rougeL", "accuracy_strict")
TEACHER_ACCURACY_TARGET = 80.0
