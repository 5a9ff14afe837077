"""The cost estimate of minillm/experiments/budget.py against a driver run's measured stage times.

  TRAIN_SEEDS="10 20 30" python benchmarks/budget_calibration.py --run WORK [--custom] [--fit] [--gflops G]

--run: the WORK of a finished tiny-preset driver run, with the run's settings in the environment
(the same TRAIN_SEEDS, JOBS, ...). Its stages are costed by the driver's own plan report
(minillm/experiments/costs.py) and set beside the times the driver measured (driver.jsonl "done"
events): per stage, the sum (what JOBS=1 takes) and the wall time of the driver's schedule with the
run's JOBS (`budget.wall_seconds`) beside the run's own. --custom adds the README's custom CPU
recipe (GPT-2 16M teacher, 7M student, the official GPT-2 tokenizer, the shared dolly sample;
needs ../shared/data) at its measured stage times (CUSTOM_MEASURED, stages on 2 threads).
--fit fits the calibration to both (launch seconds fixed by --launch, the rest by non-negative least
squares on relative error) and uses it. The probe (`matmul_gflops`, about a second) runs on each
preset's STAGE_THREADS threads, as the driver's preflight does; --gflops / --custom-gflops give
readings instead (on cores shared with other jobs the probe reads low, and so would the run).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from minillm.experiments import budget, costs, preflight  # noqa: E402
from minillm.modeling import load_tokenizer  # noqa: E402

# The README's custom CPU recipe on 2 idle cores (stages on both threads): teacher 1.3 min, KD 1.9 min,
# MiniLLM 1.2 min, evaluations ~20 s.
CUSTOM_MEASURED = {"teacher": 78.0, "kd-forward_kl": 114.0, "minillm": 72.0, "eval-sft": 20.0}
CUSTOM_SETTINGS = {"MAX_LENGTH": 192, "MAX_PROMPT_LENGTH": 128, "DEV_NUM": 50, "MAX_TRAIN_ROWS": 200,
                   "MAX_EVAL_ROWS": 50, "BATCH_SIZE": 16, "EVAL_GEN_NUM": 20, "TEACHER_EPOCHS": 2,
                   "STUDENT_EPOCHS": 2, "MINILLM_STEPS": 8, "NUM_ROLLOUTS": 32, "MINI_BATCH": 16, "PPO_EPOCHS": 1,
                   "MINILLM_EVAL_INTERVAL": 8, "EVAL_SEEDS": "10 20"}  # no PTX_TEXT: no corpus term
CUSTOM_THREADS = 2


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


def custom_stages(gpt2_tokenizer: Path, dolly: Path) -> list[budget.StageCost]:
    """The README's custom CPU recipe's measured stages (one seed), costed as costs.py does."""
    s = CUSTOM_SETTINGS
    tokenizer = load_tokenizer(gpt2_tokenizer)
    teacher, student = (budget.model_shape(REPO_ROOT / "configs/models" / f"gpt2-{size}.json") for size in ("16m", "7m"))
    raw, test = read_rows(dolly / "dolly/raw.jsonl"), read_rows(dolly / "dolly/valid.jsonl")[:s["MAX_EVAL_ROWS"]]
    test = [{**row, "output": row["output"][0] if isinstance(row["output"], list) else row["output"]} for row in test]
    length, prompt = s["MAX_LENGTH"], s["MAX_PROMPT_LENGTH"]
    new = length - prompt

    def data(rows):
        return budget.check_lengths(tokenizer, rows, budget.gold_response, "rows", length, prompt).data()

    train, dev = data(raw[s["DEV_NUM"]:][:s["MAX_TRAIN_ROWS"]]), data(raw[:s["DEV_NUM"]])
    run = dict(dev=dev, eval_gen_num=s["EVAL_GEN_NUM"], new_tokens=new)
    return [budget.token_training("teacher", "teacher-sft", teacher, train, s["TEACHER_EPOCHS"], s["BATCH_SIZE"], **run),
            budget.token_training("kd-forward_kl", "kd", student, train, s["STUDENT_EPOCHS"], s["BATCH_SIZE"],
                                  teacher=teacher, **run),
            budget.on_policy("minillm", student, teacher, s["MINILLM_STEPS"], s["NUM_ROLLOUTS"], s["MINI_BATCH"],
                             s["PPO_EPOCHS"], train, new, dev=dev, eval_gen_num=s["EVAL_GEN_NUM"],
                             eval_interval=s["MINILLM_EVAL_INTERVAL"]),
            budget.evaluation("eval-sft", student, data(test), new, len(s["EVAL_SEEDS"].split()))]


LAUNCH_GROUPS = {"teacher-sft": "training", "student-sft": "training", "kd": "training", "minillm": "training",
                 "generation": "generation", "evaluation": "evaluation"}


def fit(observations: list[tuple[budget.StageCost, float, float]], data_seconds: list[tuple[float, float]],
        reference_gflops: float, launch_s: dict[str, float]) -> budget.Calibration:
    """Non-negative least squares on relative error of the per-step, per-decoding-step and
    per-logit-element costs and the efficiency, the launches fixed (per group of kinds).
    `observations`: (stage, measured seconds, the probe's reading for it); `data_seconds`: (a data
    stage's seconds, the probe's reading) — their mean at the reference reading is a data stage's."""
    import numpy as np
    from scipy.optimize import nnls

    rows, targets = [], []
    for stage, seconds, gflops in observations:
        at_reference = seconds * gflops / reference_gflops  # what the stage takes where the probe reads the reference
        fixed = launch_s[LAUNCH_GROUPS[stage.kind]]
        rows.append(np.array([stage.steps, stage.decoding_steps, stage.flops / (reference_gflops * 1e9),
                              stage.logit_elements]) / at_reference)
        targets.append(1.0 - fixed / at_reference)
    solution, _ = nnls(np.array(rows), np.array(targets))
    data = statistics.mean(seconds * gflops / reference_gflops for seconds, gflops in data_seconds) if data_seconds else 0
    return budget.Calibration(reference_gflops=round(reference_gflops, 1),
                              launch_s={kind: launch_s[group] for kind, group in LAUNCH_GROUPS.items()},
                              step_s=float(f"{solution[0]:.3g}"), decode_step_s=float(f"{solution[1]:.3g}"),
                              efficiency=float(f"{1 / solution[2]:.3g}") if solution[2] else 1.0,
                              logit_element_s=float(f"{solution[3]:.3g}"), data_stage_s=round(data, 1))


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the WORK of a finished tiny-preset driver run")
    parser.add_argument("--gflops", type=float, help="the probe's reading on the tiny preset's STAGE_THREADS")
    parser.add_argument("--custom", action="store_true", help="also the README's custom CPU recipe")
    parser.add_argument("--custom-gflops", type=float, help=f"the probe's reading on {CUSTOM_THREADS} threads")
    parser.add_argument("--fit", action="store_true", help="fit the calibration to the measured times and use it")
    parser.add_argument("--launch", nargs=3, type=float, default=(8.0, 8.0, 5.0),
                        metavar=("TRAINING", "GENERATION", "EVALUATION"),
                        help="with --fit: the launch seconds of each group (default: 8 8 5)")
    args = parser.parse_args(argv)
    settings, plan = preflight.load_plan("tiny", REPO_ROOT, {**os.environ, "WORK": str(args.run.resolve())})
    gflops = args.gflops or budget.matmul_gflops(threads=settings.stage_threads)
    print(f"matmul probe: {gflops:.1f} GFLOP/s on {settings.stage_threads} thread(s){' (given)' * bool(args.gflops)}")
    plan_report = costs.plan_report(settings, plan, gflops)
    measured, wall = measured_run(settings.results)
    stages = [item.stage for item in plan_report.estimates]
    data_times = [seconds for name, seconds in measured.items() if name not in {stage.name for stage in stages}]
    observations = [(stage, measured[stage.name], gflops) for stage in stages if stage.name in measured]
    custom = []
    if args.custom:
        shared = REPO_ROOT.parent / "shared" / "data"
        custom_gflops = args.custom_gflops or budget.matmul_gflops(threads=CUSTOM_THREADS)
        print(f"matmul probe: {custom_gflops:.1f} GFLOP/s on {CUSTOM_THREADS} threads (the custom recipe)")
        custom = [(stage, CUSTOM_MEASURED[stage.name], custom_gflops)
                  for stage in custom_stages(shared / "tokenizers/gpt2", shared / "minillm-data")]
    calibration = budget.CALIBRATION
    if args.fit:
        launch = dict(zip(("training", "generation", "evaluation"), args.launch))
        calibration = fit(observations + custom, [(seconds, gflops) for seconds in data_times], gflops, launch)
        print(f"fitted: {calibration}")
    estimates = budget.estimate(stages, gflops, calibration)
    report(f"tiny preset, {args.run} (TRAIN_SEEDS={' '.join(map(str, settings.train_seeds))})", estimates, measured)
    seconds = {item.stage.name: item.seconds for item in estimates}
    data_estimate = calibration.data_seconds(gflops)
    print(f"data stages: {len(data_times)} measured, mean {statistics.mean(data_times):.1f} s; estimate "
          f"{data_estimate:.1f} s each")
    total = sum(seconds.values()) + data_estimate * (len(plan.stages) - len(seconds))
    wall_estimate = budget.wall_seconds([(stage.name, seconds.get(stage.name, data_estimate),
                                          [producer.name for producer in plan.producers(stage)])
                                         for stage in plan.stages], settings.jobs)
    print(f"sum of stage times: estimate {budget.format_seconds(total)}, measured "
          f"{budget.format_seconds(sum(measured.values()))} ({total / sum(measured.values()):.2f}); wall with "
          f"JOBS={settings.jobs}: estimate {budget.format_seconds(wall_estimate)}, measured "
          f"{budget.format_seconds(wall)} ({wall_estimate / wall:.2f})")
    if custom:
        custom_estimates = [budget.Estimate(stage, calibration.seconds(stage, gflops))
                            for (stage, _, gflops) in custom]
        report("custom preset, README CPU recipe", custom_estimates, CUSTOM_MEASURED)
        print(f"sum: estimate {sum(item.seconds for item in custom_estimates):.0f} s, measured "
              f"{sum(CUSTOM_MEASURED.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
