"""The comparison report: every evaluated method of a results folder, with honest error bars.

Reads the layout the main command leaves under results/<preset>/ (nothing is trained here):

  eval/<method>/<run>/summary.json   evaluate.py's summary; <run> is "seed<k>" (training seed k)
                                     or "init" (a model that was not trained by the driver)
  runs/<method>/<run>/final.json     the training budget (steps, tokens or rollout tokens, time)
  runs/<method>/<run>/log.jsonl      training and evaluation records (for the curves)
  stages/<stage>.json                the driver's stage timings

Statistics (per method × eval set × metric): each run's score is its mean over generation
seeds; with ≥ 2 runs (training seeds) the cell is the mean ± sample std (ddof=1) of those run
means; with one run it is that run's mean ± the std over its generation seeds, which measures
generation noise only. A cell is "within noise" of the SFT baseline when |Δ mean| ≤ the larger
of the two stds.

Also the plain per-model tables of evaluate.py and tools/report.py's EVAL_DIR mode
(`load_summary`, `summary_table`).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class ReportError(Exception):
    """Input the report cannot use; the message says which file and why."""


@dataclass(frozen=True)
class Method:
    label: str
    family: str
    init: str
    objective: str


def _kd(divergence: str, label: str) -> Method:
    return Method(f"KD ({label})", "white-box", "random init",
                  f"(1 − r)·CE on gold responses + r·token-level {label} to the teacher's distribution")


# Report rows follow this order; unknown keys come after, labelled by their key.
METHODS: dict[str, Method] = {
    "teacher": Method("Teacher", "teacher", "the preset's teacher checkpoint",
                      "cross-entropy on the gold responses (the model every student distils from)"),
    "dss-teacher": Method("DSS teacher", "teacher", "the SFT teacher",
                          "cross-entropy on rationale + answer targets: writes the rationales and labels "
                          "the step-by-step students learn from"),
    "untrained": Method("Untrained student", "reference", "random init",
                        "nothing: the students' common starting point"),
    "sft": Method("SFT", "baseline", "random init", "cross-entropy on the gold responses"),
    "kd-forward_kl": _kd("forward_kl", "forward KL"),
    "kd-reverse_kl": _kd("reverse_kl", "reverse KL"),
    "kd-symmetric_kl": _kd("symmetric_kl", "symmetric KL"),
    "kd-js_divergence": _kd("js_divergence", "JS divergence"),
    "kd-total_variation": _kd("total_variation", "total variation"),
    "kd-skew_forward_kl": _kd("skew_forward_kl", "skew forward KL"),
    "kd-skew_reverse_kl": _kd("skew_reverse_kl", "skew reverse KL"),
    "kd-adaptive_kl": _kd("adaptive_kl", "adaptive KL"),
    "seqkd": Method("SeqKD", "black-box", "random init",
                    "cross-entropy on the teacher's sampled responses"),
    "minillm": Method("MiniLLM", "white-box", "the SFT student",
                      "reverse KL to the teacher at the sequence level (policy gradient on its own samples) "
                      "+ a pretraining language-modelling loss"),
    "dss": Method("DSS", "step-by-step, black-box", "random init",
                  "cross-entropy on the teacher's labels + α · cross-entropy on its rationales "
                  "(two task-prefixed streams)"),
    "dss-kd": Method("DSS-KD", "step-by-step × white-box", "random init",
                     "the DSS streams with the token-level KD loss to the DSS teacher's distribution"),
    "dss-minillm": Method("DSS-MiniLLM", "step-by-step × white-box", "the DSS student",
                          "MiniLLM's sequence-level reverse KL, starting from the DSS student"),
}
BASELINE = "sft"
METRICS = ("rougeL", "exact_match", "accuracy")  # evaluate.py's per-set metrics
METRIC_LABELS = {"rougeL": "Rouge-L", "exact_match": "Exact match", "accuracy": "Accuracy"}
NOISE_MARK = "≈"
NOISE_RULE = (f"{NOISE_MARK} = within noise of SFT: |mean − SFT mean| ≤ the larger of the two ±. "
              f"No {NOISE_MARK} does not make a difference significant, least of all for a row whose ± "
              "is over generation seeds only (one training seed): training-seed variance is then unmeasured.")
SPREAD_RULE = ("± = sample std (ddof=1) over training seeds of each run's mean over generation seeds; "
               "a row with one training seed shows its std over generation seeds instead (the ± column says which).")


def method_info(key: str) -> Method:
    return METHODS.get(key) or Method(key, "unknown", "unknown", "not in minillm.report.METHODS")


def method_order(keys) -> list[str]:
    known = [key for key in METHODS if key in keys]
    return known + sorted(set(keys) - set(METHODS))


def run_order(runs) -> list[str]:
    """"init" first, then training seeds by number ("seed2" before "seed10"), then anything else."""
    def sort_key(run: str):
        match = re.fullmatch(r"seed(\d+)", run)
        return (0, 0, "") if run == "init" else (1, int(match.group(1)), "") if match else (2, 0, run)
    return sorted(runs, key=sort_key)


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
    return Results(root, evaluations, training, stages)


# ---------------------------------------------------------------- statistics

def mean_and_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


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
    seeds = cell["n_gen_seeds"]
    return f"std over {seeds} generation seed{'s' * (seeds != 1)} (1 training seed)"


def method_results(evaluations: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """set → metric → cell statistics, from one method's {run: summary.json}."""
    gathered: dict[str, dict[str, dict[str, dict]]] = {}
    for run in run_order(evaluations):
        summary = evaluations[run]
        for set_name, entry in summary["sets"].items():
            for metric in METRICS:
                if f"{metric}_per_seed" in entry:
                    gathered.setdefault(set_name, {}).setdefault(metric, {})[run] = {
                        "gen_seeds": summary["seeds"], "per_gen_seed": entry[f"{metric}_per_seed"]}
    return {set_name: {metric: cell_statistics(per_run) for metric, per_run in metrics.items()}
            for set_name, metrics in gathered.items()}


