"""The cost estimate of minillm/experiments/budget.py against measured stage times.

  python tools/make_tiny_default.py --root /tmp/tiny      # the embedded default's inputs
  python benchmarks/budget_calibration.py --tiny-root /tmp/tiny [--gflops G] [--custom]

Builds the tiny preset's stages (default METHODS, one training seed) from its real models and
data, and, with --custom, the README's custom CPU recipe (GPT-2 16M teacher, 7M student, the
official GPT-2 tokenizer, the shared dolly sample; needs ../shared/data), and prints each
stage's FLOPs, estimate and the measured time beside it (README / docs/results/tiny-24-animals: 2 idle
cores) with their ratio. The estimate uses the matmul probe of this machine unless --gflops is
given: on cores shared with other jobs the probe reads low, and so would the run.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from minillm.data.rationale import convert_raw_row  # noqa: E402
from minillm.experiments import budget  # noqa: E402
from minillm.modeling import load_tokenizer  # noqa: E402

# Stage times of the tiny preset, training seed 10 (docs/results/tiny-24-animals/comparison.md, "Stages").
TINY_MEASURED = {"teacher": 193.0, "seqkd-data": 31.5, "dss-teacher": 54.9, "dss-teacher-data": 15.6,
                 "sft": 26.5, "kd-forward_kl": 41.7, "seqkd": 26.0, "minillm": 36.1, "dss": 28.0, "dss-gold": 28.3,
                 "dss-kd": 47.9, "dss-minillm": 33.4, "eval-teacher": 12.3, "eval-sft": 8.5, "eval-untrained": 9.7}
# The README's custom CPU recipe on 2 idle cores: teacher 1.3 min, KD 1.9 min, MiniLLM 1.2 min, evaluations ~20 s.
CUSTOM_MEASURED = {"teacher": 78.0, "kd-forward_kl": 114.0, "minillm": 72.0, "eval-sft": 20.0}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def measure(tokenizer, rows, response, max_length, max_prompt_length, prefix="") -> budget.Data:
    return budget.check_lengths(tokenizer, rows, response, "rows", max_length, max_prompt_length, prefix).data()


def comparison_stages(teacher: budget.ModelShape, student: budget.ModelShape, tokenizer, raw: list[dict],
                      test: list[dict], s: dict, dss: bool) -> list[budget.StageCost]:
    """The driver's training, generation and evaluation stages for one seed (as of this commit)."""
    length, prompt_length = s["MAX_LENGTH"], s["MAX_PROMPT_LENGTH"]
    new = length - prompt_length
    dev_rows, train_rows = raw[:s["DEV_NUM"]], raw[s["DEV_NUM"]:][:s.get("MAX_TRAIN_ROWS") or None]
    train = measure(tokenizer, train_rows, budget.gold_response, length, prompt_length)
    dev = measure(tokenizer, dev_rows, budget.gold_response, length, prompt_length)
    evalset = replace(measure(tokenizer, test, budget.gold_response, length, prompt_length),
                      rows=min(len(test), s.get("MAX_EVAL_ROWS") or len(test)))
    batch, gen = s["BATCH_SIZE"], s["EVAL_GEN_NUM"]
    student_run = dict(batch_size=batch, dev=dev, eval_gen_num=gen, new_tokens=new)
    on_policy = dict(steps=s["MINILLM_STEPS"], num_rollouts=s["NUM_ROLLOUTS"], mini_batch=s["MINI_BATCH"],
                     ppo_epochs=s["PPO_EPOCHS"], new_tokens=new, corpus_tokens=length if s["PTX"] else 0, dev=dev,
                     eval_gen_num=gen,
                     eval_interval=s["MINILLM_EVAL_INTERVAL"])
    stages = [
        budget.token_training("teacher", "teacher-sft", teacher, train, s["TEACHER_EPOCHS"], batch, dev=dev,
                              eval_gen_num=gen, new_tokens=new),
        budget.generation("seqkd-data", teacher, train, new),
        budget.token_training("sft", "student-sft", student, train, s["STUDENT_EPOCHS"], **student_run),
        budget.token_training("kd-forward_kl", "kd", student, train, s["STUDENT_EPOCHS"], teacher=teacher,
                              **student_run),
        budget.token_training("seqkd", "student-sft", student, train, s["STUDENT_EPOCHS"], **student_run),
        budget.on_policy("minillm", student, teacher, prompts=train, **on_policy),
        budget.evaluation("eval-teacher", teacher, evalset, new, len(s["EVAL_SEEDS"].split())),
        budget.evaluation("eval-sft", student, evalset, new, len(s["EVAL_SEEDS"].split())),
        budget.evaluation("eval-untrained", student, evalset, new, len(s["EVAL_SEEDS"].split())),
    ]
    if dss:
        dss_rows = [convert_raw_row(row, str(index)) for index, row in enumerate(train_rows)]
        with_rationale = [row for row in dss_rows if row["rationale"]]
        label = measure(tokenizer, dss_rows, budget.gold_response, length, prompt_length, "[label] ")
        rationale = measure(tokenizer, with_rationale, budget.chain_of_thought_response, length, prompt_length,
                            "[rationale] ")
        both = budget.Data(label.rows + rationale.rows,
                           (label.rows * label.prompt + rationale.rows * rationale.prompt) / (label.rows + rationale.rows),
                           (label.rows * label.response + rationale.rows * rationale.response)
                           / (label.rows + rationale.rows))
        dss_run = dict(batch_size=batch, dev=dev, eval_gen_num=gen, new_tokens=new,
                       evaluations=s["STUDENT_EPOCHS"])
        stages += [
            budget.token_training("dss-teacher", "teacher-sft", teacher, both, s["DSS_TEACHER_EPOCHS"], batch, dev=dev,
                                  eval_gen_num=gen, new_tokens=new),
            budget.generation("dss-teacher-data", teacher, label, new),
            budget.token_training("dss", "student-sft", student, both, s["STUDENT_EPOCHS"], **dss_run),
            budget.token_training("dss-gold", "student-sft", student, both, s["STUDENT_EPOCHS"], **dss_run),
            budget.token_training("dss-kd", "kd", student, both, s["STUDENT_EPOCHS"], teacher=teacher, **dss_run),
            budget.on_policy("dss-minillm", student, teacher, prompts=both, **on_policy),
        ]
    return stages


