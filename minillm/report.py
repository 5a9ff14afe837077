"""The comparison report: every evaluated method of a results folder, with paired tests over seeds.

Reads the layout the main command leaves under results/<preset>/ (nothing is trained here):

  eval/<method>/<run>/summary.json   evaluate.py's summary; <run> is "seed<k>" (training seed k)
                                     or "init" (a model that was not trained by the driver)
  runs/<method>/<run>/final.json     the training budget (steps, tokens by stream, rollout and
                                     pretraining tokens, time)
  runs/<method>/<run>/log.jsonl      training and evaluation records (for the curves)
  stages/<stage>.json                the driver's stage timings
  data/<name>/*.stats.json           what a teacher wrote (rows kept / dropped, consistency)
  driver.json                        the driver's plan (tools/preflight.py): the arms run and not
                                     run, each training data source, the row caps (optional)
  the eval sets (summary.json's "path" per set): their gold answers, for the majority-answer row

Statistics (per method × eval set [× family] × metric): each run's score is its mean over
generation seeds (or its one greedy value); with ≥ 2 runs (training seeds) the cell is the
mean ± sample std (ddof=1) of those run scores; with one run it is that run's mean ± the std over
its generation seeds, which measures generation noise only. Methods are compared with the paired
t-test over the training seeds they share with the baseline (minillm.statistics): every method
against SFT, the MiniLLM rows also against their control arm; one rule decides "≈" (`APPROX_RULE`).

Also the plain per-model tables of evaluate.py and tools/report.py's EVAL_DIR mode
(`load_summary`, `summary_table`).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minillm.metrics import normalize_answer
from minillm.statistics import APPROX_MARK, APPROX_RULE, mean_and_std, no_evidence_of_difference, paired_difference


class ReportError(Exception):
    """Input the report cannot use; the message says which file and why."""


# Where the tokens a method trains on come from.
SOURCES = ("gold", "teacher-written", "rollout", "pretraining")
GOLD_LABELS = (("label", "gold"),)


@dataclass(frozen=True)
class Method:
    label: str
    family: str
    init: str
    objective: str
    data: str  # who wrote what the method learns from
    streams: tuple[tuple[str, str], ...] = ()  # (training stream, its source in SOURCES)
    init_method: str | None = None  # the method whose student this one continues


def _kd(divergence: str, label: str) -> Method:
    return Method(f"KD ({label})", "white-box", "random init",
                  f"(1 − r)·CE on gold responses + r·token-level {label} to the teacher's distribution",
                  "gold labels + the teacher's token distribution", GOLD_LABELS)


_PRETRAINING = (("pretraining", "pretraining"),)
_MINILLM_STREAMS = (("rollout", "rollout"),) + _PRETRAINING
_GOLD_AND_OWN_SAMPLES = GOLD_LABELS + _MINILLM_STREAMS  # GKD, DistiLLM
_DSS_TEACHER_STREAMS = (("label", "teacher-written"), ("rationale", "teacher-written"))

# Report rows follow this order; unknown keys come after, labelled by their key.
METHODS: dict[str, Method] = {
    "teacher": Method("Teacher", "teacher", "the preset's teacher checkpoint",
                      "cross-entropy on the gold responses (the model every student distils from)",
                      "gold labels", GOLD_LABELS),
    "dss-teacher": Method("DSS teacher", "teacher", "the SFT teacher",
                          "cross-entropy on rationale + answer targets: writes the rationales and labels "
                          "the step-by-step students learn from",
                          "gold labels + gold rationales (two tasks)", (("label", "gold"), ("rationale", "gold"))),
    "untrained": Method("Untrained student", "reference", "random init (the first training seed's student init)",
                        "nothing: the students' common starting point", "none"),
    "sft": Method("SFT", "baseline", "random init", "cross-entropy on the gold responses", "gold labels",
                  GOLD_LABELS),
    "kd-forward_kl": _kd("forward_kl", "forward KL"),
    "kd-reverse_kl": _kd("reverse_kl", "reverse KL"),
    "kd-symmetric_kl": _kd("symmetric_kl", "symmetric KL"),
    "kd-js_divergence": _kd("js_divergence", "JS divergence"),
    "kd-total_variation": _kd("total_variation", "total variation"),
    "kd-skew_forward_kl": _kd("skew_forward_kl", "skew forward KL"),
    "kd-skew_reverse_kl": _kd("skew_reverse_kl", "skew reverse KL"),
    "kd-adaptive_kl": _kd("adaptive_kl", "adaptive KL"),
    "seqkd": Method("SeqKD", "black-box", "random init", "cross-entropy on the teacher's sampled responses",
                    "labels written by the SFT teacher", (("label", "teacher-written"),)),
    "sft-continued": Method("SFT (continued)", "control arm", "the SFT student",
                            "cross-entropy on the gold responses + MiniLLM's pretraining term on the same chunks, "
                            "for exactly the steps MiniLLM adds",
                            "gold labels (the SFT data again) + the pretraining corpus",
                            GOLD_LABELS + _PRETRAINING, "sft"),
    "minillm": Method("MiniLLM", "white-box", "the SFT student",
                      "reverse KL to the teacher at the sequence level (policy gradient on its own samples) "
                      "+ a pretraining language-modelling loss",
                      "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS, "sft"),
    "minillm-lmops": Method("MiniLLM (LMOps whitening)", "white-box", "the SFT student",
                            "MiniLLM with LMOps' advantage whitening (--whiten reference: per mini-batch, over every "
                            "response slot, padding included)",
                            "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS, "sft"),
    "opd": Method("On-policy distillation", "white-box", "the SFT student",
                  "policy gradient on its own samples with per-token advantage log p − log q (γ 0, no clipping, "
                  "one step per collection) + MiniLLM's pretraining term",
                  "its own rollouts scored by the SFT teacher + the pretraining corpus", _MINILLM_STREAMS, "sft"),
    "gkd": Method("GKD", "white-box", "the SFT student",
                  "generalised JSD (β 0.5) to the teacher's distribution, on its own samples in half of the steps "
                  "(λ 0.5) and on the gold responses in the others + MiniLLM's pretraining term",
                  "gold labels + its own samples, scored by the SFT teacher's distribution + the pretraining corpus",
                  _GOLD_AND_OWN_SAMPLES, "sft"),
    "distillm": Method("DistiLLM", "white-box", "the SFT student",
                       "skew forward KL (α 0.1) to the teacher's distribution, on the gold responses and, with a "
                       "probability raised whenever the validation loss rises, on its own samples through a replay "
                       "buffer + MiniLLM's pretraining term",
                       "gold labels + its own samples, scored by the SFT teacher's distribution + the pretraining "
                       "corpus", _GOLD_AND_OWN_SAMPLES, "sft"),
    "dss": Method("DSS", "step-by-step, black-box", "random init",
                  "cross-entropy on the teacher's labels + α · cross-entropy on its rationales "
                  "(two task-prefixed streams)",
                  "labels and rationales written by the DSS teacher in one pass", _DSS_TEACHER_STREAMS),
    "dss-gold": Method("DSS (gold labels)", "step-by-step, black-box", "random init",
                       "the DSS streams with gold labels instead of the teacher's (the paper's third arm)",
                       "gold labels + rationales written by the DSS teacher",
                       (("label", "gold"), ("rationale", "teacher-written"))),
    "dss-kd": Method("DSS-KD", "step-by-step × white-box", "random init",
                     "the DSS streams with the token-level KD loss to the DSS teacher's distribution",
                     "gold labels + gold rationales + the DSS teacher's token distribution",
                     (("label", "gold"), ("rationale", "gold"))),
    "dss-continued": Method("DSS (continued)", "control arm", "the DSS student",
                            "the DSS objective + DSS-MiniLLM's pretraining term on the same chunks, for exactly "
                            "the steps DSS-MiniLLM adds",
                            "the DSS data again (labels and rationales written by the DSS teacher) + the "
                            "pretraining corpus", _DSS_TEACHER_STREAMS + _PRETRAINING, "dss"),
    "dss-minillm": Method("DSS-MiniLLM", "step-by-step × white-box", "the DSS student",
                          "MiniLLM's sequence-level reverse KL, starting from the DSS student",
                          "its own rollouts on both tasks' prompts scored by the DSS teacher + the pretraining "
                          "corpus", _MINILLM_STREAMS, "dss"),
}
BASELINE = "sft"
# (method, its control arm): the control trains the same init for the same extra steps.
CONTROLS = {"minillm": "sft-continued", "minillm-lmops": "sft-continued", "opd": "sft-continued", "gkd": "sft-continued",
            "distillm": "sft-continued", "dss-minillm": "dss-continued"}
REFERENCE_FAMILIES = ("teacher", "reference")  # rows that are not students under test
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
EXCEEDS_MARK = "▲"
SPREAD_RULE = ("± = sample std (ddof=1) over training seeds of each run's score (its mean over generation seeds, "
               "or its one greedy value); a row with one training seed shows its std over generation seeds "
               "instead (the seeds column says which).")
STATISTICS_NOTE = (f"{APPROX_RULE} Δ = method − baseline, mean over the training seeds both have (paired: a seed "
                   "fixes the student init and data order for every method); [95% CI] from Student's t with "
                   "n − 1 degrees of freedom; p two-sided.")
MAJORITY_NOTE = (f"{MAJORITY_LABEL}: per reasoning family, always answering that family's most frequent gold "
                 "answer, computed on the eval set's own rows: an upper bound for any constant guess.")


def method_info(key: str) -> Method:
    return METHODS.get(key) or Method(key, "unknown", "unknown", "not in minillm.report.METHODS", "unknown")


def training_set(key: str) -> str | None:
    """Which of the driver's data sources (driver.json "data_sources") a method trains on: the
    step-by-step rows for the DSS teacher and arms, the instruction data for the others."""
    if key not in METHODS or key == "untrained":
        return None
    return "step-by-step" if key.startswith("dss") else "instruction"


def method_order(keys) -> list[str]:
    known = [key for key in METHODS if key in keys]
    return known + sorted(set(keys) - set(METHODS))


def run_order(runs) -> list[str]:
    """"init" first, then training seeds by number ("seed2" before "seed10"), then anything else."""
    def sort_key(run: str):
        match = re.fullmatch(r"seed(\d+)", run)
        return (0, 0, "") if run == "init" else (1, int(match.group(1)), "") if match else (2, 0, run)
    return sorted(runs, key=sort_key)


def is_training_seed(run: str) -> bool:
    return re.fullmatch(r"seed\d+", run) is not None


# ---------------------------------------------------------------- reading the results folder

@dataclass
class TrainingRun:
    final: dict | None  # None while training is unfinished (or it crashed)
    records: list[dict]  # log.jsonl


@dataclass
class Results:
    root: Path
    evaluations: dict[str, dict[str, dict]]  # method → run → summary.json
    training: dict[str, dict[str, TrainingRun]]  # method → run → its training outputs
    stages: list[dict] = field(default_factory=list)
    teacher_data: dict[str, dict] = field(default_factory=dict)  # data/<name>/<file>.stats.json → its stats
    plan: dict | None = None  # driver.json


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from err


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ReportError(f"{path}:{number}: not valid JSON ({err})") from err
    return records


def load_results(root: str | Path) -> Results:
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"no results folder at {root}")
    evaluations: dict[str, dict[str, dict]] = {}
    for path in sorted(root.glob("eval/*/*/summary.json")):
        summary = read_json(path)
        if not isinstance(summary.get("sets"), dict) or not isinstance(summary.get("seeds"), list):
            raise ReportError(f"{path}: not an evaluate.py summary (needs \"seeds\" and \"sets\")")
        evaluations.setdefault(path.parent.parent.name, {})[path.parent.name] = summary
    if not evaluations:
        hint = ""
        if any(root.glob("eval/*/summary.json")):
            hint = (f"; {root}/eval/<model>/summary.json is the layout without run folders: "
                    f"tabulate it with `python tools/report.py {root}/eval/*/`")
        raise ReportError(f"nothing evaluated under {root}: no eval/<method>/<run>/summary.json "
                          f"(run the main command, or evaluate.py --save {root}/eval/<method>/<run>){hint}")
    training: dict[str, dict[str, TrainingRun]] = {}
    for run_dir in sorted(p for p in root.glob("runs/*/*") if p.is_dir()):
        final, log = run_dir / "final.json", run_dir / "log.jsonl"
        if final.is_file() or log.is_file():
            training.setdefault(run_dir.parent.name, {})[run_dir.name] = TrainingRun(
                read_json(final) if final.is_file() else None, read_jsonl(log) if log.is_file() else [])
    stages = [read_json(path) for path in sorted(root.glob("stages/*.json"))]
    teacher_data = {path.relative_to(root).as_posix(): read_json(path)
                    for path in sorted(root.glob("data/*/*.stats.json"))}
    plan = read_json(root / "driver.json") if (root / "driver.json").is_file() else None
    return Results(root, evaluations, training, stages, teacher_data, plan)


# ---------------------------------------------------------------- statistics

def run_values(entry: dict, metric: str, seeds: list) -> dict | None:
    """One run's values of `metric` in a summary entry: per generation seed when the entry has
    them, else its single value (greedy accuracy, diversity); None when absent."""
    if f"{metric}_per_seed" in entry:
        return {"gen_seeds": seeds, "per_gen_seed": entry[f"{metric}_per_seed"]}
    if isinstance(entry.get(metric), (int, float)):
        return {"gen_seeds": [SINGLE_VALUE_SOURCE.get(metric, "single value")], "per_gen_seed": [entry[metric]]}
    return None


def cell_statistics(per_run: dict[str, dict]) -> dict:
    """One method × set × metric from {run: {"gen_seeds": [...], "per_gen_seed": [...]}}."""
    runs = {run: {**values, "mean": round(mean_and_std(values["per_gen_seed"])[0], 4)}
            for run, values in per_run.items()}
    if len(runs) > 1:
        mean, std = mean_and_std([run["mean"] for run in runs.values()])
        spread = "training seeds"
    else:
        (only,) = runs.values()
        mean, std = mean_and_std(only["per_gen_seed"])
        spread = "generation seeds"
    return {"mean": round(mean, 4), "std": round(std, 4), "spread": spread, "n_train_seeds": len(runs),
            # Runs normally share their generation seeds; the fewest is the honest count.
            "n_gen_seeds": min(len(run["per_gen_seed"]) for run in runs.values()), "per_run": runs}


def spread_description(cell: dict) -> str:
    if cell["spread"] == "training seeds":
        return f"std over {cell['n_train_seeds']} training seeds"
    (only,) = cell["per_run"].values()
    if only["gen_seeds"][0] in SINGLE_VALUE_SOURCE.values():
        return f"one {only['gen_seeds'][0]} value (1 training seed)"
    if cell["n_gen_seeds"] == 1:
        return "one value (1 training seed, 1 generation seed): no spread"
    return f"std over {cell['n_gen_seeds']} generation seeds (1 training seed)"


def method_results(evaluations: dict[str, dict]) -> tuple[dict, dict]:
    """(set → metric → cell, set → family → metric → cell) from one method's {run: summary.json}."""
    gathered: dict[tuple[str, str | None], dict[str, dict[str, dict]]] = {}
    for run in run_order(evaluations):
        summary = evaluations[run]
        for set_name, entry in summary["sets"].items():
            for family, scoped in [(None, entry), *entry.get("families", {}).items()]:
                for metric in METRICS:
                    values = run_values(scoped, metric, summary["seeds"])
                    if values is not None:
                        gathered.setdefault((set_name, family), {}).setdefault(metric, {})[run] = values
    results: dict[str, dict] = {}
    families: dict[str, dict[str, dict]] = {}
    for (set_name, family), metrics in gathered.items():
        cells = {metric: cell_statistics(per_run) for metric, per_run in metrics.items()}
        if family is None:
            results[set_name] = cells
        else:
            families.setdefault(set_name, {})[family] = cells
    return results, families


