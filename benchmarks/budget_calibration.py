"""The cost estimate of minillm/experiments/budget.py against driver runs' measured stage times.

  python benchmarks/budget_calibration.py --run WORK [--run WORK ...] [--fit] [--gflops [THREADS=]G ...]

--run: the WORK (or its results folder) of a finished driver run of any preset. Its stages are
costed by the driver's own plan report (minillm/experiments/costs.py) with the settings the run
recorded (driver.json) and set beside the times the driver measured (driver.jsonl "done" events):
per stage, the sum (what JOBS=1 takes) and the wall time of the driver's schedule with the run's
JOBS (`budget.wall_seconds`) beside the run's own. docs/own-models.md names the runs the
calibration was fitted to (the tiny preset's main command and docs/own-models.md's two CPU
recipes, each verbatim in a fresh clone).
--fit fits the calibration to all of them (launch seconds fixed by --launch, the rest by
non-negative least squares on relative error) and uses it. The probe (`matmul_gflops`, about a
second) runs on each run's STAGE_THREADS threads, as the driver's preflight does; --gflops gives
readings instead, per thread count (`1=69 2=121`) or one for all (on cores shared with other jobs
the probe reads low, and so would the run).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from minillm.experiments import budget, costs, preflight  # noqa: E402


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def measured_run(results: Path) -> tuple[dict[str, float], float]:
    """(stage → seconds, wall seconds from the first stage's start to the last one's end) of a driver
    run, from its driver.jsonl (one uninterrupted run: a resumed stage would count its last part)."""
    events = read_rows(results / "driver.jsonl")
    done = {event["stage"]: event["seconds"] for event in events if event.get("event") == "done" and "stage" in event}
    starts = [event["time"] for event in events if event.get("event") == "started"]
    ends = [event["time"] for event in events if event.get("event") == "done" and "stage" in event]
    if not done:
        raise SystemExit(f"error: {results}/driver.jsonl records no finished stage")
    return done, max(ends) - min(starts)


LAUNCH_GROUPS = {"teacher-sft": "training", "student-sft": "training", "kd": "training", "minillm": "training",
                 "generation": "generation", "evaluation": "evaluation"}


def fit(observations: list[tuple[budget.StageCost, float, float]], data_seconds: list[tuple[float, float]],
        reference_gflops: float, launch_s: dict[str, float]) -> budget.Calibration:
    """Non-negative least squares on relative error of the per-step, per-decoding-step,
    per-logit-element and per-draw costs and the efficiency, the launches fixed (per group of kinds).
    `observations`: (stage, measured seconds, the probe's reading for it); `data_seconds`: (a data
    stage's seconds, the probe's reading) — their mean at the reference reading is a data stage's."""
    import numpy as np
    from scipy.optimize import nnls

    rows, targets = [], []
    for stage, seconds, gflops in observations:
        at_reference = seconds * gflops / reference_gflops  # what the stage takes where the probe reads the reference
        fixed = launch_s[LAUNCH_GROUPS[stage.kind]]
        rows.append(np.array([stage.steps, stage.decoding_steps, stage.flops / (reference_gflops * 1e9),
                              stage.logit_elements, stage.draw_elements]) / at_reference)
        targets.append(1.0 - fixed / at_reference)
    solution, _ = nnls(np.array(rows), np.array(targets))
    data = statistics.mean(seconds * gflops / reference_gflops for seconds, gflops in data_seconds) if data_seconds else 0
    return budget.Calibration(reference_gflops=round(reference_gflops, 1),
                              launch_s={kind: launch_s[group] for kind, group in LAUNCH_GROUPS.items()},
                              step_s=float(f"{solution[0]:.3g}"), decode_step_s=float(f"{solution[1]:.3g}"),
                              efficiency=float(f"{1 / solution[2]:.3g}") if solution[2] else 1.0,
                              logit_element_s=float(f"{solution[3]:.3g}"), draw_element_s=float(f"{solution[4]:.3g}"),
                              data_stage_s=round(data, 1))


def report(title: str, estimates: list[budget.Estimate], measured: dict[str, float]) -> None:
    print(f"\n{title}\n| stage | kind | estimate | measured | estimate / measured |\n|---|---|---|---|---|")
    ratios = []
    for item in estimates:
        seen = measured.get(item.stage.name)
        ratio = item.seconds / seen if seen else None
        ratios += [ratio] if ratio else []
        print(f"| {item.stage.name} | {item.stage.kind} | {item.seconds:.1f} s | {f'{seen:.1f} s' if seen else '–'} | "
              f"{f'{ratio:.2f}' if ratio else '–'} |")
    if ratios:
        print(f"ratios: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")


