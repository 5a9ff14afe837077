"""The comparison report's figures (PNG, matplotlib's Agg canvas: no display, no global pyplot state).

  rougeL.png           Rouge-L per eval set and method, error bars = the table's ±
  accuracy.png         strict answer accuracy (greedy), for the sets that have it
  accuracy_families.png  strict answer accuracy per reasoning family (eval rows with a category)
  training_curves.png  training loss (token-level runs), reverse-KL estimate and reward (MiniLLM
                       family), validation Rouge-L, each against the optimizer step
  quality_vs_compute.png  each trained arm's score (Rouge-L at temperature 1 and greedy, strict
                       accuracy) against its training compute incl. init (FLOPs, log scale), with
                       95% confidence intervals
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minillm.experiments.catalogue import COMPARED_METRICS, METRIC_LABELS
from minillm.experiments.reading import Results
from minillm.fileio import sibling_temporary_path
from minillm.statistics import mean_confidence_half_width

ROUGE_PLOT = "rougeL.png"
ACCURACY_PLOT = "accuracy.png"
FAMILY_ACCURACY_PLOT = "accuracy_families.png"
ACCURACY_METRIC = "accuracy_strict"
CURVES_PLOT = "training_curves.png"
COMPUTE_PLOT = "quality_vs_compute.png"
# (panel title, record kind, key): token-level training records carry "loss", MiniLLM-family
# ones "rev_kl" and "reward", evaluation records ("event": "eval") "rougeL".
CURVE_PANELS = (
    ("Training loss (token-level runs; each method's own objective)", "train", "loss"),
    ("Reverse-KL estimate (MiniLLM family)", "train", "rev_kl"),
    ("Reward (MiniLLM family)", "train", "reward"),
    ("Validation Rouge-L", "eval", "rougeL"),
)


def method_colors(comparison: dict) -> dict[str, tuple]:
    """The same colour for a method in every figure."""
    keys = [method["key"] for method in comparison["methods"]]
    cmap = colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {key: cmap(index % cmap.N) for index, key in enumerate(keys)}


def write_png(figure: Figure, path: Path) -> None:
    """Render, then rename into place, so a reader never sees half a PNG."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = sibling_temporary_path(path)
    try:
        Path(temporary).write_bytes(buffer.getvalue())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def metric_bars(comparison: dict, metric: str, groups: list[tuple[str, str | None]], colors: dict[str, tuple],
                group_name: str = "eval set", chance: dict[tuple[str, str | None], float] | None = None) -> Figure:
    """Grouped bars: one group per (eval set, task family or None for the whole set), one bar
    per method that has the metric there; `chance`: a dashed line across the groups that have one."""
    def cell(method: dict, group: tuple[str, str | None]) -> dict | None:
        set_name, family = group
        cells = (method["results"].get(set_name, {}) if family is None
                 else method["families"].get(set_name, {}).get(family, {}))
        return cells.get(metric)

    methods = [m for m in comparison["methods"] if any(cell(m, group) for group in groups)]
    figure = Figure(figsize=(max(6.0, 1.2 + 0.35 * len(methods) * len(groups)), 4.5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(methods)
    for index, method in enumerate(methods):
        cells = [cell(method, group) for group in groups]
        positions = [i + (index - (len(methods) - 1) / 2) * width for i, found in enumerate(cells) if found]
        present = [found for found in cells if found]
        axes.bar(positions, [c["mean"] for c in present], width, yerr=[c["std"] for c in present], capsize=3,
                 color=colors[method["key"]], label=method["label"])
    chance_label = "chance (uniform over the named options)"
    for index, group in enumerate(groups):
        if chance and group in chance:
            axes.hlines(chance[group], index - 0.45, index + 0.45, colors="black", linestyles="dashed",
                        label=chance_label)
            chance_label = None
    sets = {set_name for set_name, _ in groups}
    axes.set_xticks(np.arange(len(groups)), [family if family and len(sets) == 1 else
                                             f"{set_name}/{family}" if family else set_name
                                             for set_name, family in groups])
    axes.set_ylabel(f"{METRIC_LABELS[metric]} (0-100)")
    axes.set_title(f"{METRIC_LABELS[metric]} per {group_name} (error bars: the table's ±)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    return figure


def confidence_half_width(cell: dict) -> float | None:
    """The 95% CI half-width of a cell's mean: over training seeds, or with one training seed over
    its generation seeds (evaluation noise only); None for a single value."""
    n = cell["n_train_seeds"] if cell["n_train_seeds"] > 1 else cell["n_gen_seeds"]
    return mean_confidence_half_width(cell["std"], n)


def quality_vs_compute(comparison: dict, colors: dict[str, tuple]) -> Figure | None:
    """One panel per eval set × compared metric: each student's score against its training compute
    incl. init (log x), 95% CI bars; None when no arm has both."""
    panels = []
    for metric in COMPARED_METRICS:
        for set_name in comparison["sets"]:
            points = [(method, method["compute"]["with_init"], method["results"][set_name][metric])
                      for method in comparison["methods"]
                      if not method["compute"].get("shared") and method["compute"].get("with_init")
                      and metric in method["results"].get(set_name, {})]
            if points:
                panels.append((set_name, metric, points))
    if not panels:
        return None
    figure = Figure(figsize=(6.0 * len(panels), 4.8), layout="constrained")
    for axes, (set_name, metric, points) in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels):
        for method, flops, cell in points:
            half_width = confidence_half_width(cell)
            axes.errorbar([flops], [cell["mean"]], yerr=None if half_width is None else [[half_width], [half_width]],
                          fmt="o", capsize=3, color=colors[method["key"]])
            axes.annotate(method["label"], (flops, cell["mean"]), textcoords="offset points", xytext=(4, 4),
                          fontsize="x-small")
        axes.set_xscale("log")
        axes.set_xlabel("training compute incl. init (FLOPs, log scale)")
        axes.set_ylabel(f"{METRIC_LABELS[metric]} {set_name} (0-100)")
        axes.set_title(f"{METRIC_LABELS[metric]} {set_name}")
        axes.grid(alpha=0.3)
    figure.suptitle("Quality vs training compute (bars: 95% CI over training seeds; one-seed rows: over generation "
                    "seeds, evaluation noise only; the teachers' own training in no arm's compute)", fontsize="small")
    return figure


def last_record_per_step(records) -> list[dict]:
    """A resumed run appends to its log and repeats the steps after its checkpoint: keep the latest."""
    by_step = {record["step"]: record for record in records if "step" in record}
    return [by_step[step] for step in sorted(by_step)]


def training_curves(comparison: dict, results: Results, colors: dict[str, tuple]) -> Figure:
    figure = Figure(figsize=(12, 8), layout="constrained")
    grid = figure.subplots(2, 2).ravel()
    for axes, (title, kind, key) in zip(grid, CURVE_PANELS):
        labelled = set()
        for method in comparison["methods"]:
            for run, training in results.training.get(method["key"], {}).items():
                records = [r for r in training.records
                           if (r.get("event") == "eval" if kind == "eval" else "event" not in r)]
                points = [(r["step"], r[key]) for r in last_record_per_step(records) if key in r]
                if not points:
                    continue
                steps, values = zip(*points)
                label = None if method["key"] in labelled else method["label"]
                labelled.add(method["key"])
                axes.plot(steps, values, color=colors[method["key"]], label=label, alpha=0.85, linewidth=1.2,
                          marker="o" if kind == "eval" or len(points) == 1 else None, markersize=3)
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        if labelled:
            axes.legend(fontsize="small")
        else:
            axes.text(0.5, 0.5, "no runs log this", ha="center", va="center", transform=axes.transAxes, color="gray")
    figure.suptitle("Training curves (one line per training run; x: the run's optimizer steps)")
    return figure


def write_plots(comparison: dict, results: Results, plots_dir: Path) -> dict[str, Path]:
    """Write the figures that have data; returns title → path."""
    colors = method_colors(comparison)
    written = {"Rouge-L per eval set": plots_dir / ROUGE_PLOT}
    write_png(metric_bars(comparison, "rougeL", [(s, None) for s in comparison["sets"]], colors),
              written["Rouge-L per eval set"])
    chance = {(set_name, None): level["pooled"] for set_name, level in comparison["chance"].items()}
    chance |= {(set_name, family): value for set_name, level in comparison["chance"].items()
               for family, value in level["families"].items()}
    if comparison["accuracy_sets"]:
        written["Answer accuracy (strict)"] = plots_dir / ACCURACY_PLOT
        write_png(metric_bars(comparison, ACCURACY_METRIC, [(s, None) for s in comparison["accuracy_sets"]], colors,
                              chance=chance), written["Answer accuracy (strict)"])
    family_groups = [(set_name, family) for set_name, families in comparison["family_rows"].items()
                     for family in families
                     if any(ACCURACY_METRIC in m["families"].get(set_name, {}).get(family, {})
                            for m in comparison["methods"])]
    if family_groups:
        written["Answer accuracy (strict) per family"] = plots_dir / FAMILY_ACCURACY_PLOT
        write_png(metric_bars(comparison, ACCURACY_METRIC, family_groups, colors, "reasoning family", chance=chance),
                  written["Answer accuracy (strict) per family"])
    compute = quality_vs_compute(comparison, colors)
    if compute is not None:
        written["Quality vs training compute"] = plots_dir / COMPUTE_PLOT
        write_png(compute, written["Quality vs training compute"])
    if any(run.records for runs in results.training.values() for run in runs.values()):
        written["Training curves"] = plots_dir / CURVES_PLOT
        write_png(training_curves(comparison, results, colors), written["Training curves"])
    return written