def family_rows(evaluations: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """set → family → its row counts (rows, answer_rows, multi_answer_rows), from any summary."""
    counts: dict[str, dict[str, dict]] = {}
    for runs in evaluations.values():
        for summary in runs.values():
            for set_name, entry in summary["sets"].items():
                for family, scoped in entry.get("families", {}).items():
                    counts.setdefault(set_name, {}).setdefault(family, {
                        key: scoped[key] for key in ("rows", "answer_rows", "multi_answer_rows") if key in scoped})
    return counts


def _rounded(difference: dict) -> dict:
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in difference.items()}


def paired_cells(cell: dict, baseline: dict) -> dict:
    """The paired difference cell − baseline over the training seeds both have."""
    seeds = [run for run in run_order(cell["per_run"]) if is_training_seed(run) and run in baseline["per_run"]]
    difference = paired_difference([cell["per_run"][run]["mean"] for run in seeds],
                                   [baseline["per_run"][run]["mean"] for run in seeds])
    return {**_rounded(difference), "seeds": seeds, "approx": no_evidence_of_difference(difference)}


def comparison_pairs(keys: list[str]) -> list[tuple[str, str]]:
    """(method, baseline): every student against SFT, the MiniLLM rows also against their control."""
    pairs = [(key, BASELINE) for key in keys
             if BASELINE in keys and key != BASELINE and method_info(key).family not in REFERENCE_FAMILIES]
    return pairs + [(method, control) for method, control in CONTROLS.items() if method in keys and control in keys]