def compare_to_baseline(cell: dict, baseline: dict) -> None:
    cell["delta_vs_sft"] = round(cell["mean"] - baseline["mean"], 4)
    cell["within_noise_of_sft"] = abs(cell["mean"] - baseline["mean"]) <= max(cell["std"], baseline["std"])


def training_budget(runs: dict[str, TrainingRun]) -> dict:
    """Means over the finished runs of final.json's steps, tokens and time. "tokens" is what the
    run's kind counts: input tokens consumed (token-level) or response tokens sampled ("rollout",
    the MiniLLM family); which one is in "token_kind"."""
    finals = {run: runs[run].final for run in run_order(runs) if runs[run].final is not None}
    budget = {"runs": len(finals), "unfinished_runs": len(runs) - len(finals),
              "per_run": {run: {k: final[k] for k in ("steps", "tokens", "rollout_tokens", "supervised_tokens",
                                                      "train_seconds") if k in final}
                          for run, final in finals.items()}}
    if not finals:
        return budget
    rollout = all("rollout_tokens" in final for final in finals.values())
    budget["token_kind"] = "rollout" if rollout else "input"
    for name, key in (("steps", "steps"), ("tokens", "rollout_tokens" if rollout else "tokens"),
                      ("supervised_tokens", "supervised_tokens"), ("train_seconds", "train_seconds")):
        values = [final[key] for final in finals.values() if key in final]
        budget[name] = round(float(np.mean(values)), 1) if values else None
    return budget