TINY_SETTINGS = {"MAX_LENGTH": 128, "MAX_PROMPT_LENGTH": 80, "DEV_NUM": 200, "BATCH_SIZE": 32, "EVAL_GEN_NUM": 100,
                 "TEACHER_EPOCHS": 10, "STUDENT_EPOCHS": 3, "DSS_TEACHER_EPOCHS": 2, "MINILLM_STEPS": 64,
                 "NUM_ROLLOUTS": 128, "MINI_BATCH": 32, "PPO_EPOCHS": 2, "MINILLM_EVAL_INTERVAL": 32,
                 "EVAL_SEEDS": "10 20 30", "PTX": True}
CUSTOM_SETTINGS = {"MAX_LENGTH": 192, "MAX_PROMPT_LENGTH": 128, "DEV_NUM": 50, "MAX_TRAIN_ROWS": 200,
                   "MAX_EVAL_ROWS": 50, "BATCH_SIZE": 16, "EVAL_GEN_NUM": 20, "TEACHER_EPOCHS": 2,
                   "STUDENT_EPOCHS": 2, "MINILLM_STEPS": 8, "NUM_ROLLOUTS": 32, "MINI_BATCH": 16, "PPO_EPOCHS": 1,
                   "MINILLM_EVAL_INTERVAL": 8, "EVAL_SEEDS": "10 20", "PTX": False}  # no PTX_TEXT: no corpus term