def paired_differences(methods: list[dict]) -> list[dict]:
    """Every comparison pair × set [× family] × compared metric that both sides have."""
    by_key = {method["key"]: method for method in methods}
    differences = []
    for key, baseline in comparison_pairs([m["key"] for m in methods if m["results"]]):
        scopes = [(set_name, None, cells) for set_name, cells in by_key[key]["results"].items()]
        scopes += [(set_name, family, cells) for set_name, families in by_key[key]["families"].items()
                   for family, cells in families.items()]
        for set_name, family, cells in scopes:
            baseline_cells = (by_key[baseline]["results"].get(set_name, {}) if family is None else
                              by_key[baseline]["families"].get(set_name, {}).get(family, {}))
            for metric in COMPARED_METRICS:
                if metric in cells and metric in baseline_cells:
                    differences.append({"method": key, "baseline": baseline, "set": set_name, "family": family,
                                        "metric": metric, **paired_cells(cells[metric], baseline_cells[metric])})
    return differences


def find_difference(comparison: dict, method: str, baseline: str, set_name: str, metric: str,
                    family: str | None = None) -> dict | None:
    return next((d for d in comparison["paired_differences"]
                 if (d["method"], d["baseline"], d["set"], d["family"], d["metric"]) ==
                 (method, baseline, set_name, family, metric)), None)


