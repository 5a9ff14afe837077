"""Reading a results folder into `Results`, refusing what the report cannot use.

Reads the layout the main command leaves under results/<preset>/ (nothing is trained here):

  eval/<method>/<run>/summary.json   evaluate.py's summary; <run> is "seed<k>" (training seed k)
                                     or "init" (a model that was not trained by the driver)
  eval/<method>/<run>/<set>/<seed or "greedy">/answers.jsonl
                                     each prompt's reference and prediction (the one-seed verdicts
                                     rescore them per prompt)
  runs/<method>/<run>/final.json     the training budget (steps, tokens by stream, rollout and
                                     pretraining tokens, time)
  runs/<method>/<run>/log.jsonl      training and evaluation records (for the curves)
  runs/<method>/<run>/config.json    the run's flags (model, teacher, epochs, ratios: the compute
                                     estimate)
  stages/<stage>.json                the driver's stage timings
  data/<name>/*.stats.json           what a teacher wrote (rows kept / dropped, consistency)
  driver.json                        the driver's plan (minillm/experiments/plan.py): the arms run
                                     and not run, each training data source, the row caps, the
                                     evaluations and stages of the run (optional). When it lists
                                     the evaluations, only those are read, with their training
                                     runs and stage records: results of earlier plans that remain
                                     in the folder (other METHODS, TRAIN_SEEDS or settings) are not
                                     the current run's
  the eval sets (summary.json's "path" per set): their gold answers, for the reference rows
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class ReportError(Exception):
    """Input the report cannot use; the message says which file and why."""


@dataclass
class TrainingRun:
    final: dict | None  # None while training is unfinished (or it crashed)
    records: list[dict]  # log.jsonl
    config: dict | None = None  # config.json: the run's flags (None when absent)


@dataclass
class Results:
    root: Path
    evaluations: dict[str, dict[str, dict]]  # method → run → summary.json
    training: dict[str, dict[str, TrainingRun]]  # method → run → its training outputs
    stages: list[dict] = field(default_factory=list)
    teacher_data: dict[str, dict] = field(default_factory=dict)  # data/<name>/<file>.stats.json → its stats
    plan: dict | None = None  # driver.json
    eval_dirs: dict[str, dict[str, Path]] = field(default_factory=dict)  # method → run → its evaluate.py folder

    def answers(self, method: str, run: str, set_name: str, decoding: str) -> list[dict] | None:
        """answers.jsonl of one decoding ("greedy" or a generation seed) of one evaluation; None when absent."""
        folder = self.eval_dirs.get(method, {}).get(run)
        path = folder / set_name / decoding / "answers.jsonl" if folder else None
        return read_jsonl(path) if path is not None and path.is_file() else None


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from err


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):  # U+2028 may sit in a string
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
    plan = read_json(root / "driver.json") if (root / "driver.json").is_file() else None
    planned = (plan or {}).get("evaluations")
    if planned is not None:  # the current plan's evaluations only
        summaries = [root / entry["path"] / "summary.json" for entry in planned]
        summaries = [path for path in summaries if path.is_file()]
    else:
        summaries = sorted(root.glob("eval/*/*/summary.json"))
    evaluations: dict[str, dict[str, dict]] = {}
    eval_dirs: dict[str, dict[str, Path]] = {}
    for path in summaries:
        summary = read_json(path)
        if not isinstance(summary.get("sets"), dict) or not isinstance(summary.get("seeds"), list):
            raise ReportError(f"{path}: not an evaluate.py summary (needs \"seeds\" and \"sets\")")
        evaluations.setdefault(path.parent.parent.name, {})[path.parent.name] = summary
        eval_dirs.setdefault(path.parent.parent.name, {})[path.parent.name] = path.parent
    if not evaluations:
        hint = ""
        if any(root.glob("eval/*/summary.json")):
            hint = (f"; {root}/eval/<model>/summary.json is the layout without run folders: "
                    f"tabulate it with `python tools/report.py {root}/eval/*/`")
        raise ReportError(f"nothing evaluated under {root}: no eval/<method>/<run>/summary.json "
                          f"(run the main command, or evaluate.py --save {root}/eval/<method>/<run>){hint}")
    if planned is not None:
        run_dirs = [root / "runs" / entry["method"] / entry["run"] for entry in planned]
    else:
        run_dirs = sorted(p for p in root.glob("runs/*/*") if p.is_dir())
    training: dict[str, dict[str, TrainingRun]] = {}
    for run_dir in run_dirs:
        final, log, config = run_dir / "final.json", run_dir / "log.jsonl", run_dir / "config.json"
        if final.is_file() or log.is_file():
            training.setdefault(run_dir.parent.name, {})[run_dir.name] = TrainingRun(
                read_json(final) if final.is_file() else None, read_jsonl(log) if log.is_file() else [],
                read_json(config) if config.is_file() else None)
    stage_names = (plan or {}).get("stages")
    stages = [read_json(path) for path in sorted(root.glob("stages/*.json"))
              if not path.name.endswith(".running.json") and (stage_names is None or path.stem in stage_names)]
    teacher_data = {path.relative_to(root).as_posix(): read_json(path)
                    for path in sorted(root.glob("data/*/*.stats.json"))}
    return Results(root, evaluations, training, stages, teacher_data, plan, eval_dirs)


def load_summary(path: str | Path) -> dict:
    """Accept a summary.json or the eval folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation summary at {path}; run evaluate.py first")
    return json.loads(path.read_text())