def report(title: str, stages: list[budget.StageCost], measured: dict[str, float], gflops: float,
           calibration: budget.Calibration) -> list[float]:
    print(f"\n{title}\n| stage | kind | FLOPs | steps | decoding steps | estimate | measured | estimate / measured |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for item in budget.estimate(stages, gflops, calibration):
        seen = measured.get(item.stage.name)
        ratio = item.seconds / seen if seen else None
        if ratio:
            ratios.append(ratio)
        print(f"| {item.stage.name} | {item.stage.kind} | {item.stage.flops:.3g} | {item.stage.steps} | "
              f"{item.stage.decoding_steps} | {item.seconds:.1f} s | {f'{seen:.1f} s' if seen else '–'} | "
              f"{f'{ratio:.2f}' if ratio else '–'} |")
    print(f"ratios: min {min(ratios):.2f}, max {max(ratios):.2f}")
    return ratios


LAUNCH_GROUPS = {"teacher-sft": "training", "student-sft": "training", "kd": "training", "minillm": "training",
                 "generation": "generation", "evaluation": "evaluation"}


def fit(observations: list[tuple[budget.StageCost, float]], gflops: float,
        launch_s: dict[str, float] | None = None) -> budget.Calibration:
    """Non-negative least squares on relative error of the per-step, per-decoding-step and
    per-logit-element costs and the efficiency, and of one launch cost per group of kinds unless
    `launch_s` fixes them (per group)."""
    import numpy as np
    from scipy.optimize import nnls

    groups = sorted(set(LAUNCH_GROUPS.values()))
    free = [] if launch_s else groups
    rows, targets = [], []
    for stage, seconds in observations:
        fixed = launch_s[LAUNCH_GROUPS[stage.kind]] if launch_s else 0.0
        launch = [float(LAUNCH_GROUPS[stage.kind] == group) for group in free]
        rows.append(np.array(launch + [stage.steps, stage.decoding_steps, stage.flops / (gflops * 1e9),
                                       stage.logit_elements]) / seconds)
        targets.append(1.0 - fixed / seconds)
    solution, _ = nnls(np.array(rows), np.array(targets))
    launch = dict(launch_s) if launch_s else dict(zip(groups, solution[:len(groups)]))
    return budget.Calibration(reference_gflops=gflops,
                              launch_s={kind: round(float(launch[group]), 2) for kind, group in LAUNCH_GROUPS.items()},
                              step_s=float(f"{solution[-4]:.3g}"), decode_step_s=float(f"{solution[-3]:.3g}"),
                              efficiency=float(f"{1 / solution[-2]:.3g}") if solution[-2] else 1.0,
                              logit_element_s=float(f"{solution[-1]:.3g}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny-root", type=Path, required=True, help="--root of tools/make_tiny_default.py")
    parser.add_argument("--gflops", type=float, help="the machine's matmul speed (default: probe it now)")
    parser.add_argument("--custom", action="store_true", help="also the README's custom CPU recipe")
    parser.add_argument("--fit", action="store_true", help="fit the calibration to the measured times and use it")
    parser.add_argument("--launch", nargs=3, type=float, metavar=("TRAINING", "GENERATION", "EVALUATION"),
                        help="with --fit: fix the launch seconds of each group instead of fitting them")
    args = parser.parse_args(argv)
    gflops = args.gflops or budget.matmul_gflops()
    print(f"matmul probe: {gflops:.1f} GFLOP/s{' (given)' if args.gflops else ''}")
    root = args.tiny_root
    tokenizer = load_tokenizer(root / "checkpoints" / "tiny-tokenizer")
    teacher = budget.model_shape(root / "checkpoints" / "tiny-teacher")
    student = budget.model_shape(root / "checkpoints" / "tiny-student")
    raw, test = read_rows(root / "data" / "tiny" / "raw.jsonl"), read_rows(root / "data" / "tiny" / "valid.jsonl")
    for row in test:
        row["output"] = row["output"][0] if isinstance(row["output"], list) else row["output"]
    measured = [(comparison_stages(teacher, student, tokenizer, raw, test, TINY_SETTINGS, dss=True), TINY_MEASURED,
                 "tiny preset (default METHODS, one seed)")]
    if args.custom:
        shared = REPO_ROOT.parent / "shared" / "data"
        gpt2 = load_tokenizer(shared / "tokenizers" / "gpt2")
        shapes = [budget.model_shape(REPO_ROOT / "configs" / "models" / f"gpt2-{size}.json") for size in ("16m", "7m")]
        dolly = read_rows(shared / "minillm-data" / "dolly" / "raw.jsonl")
        tests = read_rows(shared / "minillm-data" / "dolly" / "valid.jsonl")
        measured.append((comparison_stages(*shapes, gpt2, dolly, tests, CUSTOM_SETTINGS, dss=False), CUSTOM_MEASURED,
                         "custom preset, README CPU recipe"))
    calibration = budget.CALIBRATION
    if args.fit:
        launch = dict(zip(("training", "generation", "evaluation"), args.launch)) if args.launch else None
        calibration = fit([(stage, times[stage.name]) for stages, times, _ in measured for stage in stages
                           if stage.name in times], gflops, launch)
        print(f"fitted: {calibration}")
    for stages, times, title in measured:
        report(title, stages, times, gflops, calibration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