@dataclass
class CostedRun:
    """A finished driver run: its plan's stages costed, the times it measured, the probe's reading."""
    title: str
    settings: Any
    plan: Any
    stages: list[budget.StageCost]
    measured: dict[str, float]
    wall: float
    gflops: float

    def observations(self) -> list[tuple[budget.StageCost, float, float]]:
        return [(stage, self.measured[stage.name], self.gflops) for stage in self.stages if stage.name in self.measured]

    def data_times(self) -> list[float]:
        costed = {stage.name for stage in self.stages}
        return [seconds for name, seconds in self.measured.items() if name not in costed]


def results_folder(path: Path) -> Path:
    """A WORK's results folder (the one holding driver.json), or `path` itself when it is one."""
    if (path / "driver.json").is_file():
        return path
    found = sorted((path / "results").glob("*/driver.json"))
    if len(found) != 1:
        raise SystemExit(f"error: --run {path}: expected one results/<preset>/driver.json, found "
                         f"{len(found) or 'none'}; pass the results folder")
    return found[0].parent


def costed_run(path: Path, readings: dict[int | None, float]) -> CostedRun:
    results = results_folder(path)
    record = json.loads((results / "driver.json").read_text())
    settings, plan = preflight.load_plan(record["preset"], REPO_ROOT, record["settings"])
    threads = settings.stage_threads
    gflops = readings.get(threads) or readings.get(None) or budget.matmul_gflops(threads=threads)
    print(f"{results}: matmul probe {gflops:.1f} GFLOP/s on {threads} thread(s)"
          f"{' (given)' * bool(readings.get(threads) or readings.get(None))}")
    plan_report = costs.plan_report(settings, plan, gflops)
    measured, wall = measured_run(settings.results)
    title = f"{record['preset']} preset, {results} (TRAIN_SEEDS={' '.join(map(str, settings.train_seeds))})"
    return CostedRun(title, settings, plan, [item.stage for item in plan_report.estimates], measured, wall, gflops)


def gflops_reading(text: str) -> tuple[int | None, float]:
    """`G` (every thread count) or `THREADS=G`."""
    threads, _, value = text.rpartition("=")
    try:
        return (int(threads) if threads else None), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected G or THREADS=G, got {text!r}") from None


def report_run(run: CostedRun, calibration: budget.Calibration) -> None:
    estimates = budget.estimate(run.stages, run.gflops, calibration)
    report(run.title, estimates, run.measured)
    seconds = {item.stage.name: item.seconds for item in estimates}
    data_times = run.data_times()
    data_estimate = calibration.data_seconds(run.gflops)
    if data_times:
        print(f"data stages: {len(data_times)} measured, mean {statistics.mean(data_times):.1f} s; estimate "
              f"{data_estimate:.1f} s each")
    total = sum(seconds.values()) + data_estimate * (len(run.plan.stages) - len(seconds))
    wall_estimate = budget.wall_seconds([(stage.name, seconds.get(stage.name, data_estimate),
                                          [producer.name for producer in run.plan.producers(stage)])
                                         for stage in run.plan.stages], run.settings.jobs)
    measured_sum = sum(run.measured.values())
    print(f"sum of stage times: estimate {budget.format_seconds(total)}, measured "
          f"{budget.format_seconds(measured_sum)} ({total / measured_sum:.2f}); wall with "
          f"JOBS={run.settings.jobs}: estimate {budget.format_seconds(wall_estimate)}, measured "
          f"{budget.format_seconds(run.wall)} ({wall_estimate / run.wall:.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="the WORK (or results folder) of a finished driver run; repeatable")
    parser.add_argument("--gflops", type=gflops_reading, nargs="+", default=[], metavar="[THREADS=]G",
                        help="the probe's readings instead of probing: per thread count, or one for all")
    parser.add_argument("--fit", action="store_true", help="fit the calibration to the measured times and use it")
    parser.add_argument("--launch", nargs=3, type=float, default=(8.0, 8.0, 5.0),
                        metavar=("TRAINING", "GENERATION", "EVALUATION"),
                        help="with --fit: the launch seconds of each group (default: 8 8 5)")
    args = parser.parse_args(argv)
    readings = dict(args.gflops)
    runs = [costed_run(path, readings) for path in args.run]
    calibration = budget.CALIBRATION
    if args.fit:
        launch = dict(zip(("training", "generation", "evaluation"), args.launch))
        observations = [item for run in runs for item in run.observations()]
        data_seconds = [(seconds, run.gflops) for run in runs for seconds in run.data_times()]
        calibration = fit(observations, data_seconds, runs[0].gflops, launch)  # the first run's probe: the reference
        print(f"fitted: {calibration}")
    for run in runs:
        report_run(run, calibration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
