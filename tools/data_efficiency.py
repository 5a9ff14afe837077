"""The data-efficiency curve of step-by-step distillation (the DSS paper's Figure 2 protocol): one
driver run per training-set fraction, each arm's strict answer accuracy against the fraction.

  python tools/data_efficiency.py --point 0.125=DIR/fraction-0.125/comparison.json ... --out docs/results/data-efficiency

Each `--point FRACTION=FILE` names the comparison.json of a run with TRAIN_FRACTION=FRACTION (made by
scripts/dss/run_data_efficiency.sh, which keeps the run's driver.json beside it: when present, its
TRAIN_FRACTION must be FRACTION). The first eval set with answers is scored (named in the table). Writes OUT/data-efficiency.md (accuracy mean ± 95% CI over training
seeds per arm and fraction, chance beside it; each arm's paired difference to label-only SFT with its 95%
CI and p, Holm-adjusted within each fraction; exploratory: no declared primary family; each arm's optimizer
steps per point, the budget it held), OUT/data-efficiency.json
(the same numbers) and OUT/data_efficiency.png (the curve). Prints the table. Exit status 1 when a file is
unreadable or holds no accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from minillm.experiments.methods import is_training_seed  # noqa: E402
from minillm.experiments.plots import write_png  # noqa: E402
from minillm.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from minillm.statistics import format_p, holm_adjust, mean_confidence_half_width, paired_difference  # noqa: E402

METRIC = "accuracy_strict"
BASELINE = "label-sft"  # the paper's standard fine-tuning: what each arm is compared with at every fraction
TABLE = "data-efficiency.md"
PLOT = "data_efficiency.png"


class CurveError(ValueError):
    pass


def _per_seed(cell: dict) -> dict[str, float]:
    return {run: values["mean"] for run, values in cell["per_run"].items() if is_training_seed(run)}


def read_point(fraction: float, path: Path) -> dict:
    """One fraction's arms: {"fraction", "set", "chance", "arms": {key: {"label", "seeds": {run: accuracy}}}}."""
    if not 0 < fraction <= 1:
        raise CurveError(f"--point {fraction:g}={path}: a training fraction is in (0, 1]")
    try:
        comparison = json.loads(path.read_text())
        driver = path.with_name("driver.json")
        recorded = json.loads(driver.read_text())["settings"].get("TRAIN_FRACTION") if driver.is_file() else None
        if recorded is not None and float(recorded) != fraction:
            raise CurveError(f"{path}: its run trained on TRAIN_FRACTION={recorded} ({driver}), not {fraction:g}")
        return _arms(fraction, path, comparison)
    except (OSError, json.JSONDecodeError) as err:
        raise CurveError(f"{path}: {err}") from None
    except (KeyError, TypeError, AttributeError) as err:
        raise CurveError(f"{path}: not a comparison.json of tools/report.py ({type(err).__name__}: {err})") from None


def _arms(fraction: float, path: Path, comparison: dict) -> dict:
    sets = comparison.get("accuracy_sets") or []
    if not sets:
        raise CurveError(f"{path}: no eval set with answers (accuracy_sets is empty)")
    set_name = sets[0]
    arms = {}
    for method in comparison["methods"]:
        cell = method["results"].get(set_name, {}).get(METRIC)
        if cell and method["family"] not in ("teacher", "reference"):
            steps = (method.get("budget") or {}).get("steps_with_init")  # the budget the point held
            arms[method["key"]] = {"label": method["label"], "seeds": _per_seed(cell), "steps": steps}
    if not arms:
        raise CurveError(f"{path}: no trained arm has {METRIC} on {set_name}")
    chance = (comparison.get("chance") or {}).get(set_name, {}).get("pooled")
    return {"fraction": fraction, "set": set_name, "chance": chance, "arms": arms}


def summarise(points: list[dict]) -> dict:
    """Per fraction and arm: mean, 95% CI half-width over training seeds, and the paired difference
    to label-only SFT (same seeds) with Holm over the arms at that fraction."""
    rows = []
    for point in sorted(points, key=lambda p: p["fraction"]):
        base = point["arms"].get(BASELINE)
        arms, differences = {}, {}
        for key, arm in point["arms"].items():
            values = list(arm["seeds"].values())
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            arms[key] = {"label": arm["label"], "mean": float(np.mean(values)), "n": len(values),
                         "half_width": mean_confidence_half_width(std, len(values)), "per_seed": arm["seeds"],
                         "steps_with_init": arm.get("steps")}
            if base and key != BASELINE:
                seeds = sorted(set(arm["seeds"]) & set(base["seeds"]))
                differences[key] = paired_difference([arm["seeds"][s] for s in seeds], [base["seeds"][s] for s in seeds])
        for key, adjusted in zip(differences, holm_adjust([d["p_value"] for d in differences.values()])):
            differences[key]["p_holm"] = adjusted
        rows.append({"fraction": point["fraction"], "set": point["set"], "chance": point["chance"], "arms": arms,
                     "versus_label_sft": differences})
    return {"metric": METRIC, "baseline": BASELINE, "points": rows}