# ---------------------------------------------------------------- chance: the majority answer

def majority_answer_accuracy(rows: list[dict]) -> dict[str, dict]:
    """family → {"answer_rows", "majority_answer", "accuracy"}: accuracy (percent) of always
    answering the family's most frequent normalised gold answer, over its rows with an answer;
    rows without a `category` count as family "all"."""
    by_family: dict[str, Counter] = {}
    for row in rows:
        answer = normalize_answer(str(row.get("answer", "")))
        if answer:
            by_family.setdefault(row.get("category") or "all", Counter())[answer] += 1
    result = {}
    for family, counts in by_family.items():
        answer, count = counts.most_common(1)[0]
        total = sum(counts.values())
        result[family] = {"answer_rows": total, "majority_answer": answer, "accuracy": round(100.0 * count / total, 4)}
    return result


def pooled_majority_accuracy(families: dict[str, dict]) -> float:
    """The set-level accuracy of answering each family's majority answer (row-weighted)."""
    correct = sum(f["accuracy"] * f["answer_rows"] / 100.0 for f in families.values())
    return round(100.0 * correct / sum(f["answer_rows"] for f in families.values()), 4)


def majority_baselines(evaluations: dict[str, dict[str, dict]]) -> tuple[dict, dict]:
    """(set → {"accuracy", "families"}, set → why it is missing) from the eval sets' own rows.
    Only sets with answers get an entry; an unreadable eval set is a reason, not a crash."""
    paths = {set_name: entry.get("path") for runs in evaluations.values() for summary in runs.values()
             for set_name, entry in summary["sets"].items()
             if "answer_rows" in entry or "accuracy_per_seed" in entry}
    baselines, missing = {}, {}
    for set_name, path in paths.items():
        if not path or not Path(path).is_file():
            missing[set_name] = f"eval set file {path} (summary.json \"path\") is absent"
            continue
        families = majority_answer_accuracy(read_jsonl(Path(path)))
        if families:
            baselines[set_name] = {"path": path, "accuracy": pooled_majority_accuracy(families), "families": families}
    return baselines, missing


# ---------------------------------------------------------------- budgets and teacher-written data

def stream_tokens(final: dict, stream: str, single_stream: bool) -> int | None:
    """Tokens a run trained on from one stream: final.json's "tokens_by_stream" (token-level),
    "rollout_tokens" / "ptx_tokens" (on-policy runs, GKD, the control arms); a one-task-stream run
    counts its only stream (named after its data, e.g. "default", not after the catalogue's
    "label"), or its "tokens" when final.json has no per-stream counts."""
    if stream == "rollout":
        return final.get("rollout_tokens")
    if stream == "pretraining":
        return final.get("ptx_tokens")
    by_stream = final.get("tokens_by_stream") or {}
    if stream in by_stream:
        return by_stream[stream]
    if not single_stream:
        return None
    if len(by_stream) == 1:
        return next(iter(by_stream.values()))
    # "tokens" counts every input token; with generated responses it is not the data's alone
    return None if by_stream or "rollout_tokens" in final else final.get("tokens")


def _mean_or_none(values) -> float | None:
    values = [value for value in values if value is not None]
    return round(float(np.mean(values)), 1) if values else None


def training_budget(key: str, runs: dict[str, TrainingRun]) -> dict:
    """Means over the finished runs of final.json's steps, time and tokens by source (the
    catalogue's streams of `key`); a source the runs do not count is None."""
    finals = {run: runs[run].final for run in run_order(runs) if runs[run].final is not None}
    budget = {"runs": len(finals), "unfinished_runs": len(runs) - len(finals),
              "per_run": {run: {k: final[k] for k in ("steps", "tokens", "tokens_by_stream", "rollout_tokens",
                                                      "ptx_tokens", "supervised_tokens", "train_seconds")
                                if k in final}
                          for run, final in finals.items()}}
    if not finals:
        return budget
    streams = method_info(key).streams
    by_source: dict[str, float | None] = {}  # a source with any stream uncounted is None, not understated
    single_task_stream = len([stream for stream, _ in streams if stream not in ("rollout", "pretraining")]) == 1
    for stream, source in streams:
        mean = _mean_or_none(stream_tokens(final, stream, single_task_stream) for final in finals.values())
        counted = by_source.get(source, 0.0)
        by_source[source] = None if mean is None or counted is None else counted + mean
    budget["tokens_by_source"] = by_source
    for name in ("steps", "supervised_tokens", "train_seconds"):
        budget[name] = _mean_or_none(final.get(name) for final in finals.values())
    return budget


def cumulative_budgets(methods: list[dict]) -> None:
    """Add each budget's steps and tokens including its init's training ("steps_with_init",
    "tokens_with_init") and "exceeds_sft": a student with more steps or tokens than SFT."""
    by_key = {method["key"]: method for method in methods}

    def totals(key: str) -> tuple[float | None, float | None]:
        budget = by_key[key]["budget"] if key in by_key else {}
        if not budget.get("runs"):
            return None, None
        steps = budget["steps"]
        counts = list(budget["tokens_by_source"].values())
        tokens = None if not counts or None in counts else sum(counts)
        init = method_info(key).init_method
        if init is not None:
            init_steps, init_tokens = totals(init)
            steps = None if steps is None or init_steps is None else steps + init_steps
            tokens = None if tokens is None or init_tokens is None else tokens + init_tokens
        return steps, tokens

    sft_steps, sft_tokens = totals(BASELINE)
    for method in methods:
        if not method["budget"]["runs"]:
            continue
        steps, tokens = totals(method["key"])
        method["budget"] |= {"steps_with_init": steps, "tokens_with_init": tokens}
        method["budget"]["exceeds_sft"] = (
            method["family"] not in REFERENCE_FAMILIES and method["key"] != BASELINE
            and any(mine is not None and sft is not None and mine > sft
                    for mine, sft in ((steps, sft_steps), (tokens, sft_tokens))))