def build_comparison(results: Results) -> dict:
    """Everything the report shows, as one JSON-able object (comparison.json)."""
    keys = method_order(set(results.evaluations) | set(results.training))
    methods = []
    for key in keys:
        info = method_info(key)
        methods.append({
            "key": key, "label": info.label, "family": info.family, "init": info.init, "objective": info.objective,
            "evaluated_runs": run_order(results.evaluations.get(key, {})),
            "trained_runs": run_order(results.training.get(key, {})),
            "results": method_results(results.evaluations.get(key, {})),
            "budget": training_budget(results.training.get(key, {})),
        })
    baseline = next((m for m in methods if m["key"] == BASELINE and m["results"]), None)
    for method in methods:
        if baseline is None or method is baseline:
            continue
        for set_name, metrics in method["results"].items():
            for metric, cell in metrics.items():
                if metric in baseline["results"].get(set_name, {}):
                    compare_to_baseline(cell, baseline["results"][set_name][metric])
    sets = list(dict.fromkeys(s for m in methods for s in m["results"]))
    stage_seconds = [stage["seconds"] for stage in results.stages if "seconds" in stage]
    return {
        "results_dir": str(results.root),
        "spread_rule": SPREAD_RULE,
        "noise_rule": NOISE_RULE if baseline else None,
        "baseline": BASELINE if baseline else None,
        "sets": sets,
        "accuracy_sets": [s for s in sets if any("accuracy" in m["results"].get(s, {}) for m in methods)],
        "methods": methods,
        "stages": [{"name": stage.get("name"), "seconds": stage.get("seconds"),
                    "finished_at": stage.get("finished_at")} for stage in results.stages],
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


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return "–"
    text = f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    return text + f" {NOISE_MARK}" if cell.get("within_noise_of_sft") else text


def main_table(comparison: dict) -> str:
    """Method × set: Rouge-L, then accuracy for the sets that have it; and what each ± is over."""
    columns = [(s, "rougeL") for s in comparison["sets"]] + [(s, "accuracy") for s in comparison["accuracy_sets"]]
    header = ["Method", "Family"] + [f"{METRIC_LABELS[m]} {s}" for s, m in columns] + ["±"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in comparison["methods"]:
        if not method["results"]:
            cells = ["not evaluated"] * len(columns) + ["–"]
        else:
            cells = [_cell_text(method["results"].get(s, {}).get(m)) for s, m in columns]
            cells.append(_spread_column(method, columns))
        lines.append("| " + " | ".join([method["label"], method["family"]] + cells) + " |")
    return "\n".join(lines)


def _spread_column(method: dict, columns) -> str:
    """One description when every cell of the row shares it; else each with its sets."""
    by_description: dict[str, dict[str, None]] = {}  # description → its sets, in order
    for set_name, metric in columns:
        cell = method["results"].get(set_name, {}).get(metric)
        if cell:
            by_description.setdefault(spread_description(cell), {})[set_name] = None
    if len(by_description) == 1:
        return next(iter(by_description))
    return "; ".join(f"{', '.join(sets)}: {description}" for description, sets in by_description.items())


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def budget_table(comparison: dict) -> str:
    lines = ["| Method | Init | Runs | Steps | Tokens | Train time |", "|---|---|---|---|---|---|"]
    for method in comparison["methods"]:
        budget = method["budget"]
        unfinished = budget["unfinished_runs"]
        runs = str(budget["runs"]) + (f" (+{unfinished} unfinished)" if unfinished else "")
        if budget["runs"]:
            cells = [runs, _number(budget["steps"]),
                     _number(budget["tokens"]) + f" {budget['token_kind']}" * (budget["tokens"] is not None),
                     format_duration(budget["train_seconds"]) if budget["train_seconds"] is not None else "–"]
        else:
            cells = [runs if unfinished else "no training run", "–", "–", "–"]
        lines.append("| " + " | ".join([method["label"], method["init"]] + cells) + " |")
    return "\n".join(lines)


BUDGET_NOTE = ("Mean over each method's finished training runs (runs/<method>/<run>/final.json). Tokens: "
               "input tokens consumed (token-level methods) or response tokens sampled (rollout; MiniLLM family). "
               "Rows that start from another student (init) count only their own training, not their init's.")


def methods_table(comparison: dict) -> str:
    lines = ["| Method | Key | Family | Init | Optimises |", "|---|---|---|---|---|"]
    for method in comparison["methods"]:
        lines.append(f"| {method['label']} | `{method['key']}` | {method['family']} | {method['init']} "
                     f"| {method['objective']} |")
    return "\n".join(lines)


def results_section(comparison: dict, plot_link: str | None = None, report_link: str | None = None) -> str:
    """The main table and the budget table with their notes (comparison.md and the README)."""
    blocks = [main_table(comparison), SPREAD_RULE,
              comparison["noise_rule"] or "No SFT baseline was evaluated, so no noise comparison.",
              budget_table(comparison), BUDGET_NOTE]
    if comparison["stage_seconds_total"] is not None:
        blocks.append(f"Total time of the driver's {len(comparison['stages'])} stages: "
                      f"{format_duration(comparison['stage_seconds_total'])}.")
    if plot_link:
        blocks.append(f"![Rouge-L per eval set]({plot_link})")
    if report_link:
        blocks.append(f"Full report (plots, per-seed numbers): [{report_link}]({report_link})")
    return "\n\n".join(blocks) + "\n"


def comparison_markdown(comparison: dict, plots: dict[str, str]) -> str:
    """`plots`: plot name → path relative to the markdown file."""
    blocks = [f"# Distillation comparison: {comparison['results_dir']}", "## Results",
              results_section(comparison).rstrip("\n"), "## Methods", methods_table(comparison)]
    if comparison["stages"]:
        blocks += ["## Stages", "\n".join(
            ["| Stage | Time |", "|---|---|"] +
            [f"| {stage['name']} | {format_duration(stage['seconds']) if stage['seconds'] is not None else '–'} |"
             for stage in comparison["stages"]])]
    if plots:
        blocks += ["## Plots"] + [f"![{name}]({path})" for name, path in plots.items()]
    return "\n\n".join(blocks) + "\n"


CSV_COLUMNS = ("method", "label", "family", "set", "metric", "mean", "std", "spread", "n_train_seeds", "n_gen_seeds",
               "delta_vs_sft", "within_noise_of_sft", "run", "run_mean", "gen_seeds", "per_gen_seed")


def comparison_csv(comparison: dict) -> str:
    """One row per method × set × metric × run: the cell's statistics repeated beside each run's
    mean and its per-generation-seed values (space-separated), so nothing is lost."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for method in comparison["methods"]:
        for set_name, metrics in method["results"].items():
            for metric, cell in metrics.items():
                for run, values in cell["per_run"].items():
                    writer.writerow({
                        "method": method["key"], "label": method["label"], "family": method["family"],
                        "set": set_name, "metric": metric, "mean": cell["mean"], "std": cell["std"],
                        "spread": cell["spread"], "n_train_seeds": cell["n_train_seeds"],
                        "n_gen_seeds": cell["n_gen_seeds"], "delta_vs_sft": cell.get("delta_vs_sft", ""),
                        "within_noise_of_sft": cell.get("within_noise_of_sft", ""), "run": run,
                        "run_mean": values["mean"], "gen_seeds": " ".join(map(str, values["gen_seeds"])),
                        "per_gen_seed": " ".join(map(str, values["per_gen_seed"]))})
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
    """Markdown table: one row per model, one column per eval set, `metric` mean ± std over seeds."""
    sets = list(dict.fromkeys(s for summary in summaries for s in summary["sets"]))
    lines = ["| model | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for summary in summaries:
        cells = []
        for s in sets:
            entry = summary["sets"].get(s)
            cells.append(f"{entry[metric + '_mean']:.2f} ± {entry[metric + '_std']:.2f}"
                         if entry and metric + "_mean" in entry else "–")
        lines.append(f"| {summary['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