def _cell(arm: dict | None) -> str:
    if arm is None:
        return "–"
    width = f" ± {arm['half_width']:.1f}" if arm["half_width"] is not None else ""
    return f"{arm['mean']:.1f}{width} (n={arm['n']})"


def _difference(result: dict | None) -> str:
    if result is None or result["mean_difference"] is None:
        return "–"
    interval = (f" [{result['ci_low']:+.1f}, {result['ci_high']:+.1f}]" if result["ci_low"] is not None
                else f" ({result.get('note', 'no interval')})")
    return f"{result['mean_difference']:+.1f}{interval}, p {format_p(result['p_value'])}, Holm {format_p(result.get('p_holm'))}"


def markdown(summary: dict) -> str:
    points = summary["points"]
    keys = list(dict.fromkeys(key for point in points for key in point["arms"]))
    labels = {key: next(p["arms"][key]["label"] for p in points if key in p["arms"]) for key in keys}
    fractions = [f"{point['fraction']:g}" for point in points]
    lines = [f"Strict answer accuracy (greedy, %) on the reasoning rows of `{points[0]['set']}`, mean ± 95% CI over "
             f"training seeds, by the fraction of training questions (`TRAIN_FRACTION`).", "",
             "| arm | " + " | ".join(f"fraction {f}" for f in fractions) + " |",
             "|---|" + "---|" * len(points)]
    for key in keys:
        lines.append(f"| {labels[key]} | " + " | ".join(_cell(p["arms"].get(key)) for p in points) + " |")
    lines.append("| chance (uniform over the animals named) | " + " | ".join(
        f"{p['chance']:.1f}" if p["chance"] is not None else "–" for p in points) + " |")
    lines += ["", f"Paired difference to label-only SFT (same training seeds; 95% CI, t-test p, Holm over the arms "
                  f"at each fraction; exploratory):", "",
              "| arm | " + " | ".join(f"fraction {f}" for f in fractions) + " |", "|---|" + "---|" * len(points)]
    for key in keys:
        if key != BASELINE:
            lines.append(f"| {labels[key]} − Label-only SFT | " + " | ".join(
                _difference(p["versus_label_sft"].get(key)) for p in points) + " |")
    lines += ["", "Optimizer steps per training run, incl. those of the student an arm continues (the mean over its "
                  "runs): the budget each point held. With `--fraction-budget steps` (the default, as the DSS "
                  "reference) a fraction trains the whole set's steps; with `epochs`, its own.", "",
              "| arm | " + " | ".join(f"fraction {f}" for f in fractions) + " |", "|---|" + "---|" * len(points)]
    for key in keys:
        lines.append(f"| {labels[key]} | " + " | ".join(_steps(p["arms"].get(key)) for p in points) + " |")
    return "\n".join(lines) + "\n"


def _steps(arm: dict | None) -> str:
    return "–" if arm is None or arm.get("steps_with_init") is None else f"{arm['steps_with_init']:.0f}"


def curve(summary: dict) -> Figure:
    figure = Figure(figsize=(6.4, 4.6), layout="constrained")
    axes = figure.subplots()
    points = summary["points"]
    keys = list(dict.fromkeys(key for point in points for key in point["arms"]))
    for key in keys:
        xs = [p["fraction"] for p in points if key in p["arms"]]
        arms = [p["arms"][key] for p in points if key in p["arms"]]
        widths = [a["half_width"] or 0.0 for a in arms]
        axes.errorbar(xs, [a["mean"] for a in arms], yerr=widths, marker="o", capsize=3, label=arms[0]["label"])
    chance = [(p["fraction"], p["chance"]) for p in points if p["chance"] is not None]
    if chance:
        axes.plot(*zip(*chance), linestyle=":", color="grey", label="chance")
    axes.set_xscale("log", base=2)
    axes.set_xticks([p["fraction"] for p in points], [f"{p['fraction']:g}" for p in points])
    axes.set_xlabel("fraction of the training questions")
    axes.set_ylabel("strict accuracy, greedy (%)")
    axes.set_title("Data efficiency (bars: 95% CI over training seeds)", fontsize="small")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="x-small")
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", nargs="+", required=True, metavar="FRACTION=FILE")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        points = []
        for spec in args.point:
            fraction, _, path = spec.partition("=")
            try:
                value = float(fraction)
            except ValueError:
                raise CurveError(f"--point {spec!r}: write FRACTION=FILE, e.g. 0.25=runs/fraction-0.25/comparison.json")
            if value in [point["fraction"] for point in points]:
                raise CurveError(f"--point {spec!r}: fraction {value:g} given twice")
            points.append(read_point(value, Path(path)))
        missing = [f"{point['fraction']:g}" for point in points if BASELINE not in point["arms"]]
        if missing:
            print(f"warning: no {BASELINE} arm at fraction {', '.join(missing)}: no paired differences there",
                  file=sys.stderr)
    except CurveError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    summary = summarise(points)
    table = markdown(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / TABLE, table)
    atomic_write_json(args.out / "data-efficiency.json", summary)
    write_png(curve(summary), args.out / PLOT)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
