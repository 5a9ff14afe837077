"""The comparison of a results folder's methods, per method × eval set [× family] × metric: each run's score is its mean over
generation seeds (or its one greedy value); with ≥ 2 runs (training seeds) the cell is the
mean ± sample std (ddof=1) of those run scores; with one run it is that run's mean ± the std over
its generation seeds, which measures generation noise only. Methods are compared with the paired
t-test over the training seeds they share with the baseline (minillm.statistics): every method
against SFT, the MiniLLM rows also against their control arm; one rule decides "≈" (`APPROX_RULE`).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from minillm.experiments.catalogue import (
    BASELINE,
    COMPARED_METRICS,
    CONTROLS,
    METRICS,
    REFERENCE_FAMILIES,
    SINGLE_VALUE_SOURCE,
    is_training_seed,
    method_info,
    method_order,
    run_order,
    training_set,
)
from minillm.experiments.reading import Results, TrainingRun, read_jsonl
from minillm.metrics import normalize_answer
from minillm.statistics import (
    APPROX_RULE,
    mean_and_std,
    no_evidence_of_difference,
    paired_difference,
)

SPREAD_RULE = ("± = sample std (ddof=1) over training seeds of each run's score (its mean over generation seeds, "
               "or its one greedy value); a row with one training seed shows its std over generation seeds "
               "instead (the seeds column says which).")


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
    """(set → {"accuracy", "families"}, set → why it is missing) from the eval sets' own rows: the
    first `rows` of them, the rows the runs scored (evaluate.py --max-eval-rows); runs that scored
    different numbers of rows of a set leave it without a baseline. Only sets with answers get an
    entry; an unreadable eval set is a reason, not a crash."""
    scored: dict[str, set] = {}
    for runs in evaluations.values():
        for summary in runs.values():
            for set_name, entry in summary["sets"].items():
                if "answer_rows" in entry or "accuracy_per_seed" in entry:
                    scored.setdefault(set_name, set()).add((entry.get("path"), entry.get("rows")))
    baselines, missing = {}, {}
    for set_name, found in scored.items():
        if len(found) > 1:
            missing[set_name] = (f"the runs scored different numbers of its rows "
                                 f"({', '.join(str(r) for r in sorted({r for _, r in found}, key=str))}) or "
                                 f"different files")
            continue
        (path, rows), = found
        if not path or not Path(path).is_file():
            missing[set_name] = f"eval set file {path} (summary.json \"path\") is absent"
            continue
        families = majority_answer_accuracy(read_jsonl(Path(path))[:rows])
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
        "teacher_cache_top_k": (results.plan or {}).get("teacher_cache_top_k"),
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
