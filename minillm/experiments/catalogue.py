"""The metrics the report reads, their labels and where a single value comes from (the methods
themselves, their roles, order and declared comparisons: minillm/experiments/methods.py)."""
from __future__ import annotations


MAJORITY_LABEL = "Majority answer"
CHANCE_LABEL = "Chance"
CONSTANT_LABEL = "Constant answer"
# evaluate.py's per-set (and per-family) metrics: "<metric>" from temperature-1 sampling (per
# generation seed), "<metric>_greedy" from the one greedy decoding; "_label" = scored against the
# step-by-step label references; "accuracy" is the sampled accuracy of old summaries.
METRICS = ("rougeL", "rougeL_greedy", "exact_match", "exact_match_greedy", "accuracy_strict", "accuracy_flexible",
           "entropy", "rougeL_label", "rougeL_label_greedy", "exact_match_label", "exact_match_label_greedy",
           "fact_precision", "fact_recall", "fact_f1", "fact_f1_greedy", "validity", "validity_greedy",
           "distinct_per_prompt", "distinct_valid_per_prompt", "coverage", "accuracy")
METRIC_LABELS = {"rougeL": "Rouge-L", "rougeL_greedy": "Rouge-L greedy", "exact_match": "Exact match",
                 "exact_match_greedy": "Exact match greedy", "accuracy_strict": "Accuracy strict",
                 "accuracy_flexible": "Accuracy flexible", "entropy": "Entropy (nats/token)",
                 "rougeL_label": "Rouge-L vs label refs", "rougeL_label_greedy": "Rouge-L greedy vs label refs",
                 "exact_match_label": "Exact match vs label refs",
                 "exact_match_label_greedy": "Exact match greedy vs label refs",
                 "fact_precision": "Fact precision", "fact_recall": "Fact recall", "fact_f1": "Fact F1",
                 "fact_f1_greedy": "Fact F1 greedy", "validity": "Validity", "validity_greedy": "Validity greedy",
                 "distinct_per_prompt": "Distinct answers per prompt",
                 "distinct_valid_per_prompt": "Distinct valid answers per prompt",
                 "coverage": "Coverage", "accuracy": "Accuracy (sampled, old summary)"}
# A metric that is one value per run, not one per generation seed: where that value comes from.
SINGLE_VALUE_SOURCE = {"accuracy_strict": "greedy", "accuracy_flexible": "greedy",
                       "distinct_per_prompt": "over generation seeds", "coverage": "over generation seeds",
                       "distinct_valid_per_prompt": "over generation seeds",
                       **{metric: "greedy" for metric in METRICS if metric.endswith("_greedy")}}
# Compared by paired tests (method − baseline); the main table shows MAIN_METRICS per eval set.
COMPARED_METRICS = ("rougeL", "rougeL_greedy", "accuracy_strict")
MAIN_METRICS = ("rougeL", "rougeL_greedy", "accuracy_strict", "entropy")
TEACHER_ACCURACY_TARGET = 80.0
