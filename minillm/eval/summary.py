"""The plain per-model table of evaluation summaries (evaluate.py's summary.md, tools/report.py's
EVAL_DIR mode). Kept out of the report layer (minillm/experiments): an evaluation stage's
fingerprint hashes every module evaluate.py imports, so a change to the report or the method
registry must not rerun the evaluations."""
from __future__ import annotations


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