def teacher_data_summary(stats: dict) -> dict:
    """rows written / dropped, the parse failure rate and, when the file has them, the
    consistency rate and the teacher-label accuracy (percent)."""
    parse = stats.get("parse") or {}
    failure_rate = parse.get("failure_rate")
    return {"rows_written": stats.get("teacher_rows_written"), "rows_dropped": stats.get("rows_dropped"),
            "failure_rate": None if failure_rate is None else round(100.0 * failure_rate, 2),
            "consistency_rate": stats.get("consistency_rate"),
            "teacher_label_accuracy": stats.get("teacher_label_accuracy", parse.get("teacher_label_accuracy"))}


def scored_rows(evaluations: dict[str, dict[str, dict]]) -> dict[str, list[int]]:
    """set → the distinct numbers of rows its summaries scored (one number unless runs differ)."""
    rows: dict[str, set[int]] = {}
    for runs in evaluations.values():
        for summary in runs.values():
            for set_name, entry in summary["sets"].items():
                if isinstance(entry.get("rows"), int):
                    rows.setdefault(set_name, set()).add(entry["rows"])
    return {set_name: sorted(counts) for set_name, counts in rows.items()}


def stages_in_run_order(stages: list[dict]) -> list[dict]:
    """Stages by when they finished (ISO timestamps sort as text); undated ones last."""
    return sorted(stages, key=lambda stage: (stage.get("finished_at") is None, stage.get("finished_at") or ""))


# ---------------------------------------------------------------- the comparison object

def build_comparison(results: Results) -> dict:
    """Everything the report shows, as one JSON-able object (comparison.json)."""
    keys = method_order(set(results.evaluations) | set(results.training))
    methods = []
    data_sources = (results.plan or {}).get("data_sources", {})
    for key in keys:
        info = method_info(key)
        evaluated = results.evaluations.get(key, {})
        cells, family_cells = method_results(evaluated)
        methods.append({
            "key": key, "label": info.label, "family": info.family, "init": info.init, "objective": info.objective,
            "data": info.data, "sources": dict(info.streams), "training_set": data_sources.get(training_set(key)),
            "evaluated_runs": run_order(evaluated), "trained_runs": run_order(results.training.get(key, {})),
            "results": cells, "families": family_cells,
            "budget": training_budget(key, results.training.get(key, {})),
        })
    cumulative_budgets(methods)
    has_baseline = any(m["key"] == BASELINE and m["results"] for m in methods)
    sets = list(dict.fromkeys(s for m in methods for s in m["results"]))
    majority, majority_missing = majority_baselines(results.evaluations)
    stages = stages_in_run_order(results.stages)
    stage_seconds = [stage["seconds"] for stage in stages if "seconds" in stage]
    decodings = sorted({entry["accuracy_decoding"] for runs in results.evaluations.values()
                        for summary in runs.values() for entry in summary["sets"].values()
                        if "accuracy_decoding" in entry})
    return {
        "results_dir": str(results.root),
        "spread_rule": SPREAD_RULE,
        "approx_rule": APPROX_RULE,
        "baseline": BASELINE if has_baseline else None,
        "sets": sets,
        "accuracy_sets": [s for s in sets if any("accuracy_strict" in m["results"].get(s, {}) for m in methods)],
        "accuracy_decoding": decodings,
        "rows_scored": scored_rows(results.evaluations),
        "generation_seeds": sorted({tuple(summary["seeds"]) for runs in results.evaluations.values()
                                    for summary in runs.values()}),
        "methods_not_run": (results.plan or {}).get("methods_not_run", []),
        "max_eval_rows": (results.plan or {}).get("max_eval_rows"),
        "family_rows": family_rows(results.evaluations),
        "methods": methods,
        "paired_differences": paired_differences(methods),
        "majority_answer": majority,
        "majority_answer_missing": majority_missing,
        "teacher_data": {path: teacher_data_summary(stats) for path, stats in results.teacher_data.items()},
        "stages": [{"name": stage.get("name"), "seconds": stage.get("seconds"),
                    "finished_at": stage.get("finished_at")} for stage in stages],
        "stage_seconds_total": round(sum(stage_seconds), 1) if stage_seconds else None,
    }


# ---------------------------------------------------------------- rendering

def format_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _number(value: float | None, decimals: int = 0) -> str:
    return "–" if value is None else f"{value:,.{decimals}f}"


def _cell_text(cell: dict | None, approx: bool | None = None) -> str:
    if cell is None:
        return "–"
    single_value = cell["n_train_seeds"] == 1 and cell["n_gen_seeds"] == 1  # a ± would claim a spread
    text = f"{cell['mean']:.2f}" if single_value else f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    return text + f" {APPROX_MARK}" if approx else text


def _difference_text(difference: dict | None) -> tuple[str, str]:
    """("Δ [CI]", "p") of a paired difference."""
    if difference is None:
        return "–", "–"
    if difference["ci_low"] is None:
        return f"n={difference['n_pairs']}, no test", "–"
    mark = f" {APPROX_MARK}" if difference["approx"] else ""
    return (f"{difference['mean_difference']:+.2f} [{difference['ci_low']:+.2f}, {difference['ci_high']:+.2f}]{mark}",
            f"{difference['p_value']:.3f}")


def _row_label(method: dict) -> str:
    return method["label"] + f" {EXCEEDS_MARK}" * bool(method["budget"].get("exceeds_sft"))


def _main_columns(comparison: dict) -> list[tuple[str, str]]:
    return ([(s, "rougeL") for s in comparison["sets"]] +
            [(s, "accuracy_strict") for s in comparison["accuracy_sets"]])


def _majority_row(comparison: dict, columns: list[tuple[str, str]], width: int) -> list[str] | None:
    majority = comparison["majority_answer"]
    if not any(metric == "accuracy_strict" and s in majority for s, metric in columns):
        return None
    cells = [f"{majority[s]['accuracy']:.2f}" if metric == "accuracy_strict" and s in majority else "–"
             for s, metric in columns]
    return [MAJORITY_LABEL, "reference", "the eval set's gold answers (one constant per family)"] + cells + \
        ["–"] * (width - 3 - len(cells))


