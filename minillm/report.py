"""Result tables from evaluation summaries (`{run}/eval/summary.json`)."""
from __future__ import annotations

import json
from pathlib import Path


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