def main_table(comparison: dict) -> str:
    """Method × set: Rouge-L, then strict accuracy for the sets that have it; ≈ by the paired
    test against SFT; the last column says what each ± is over."""
    columns = _main_columns(comparison)
    header = ["Method", "Family", "Data"] + [f"{METRIC_LABELS[m]} {s}" for s, m in columns] + ["±"]
    rows = []
    for method in comparison["methods"]:
        if not method["results"]:
            cells = ["not evaluated"] * len(columns) + ["–"]
        else:
            cells = [_cell_text(method["results"].get(s, {}).get(m), _approx_vs_sft(comparison, method, s, m))
                     for s, m in columns]
            cells.append(_spread_column(method, columns))
        rows.append([_row_label(method), method["family"], method["data"]] + cells)
    majority = _majority_row(comparison, columns, len(header))
    if majority is not None:
        references = sum(1 for m in comparison["methods"] if m["family"] in REFERENCE_FAMILIES)
        rows.insert(references, majority)
    return markdown_table(header, rows)


def _approx_vs_sft(comparison: dict, method: dict, set_name: str, metric: str) -> bool | None:
    difference = find_difference(comparison, method["key"], BASELINE, set_name, metric)
    return None if difference is None else difference["approx"]


def _spread_column(method: dict, columns) -> str:
    """One description when every cell of the row shares it; else each with its sets."""
    by_description: dict[str, dict[str, None]] = {}  # description → its columns (Rouge-L ones by set name)
    for set_name, metric in columns:
        cell = method["results"].get(set_name, {}).get(metric)
        if cell:
            column = set_name if metric == "rougeL" else f"{METRIC_LABELS[metric]} {set_name}"
            by_description.setdefault(spread_description(cell), {})[column] = None
    if len(by_description) == 1:
        return next(iter(by_description))
    return "; ".join(f"{', '.join(names)}: {description}" for description, names in by_description.items())


def paired_table(comparison: dict) -> str:
    """Per comparison pair: Δ [95% CI] and p per set and compared metric (whole sets)."""
    columns = _main_columns(comparison)
    header = ["Method", "vs"]
    for set_name, metric in columns:
        header += [f"Δ {METRIC_LABELS[metric]} {set_name} [95% CI]", "p"]
    labels = {method["key"]: method["label"] for method in comparison["methods"]}
    pairs = dict.fromkeys((d["method"], d["baseline"]) for d in comparison["paired_differences"] if d["family"] is None)
    rows = []
    for method, baseline in pairs:
        found = [find_difference(comparison, method, baseline, set_name, metric) for set_name, metric in columns]
        cells = [labels[method], labels[baseline]]
        for difference in found:
            cells += _difference_text(difference)
        rows.append(cells + [str(max(d["n_pairs"] for d in found if d))])
    return markdown_table(header + ["n seeds"], rows)


def family_paired_table(comparison: dict) -> str | None:
    """The paired differences of the families, one row per pair × set × family × metric."""
    labels = {method["key"]: method["label"] for method in comparison["methods"]}
    rows = [[labels[d["method"]], labels[d["baseline"]], d["set"], d["family"], METRIC_LABELS[d["metric"]],
             *_difference_text(d), str(d["n_pairs"])]
            for d in comparison["paired_differences"] if d["family"] is not None]
    if not rows:
        return None
    return markdown_table(["Method", "vs", "Set", "Family", "Metric", "Δ [95% CI]", "p", "n seeds"], rows)


def family_table(comparison: dict, set_name: str, metric: str) -> str | None:
    """Method × family of one set for one metric; the majority-answer row for accuracy; the
    teachers' accuracy in bold (they must reach `TEACHER_ACCURACY_TARGET`)."""
    families = [family for family in comparison["family_rows"].get(set_name, {})
                if any(metric in m["families"].get(set_name, {}).get(family, {}) for m in comparison["methods"])]
    if not families:
        return None
    rows = []
    for method in comparison["methods"]:
        cells = [method["families"].get(set_name, {}).get(family, {}).get(metric) for family in families]
        if any(cells):
            texts = [_cell_text(cell) for cell in cells]
            if method["family"] == "teacher" and metric.startswith("accuracy"):
                texts = [f"**{text}**" if cell else text for text, cell in zip(texts, cells)]
            rows.append([_row_label(method)] + texts)
    majority = comparison["majority_answer"].get(set_name, {}).get("families", {})
    if metric.startswith("accuracy") and majority:
        rows.append([MAJORITY_LABEL] + [f"{majority[f]['accuracy']:.2f}" if f in majority else "–" for f in families])
    counts = comparison["family_rows"][set_name]
    count_key = "multi_answer_rows" if metric in ("distinct_per_prompt", "coverage") else \
        "answer_rows" if metric.startswith("accuracy") else "rows"
    header = ["Method"] + [f"{family} ({counts[family].get(count_key, '?')} rows)" for family in families]
    return markdown_table(header, rows)


def teacher_accuracy_line(comparison: dict, set_name: str) -> str | None:
    """The teachers' greedy strict accuracy per family against the target."""
    parts = []
    for method in comparison["methods"]:
        if method["family"] != "teacher":
            continue
        for family, cells in method["families"].get(set_name, {}).items():
            if "accuracy_strict" in cells:
                value = cells["accuracy_strict"]["mean"]
                verdict = "meets" if value >= TEACHER_ACCURACY_TARGET else "BELOW"
                parts.append(f"{method['label']} {family} {value:.2f} ({verdict})")
    if not parts:
        return None
    return (f"**Teacher accuracy (strict) per family, target ≥ {TEACHER_ACCURACY_TARGET:.0f}%:** "
            + "; ".join(parts) + ".")


def _tokens_text(value: float | None, source: str, sources: dict[str, str]) -> str:
    return _number(value) if source in sources.values() else ""


def budget_table(comparison: dict) -> str:
    header = ["Method", "Init", "Runs", "Steps", "Steps incl. init"] + \
        [f"{source.capitalize()} tokens" for source in SOURCES] + ["Train time"]
    rows = []
    for method in comparison["methods"]:
        budget = method["budget"]
        unfinished = budget["unfinished_runs"]
        runs = str(budget["runs"]) + (f" (+{unfinished} unfinished)" if unfinished else "")
        if budget["runs"]:
            by_source = budget["tokens_by_source"]
            cells = [runs, _number(budget["steps"]), _number(budget["steps_with_init"])]
            cells += [_tokens_text(by_source.get(source), source, method["sources"]) for source in SOURCES]
            cells.append(format_duration(budget["train_seconds"]) if budget["train_seconds"] is not None else "–")
        else:
            cells = [runs if unfinished else "no training run"] + ["–"] * (3 + len(SOURCES))
        rows.append([_row_label(method), method["init"]] + cells)
    return markdown_table(header, rows)


BUDGET_NOTE = ("Mean over each method's finished training runs (runs/<method>/<run>/final.json). Tokens by "
               "source: gold = written by people, teacher-written = labels or rationales a teacher generated, "
               "rollout = response tokens the student sampled (on-policy methods, GKD, DistiLLM; each counted "
               "once, when sampled), pretraining = the language-modelling corpus; empty = the method has no "
               "such source, – = not counted in final.json. Units differ by source: gold and teacher-written "
               "count each sequence's prompt and response tokens (what the model reads), rollout only the "
               "sampled response tokens, pretraining the corpus tokens. "
               f"Steps incl. init adds the training of the student a row starts from. {EXCEEDS_MARK} = a student "
               "with more steps or tokens (incl. init) than SFT: compare it with its control arm.")


def teacher_data_table(comparison: dict) -> str | None:
    if not comparison["teacher_data"]:
        return None
    rows = []
    for path, data in comparison["teacher_data"].items():
        rate = "–" if data["failure_rate"] is None else f"{data['failure_rate']:.2f}%"
        rows.append([f"`{path}`", _number(data["rows_written"]), _number(data["rows_dropped"]), rate,
                     _number(data["consistency_rate"], 2), _number(data["teacher_label_accuracy"], 2)])
    return markdown_table(["File", "Rows written", "Dropped", "Failure rate", "Consistency (%)",
                           "Teacher-label accuracy (%)"], rows)


TEACHER_DATA_NOTE = ("Consistency = percent of teacher rationales whose final answer equals the teacher's label; "
                     "teacher-label accuracy = percent of teacher labels equal to the gold answer; "
                     "– = not in the stats file.")


def methods_table(comparison: dict) -> str:
    return markdown_table(["Method", "Key", "Family", "Init", "Data", "Training set", "Optimises"], [
        [m["label"], f"`{m['key']}`", m["family"], m["init"], m["data"], m["training_set"] or "–", m["objective"]]
        for m in comparison["methods"]])


def stages_table(comparison: dict) -> str:
    return markdown_table(["Stage", "Finished", "Time"], [
        [stage["name"] or "?", stage["finished_at"] or "–",
         format_duration(stage["seconds"]) if stage["seconds"] is not None else "–"]
        for stage in comparison["stages"]])


def _majority_note(comparison: dict) -> str | None:
    notes = [MAJORITY_NOTE] if comparison["majority_answer"] else []
    notes += [f"No {MAJORITY_LABEL} row for {set_name}: {reason}."
              for set_name, reason in comparison["majority_answer_missing"].items()]
    return " ".join(notes) or None


def _decoding_note(comparison: dict) -> str | None:
    if not comparison["accuracy_sets"]:
        return None
    decodings = " and ".join(comparison["accuracy_decoding"]) or "unknown"
    return (f"Accuracy strict = the label after the answer marker only (no marker = wrong), from {decodings} "
            "decoding; Rouge-L from temperature-1 sampling, as MiniLLM. Flexible accuracy is in the full report.")


def scored_line(comparison: dict) -> str:
    """How many rows of each eval set were scored, and over which generation seeds."""
    sets = "; ".join(f"{set_name} {' or '.join(map(str, rows))}" + " (runs differ)" * (len(rows) > 1)
                     for set_name, rows in comparison["rows_scored"].items())
    cap = f" (the first MAX_EVAL_ROWS={comparison['max_eval_rows']} of each set)" if comparison["max_eval_rows"] else ""
    seeds = " / ".join(" ".join(map(str, seeds)) for seeds in comparison["generation_seeds"])
    several = " (runs differ)" if len(comparison["generation_seeds"]) > 1 else ""
    return f"Rows scored: {sets}{cap}. Generation seeds: {seeds}{several}."


def training_data_line(comparison: dict) -> str | None:
    """Which data each trained row learned from (e.g. the DSS rows on GSM8K, the others on dolly)."""
    by_source: dict[str, list[str]] = {}
    for method in comparison["methods"]:
        if method["training_set"]:
            by_source.setdefault(method["training_set"], []).append(method["label"])
    if not by_source:
        return None
    return "Training data: " + "; ".join(f"{', '.join(labels)}: {source}" for source, labels in by_source.items()) + "."


def not_run_line(comparison: dict) -> str | None:
    if not comparison["methods_not_run"]:
        return None
    return ("Not run (the driver's METHODS left them out): "
            + ", ".join(f"`{key}`" for key in comparison["methods_not_run"]) + ".")


def results_section(comparison: dict, plot_link: str | None = None, report_link: str | None = None) -> str:
    """The main table, the paired differences and the budget table with their notes (comparison.md and the README)."""
    blocks = [scored_line(comparison), training_data_line(comparison), not_run_line(comparison), main_table(comparison),
              SPREAD_RULE, _decoding_note(comparison), _majority_note(comparison)]
    if comparison["paired_differences"]:
        blocks += [paired_table(comparison), STATISTICS_NOTE]
    else:
        blocks.append("No paired differences: no SFT baseline or no student shares its training seeds.")
    blocks += [budget_table(comparison), BUDGET_NOTE]
    if comparison["stage_seconds_total"] is not None:
        blocks.append(f"Total time of the driver's {len(comparison['stages'])} stages: "
                      f"{format_duration(comparison['stage_seconds_total'])}.")
    if plot_link:
        blocks.append(f"![Rouge-L per eval set]({plot_link})")
    if report_link:
        blocks.append(f"Full report (per-family tables, plots, per-seed numbers): [{report_link}]({report_link})")
    return "\n\n".join(block for block in blocks if block) + "\n"


FAMILY_SECTIONS = (("rougeL", "Rouge-L per family (sampled)"),
                   ("accuracy_strict", "Accuracy strict per reasoning family"),
                   ("accuracy_flexible", "Accuracy flexible per reasoning family (marker, else the last number)"),
                   ("distinct_per_prompt", "Distinct answers per prompt over generation seeds (multi-answer families)"),
                   ("coverage", "Coverage: percent of a prompt's valid answers some generation seed produced"))


def family_sections(comparison: dict) -> list[str]:
    blocks = []
    for set_name in comparison["family_rows"]:
        blocks.append(f"### {set_name}")
        blocks.append(teacher_accuracy_line(comparison, set_name))
        for metric, title in FAMILY_SECTIONS:
            table = family_table(comparison, set_name, metric)
            if table:
                blocks += [f"#### {title}", table]
    return [block for block in blocks if block]


def comparison_markdown(comparison: dict, plots: dict[str, str]) -> str:
    """`plots`: plot name → path relative to the markdown file."""
    blocks = [f"# Distillation comparison: {comparison['results_dir']}", "## Results",
              results_section(comparison).rstrip("\n")]
    if comparison["family_rows"]:
        blocks += ["## Per family", *family_sections(comparison)]
    family_differences = family_paired_table(comparison)
    if family_differences:
        blocks += ["## Paired differences per family", family_differences, STATISTICS_NOTE]
    teacher_data = teacher_data_table(comparison)
    if teacher_data:
        blocks += ["## Teacher-written data", teacher_data, TEACHER_DATA_NOTE]
    blocks += ["## Methods", methods_table(comparison)]
    if comparison["stages"]:
        blocks += ["## Stages (in run order)", stages_table(comparison)]
    if plots:
        blocks += ["## Plots"] + [f"![{name}]({path})" for name, path in plots.items()]
    return "\n\n".join(blocks) + "\n"


CSV_COLUMNS = ("row_kind", "method", "label", "family", "set", "task_family", "metric", "mean", "std", "spread",
               "n_train_seeds", "n_gen_seeds", "run", "run_mean", "gen_seeds", "per_gen_seed",
               "baseline", "mean_difference", "ci_low", "ci_high", "p_value", "n_pairs", "approx")


def _cell_scopes(method: dict):
    """(set, task family or "", metric, cell) of one method: whole sets, then families."""
    for set_name, cells in method["results"].items():
        for metric, cell in cells.items():
            yield set_name, "", metric, cell
    for set_name, families in method["families"].items():
        for family, cells in families.items():
            for metric, cell in cells.items():
                yield set_name, family, metric, cell


def comparison_csv(comparison: dict) -> str:
    """Long format. row_kind "run": one row per method × set × task family × metric × run, the
    cell's statistics beside the run's mean and its per-generation-seed values (space-separated).
    row_kind "paired": one row per paired difference."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    labels = {}
    for method in comparison["methods"]:
        labels[method["key"]] = method["label"]
        for set_name, task_family, metric, cell in _cell_scopes(method):
            for run, values in cell["per_run"].items():
                writer.writerow({
                    "row_kind": "run", "method": method["key"], "label": method["label"], "family": method["family"],
                    "set": set_name, "task_family": task_family, "metric": metric, "mean": cell["mean"],
                    "std": cell["std"], "spread": cell["spread"], "n_train_seeds": cell["n_train_seeds"],
                    "n_gen_seeds": cell["n_gen_seeds"], "run": run, "run_mean": values["mean"],
                    "gen_seeds": " ".join(map(str, values["gen_seeds"])),
                    "per_gen_seed": " ".join(map(str, values["per_gen_seed"]))})
    for difference in comparison["paired_differences"]:
        writer.writerow({"row_kind": "paired", "method": difference["method"], "label": labels[difference["method"]],
                         "set": difference["set"], "task_family": difference["family"] or "",
                         "metric": difference["metric"], "run": " ".join(difference["seeds"]),
                         **{key: difference[key] for key in ("baseline", "mean_difference", "ci_low", "ci_high",
                                                             "p_value", "n_pairs", "approx")}})
    return buffer.getvalue()


def replace_readme_section(readme: str, tag: str, section: str, readme_name: str = "README") -> str:
    """Swap the text between `<!-- results:TAG:start -->` and `<!-- results:TAG:end -->`."""
    start, end = f"<!-- results:{tag}:start -->", f"<!-- results:{tag}:end -->"
    if readme.count(start) != 1 or readme.count(end) != 1 or readme.index(start) > readme.index(end):
        raise ReportError(f"{readme_name} needs exactly one '{start}' followed by one '{end}' "
                          f"(the report goes between them)")
    before, rest = readme.split(start)
    _, after = rest.split(end)
    return f"{before}{start}\n{section}{end}{after}"


def relative_link(target: Path, from_dir: Path) -> str:
    return Path(os.path.relpath(target.resolve(), from_dir.resolve())).as_posix()


# ---------------------------------------------------------------- plain per-model tables

def load_summary(path: str | Path) -> dict:
    """Accept a summary.json or the eval folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation summary at {path}; run evaluate.py first")
    return json.loads(path.read_text())


def summary_table(summaries: list[dict], metric: str = "rougeL") -> str:
    """Markdown table: one row per model, one column per eval set, `metric` mean ± std over seeds
    (or its single value: greedy accuracy, diversity)."""
    sets = list(dict.fromkeys(s for summary in summaries for s in summary["sets"]))
    lines = ["| model | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for summary in summaries:
        cells = []
        for s in sets:
            entry = summary["sets"].get(s) or {}
            if metric + "_mean" in entry:
                cells.append(f"{entry[metric + '_mean']:.2f} ± {entry[metric + '_std']:.2f}")
            else:
                cells.append(f"{entry[metric]:.2f}" if isinstance(entry.get(metric), (int, float)) else "–")
        lines.append(f"| {summary['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
