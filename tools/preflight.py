"""The comparison driver's checks: settings before its first stage, training items after each
processing stage. Every refusal names the driver variable to change (scripts/run_comparison.sh
passes them under their own names).

  python tools/preflight.py settings --teacher T --student S --tokenizer TOK --max-length 512 \\
      --max-prompt-length 256 --batch-size 32 --fewshot-prompt-length 768 --lr TEACHER_LR=5e-5 ... \\
      --warmup 100 --steps 4 --record results/custom/driver.json --methods "sft minillm" ...
  python tools/preflight.py items --data processed/full/custom --batch-size 32 --stage process \\
      --made-by "RAW_DIR=data/dolly"

`settings` refuses, before anything trains:
  - sequences longer than a model's positions (n_positions / max_position_embeddings): training
    and rollouts (MAX_LENGTH), evaluation and the DSS teacher's data (MAX_PROMPT_LENGTH + 16 for a
    task prefix, plus the new tokens MAX_LENGTH − MAX_PROMPT_LENGTH), the teacher's few-shot
    rationales (FEWSHOT_PROMPT_LENGTH + the new tokens);
  - a learning rate ≤ 0, and a MiniLLM warm-up that is not shorter than its steps (the learning
    rate would never reach MINILLM_LR: the stage barely moves its student);
  - a teacher and students whose tokenizers differ (word-level KD and MiniLLM compare them token
    by token), or a model with fewer embedding rows than the tokenizer's tokens;
  - MAX_TRAIN_ROWS below one global batch (BATCH_SIZE).
Then it records the run's plan (methods run and not run, each data source, the row caps) in
--record, for the report. `items` refuses processed data with fewer training items than one
global batch, naming the stage that made it and where its input came from.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.fileio import atomic_write_json  # noqa: E402

PREFIX_ROOM = 16  # the driver's room for a task prefix ("[label] ") in front of generation prompts
POSITION_FIELDS = ("n_positions", "max_position_embeddings")


class PreflightError(Exception):
    """A setting the run cannot succeed with; the message names the variable to change."""


def read_config(model_dir: Path, variable: str) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        raise PreflightError(f"{variable}={model_dir} has no config.json: not a Hugging Face model folder")
    return json.loads(path.read_text())


def positions(config: dict) -> int | None:
    """The longest sequence the model's position table holds; None when it sets no limit."""
    return next((int(config[name]) for name in POSITION_FIELDS if isinstance(config.get(name), int)), None)


def length_problems(args: argparse.Namespace) -> list[str]:
    new_tokens = args.max_length - args.max_prompt_length
    demands = [  # (what runs, its longest sequence, how that adds up, the variable to lower, roles that run it)
        ("training and MiniLLM rollouts", args.max_length, f"MAX_LENGTH={args.max_length}", "MAX_LENGTH",
         ("teacher", "student")),
        ("evaluation and the DSS teacher's data", args.max_prompt_length + PREFIX_ROOM + new_tokens,
         f"MAX_PROMPT_LENGTH={args.max_prompt_length} + {PREFIX_ROOM} (task prefix) + {new_tokens} new tokens "
         f"(MAX_LENGTH − MAX_PROMPT_LENGTH)", "MAX_LENGTH", ("teacher", "student")),
    ]
    if args.fewshot_prompt_length:
        demands.append(("the teacher's few-shot rationales (DSS_RATIONALES=teacher-fewshot)",
                        args.fewshot_prompt_length + new_tokens,
                        f"FEWSHOT_PROMPT_LENGTH={args.fewshot_prompt_length} + {new_tokens} new tokens "
                        f"(MAX_LENGTH − MAX_PROMPT_LENGTH)", "FEWSHOT_PROMPT_LENGTH", ("teacher",)))
    problems = []
    for role, variable, model_dir in (("teacher", "TEACHER_INIT", args.teacher), ("student", "STUDENT_INIT", args.student)):
        limit = positions(read_config(model_dir, variable))
        for what, length, sum_text, remedy, roles in demands:
            if limit is not None and role in roles and length > limit:
                problems.append(f"{what}: {sum_text} = {length} tokens > the {role}'s {limit} positions "
                                f"({variable}={model_dir}); lower {remedy}, or use a model with more positions")
    return problems


def recipe_problems(args: argparse.Namespace) -> list[str]:
    problems = []
    for assignment in args.lr:
        name, _, value = assignment.partition("=")
        try:
            rate = float(value)
        except ValueError:
            problems.append(f"{name}={value!r} is not a number")
            continue
        if rate <= 0:
            problems.append(f"{name}={value}: the stages it drives would not change their model; set a rate > 0")
    if args.steps is not None and args.warmup is not None and args.warmup >= args.steps > 0:
        problems.append(f"MINILLM_WARMUP={args.warmup} ≥ MINILLM_STEPS={args.steps}: MiniLLM and its control arms "
                        f"would never leave the warm-up (learning rate ≤ {args.steps}/{args.warmup} of MINILLM_LR), "
                        f"so they would barely move from their init; lower MINILLM_WARMUP (e.g. 0) or raise "
                        f"MINILLM_STEPS")
    if args.max_train_rows and args.max_train_rows < args.batch_size:
        problems.append(f"MAX_TRAIN_ROWS={args.max_train_rows} < BATCH_SIZE={args.batch_size}: the capped data "
                        f"cannot fill one global batch; raise MAX_TRAIN_ROWS or lower BATCH_SIZE")
    return problems


def tokenizer_problems(args: argparse.Namespace) -> list[str]:
    from minillm.modeling import check_same_tokenizer, load_tokenizer  # torch: only when the checks get here
    reference = load_tokenizer(args.tokenizer)
    problems = []
    for variable, model_dir in (("TEACHER_INIT", args.teacher), ("STUDENT_INIT", args.student)):
        if not (model_dir / "tokenizer_config.json").is_file():
            problems.append(f"{variable}={model_dir} holds no tokenizer (the stages load it from each model "
                            f"folder); copy TOKENIZER's files into it (tools/make_random_model.py does)")
            continue
        try:
            check_same_tokenizer(load_tokenizer(model_dir), reference)
        except ValueError as err:
            problems.append(f"{variable}={model_dir} and TOKENIZER={args.tokenizer} do not share a tokenizer "
                            f"(teacher and students must: KD and MiniLLM compare them token by token): {err}")
            continue
        rows = read_config(model_dir, variable).get("vocab_size")
        if isinstance(rows, int) and rows < len(reference):
            problems.append(f"{variable}={model_dir} has {rows} embedding rows (vocab_size) but TOKENIZER has "
                            f"{len(reference)} tokens")
    return problems


def check_settings(args: argparse.Namespace) -> list[str]:
    return length_problems(args) + recipe_problems(args) + tokenizer_problems(args)


def run_plan(args: argparse.Namespace) -> dict:
    """What the report needs to say about this run beyond its results."""
    methods = args.methods.split()
    return {"preset": args.preset, "methods": methods,
            "methods_not_run": [m for m in args.all_methods.split() if m not in methods],
            "data_sources": {"instruction": args.instruction_data, "step-by-step": args.dss_data},
            "max_train_rows": args.max_train_rows or None, "max_eval_rows": args.max_eval_rows or None,
            "teacher_cache_top_k": args.teacher_cache_top_k or None}


def settings(args: argparse.Namespace) -> int:
    try:
        problems = check_settings(args)
    except (PreflightError, OSError, ValueError) as err:
        problems = [str(err)]
    if problems:
        print("error: the comparison cannot run with these settings (nothing was started):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    if args.record:
        atomic_write_json(args.record, run_plan(args))
    return 0


def training_items(data_dir: Path) -> int | None:
    manifest = data_dir / "data_manifest.json"
    return json.loads(manifest.read_text())["splits"].get("train") if manifest.is_file() else None


def items(args: argparse.Namespace) -> int:
    count = training_items(args.data)
    if count is None or count >= args.batch_size:
        return 0
    print(f"error: stage {args.stage} made {count} training items in {args.data}, fewer than one global batch "
          f"(BATCH_SIZE={args.batch_size}); its input: {args.made_by}. Look there first (a teacher that writes no "
          f"usable rows, DEV_NUM taking every row, MAX_TRAIN_ROWS), then rerun the driver.", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("settings", help="check the driver's settings; record the run's plan")
    check.add_argument("--teacher", required=True, type=Path, help="TEACHER_INIT")
    check.add_argument("--student", required=True, type=Path, help="STUDENT_INIT (a model or its architecture)")
    check.add_argument("--tokenizer", required=True, type=Path, help="TOKENIZER")
    check.add_argument("--max-length", required=True, type=int)
    check.add_argument("--max-prompt-length", required=True, type=int)
    check.add_argument("--fewshot-prompt-length", type=int, default=0, help="0: no few-shot rationales this run")
    check.add_argument("--lr", nargs="*", default=[], metavar="NAME=VALUE", help="the learning rates that run")
    check.add_argument("--warmup", type=int, help="MINILLM_WARMUP (absent: no on-policy arm runs)")
    check.add_argument("--steps", type=int, help="MINILLM_STEPS")
    check.add_argument("--batch-size", type=int, required=True, help="BATCH_SIZE")
    check.add_argument("--max-train-rows", type=int, default=0)
    check.add_argument("--max-eval-rows", type=int, default=0)
    check.add_argument("--record", type=Path, help="write the run's plan here (JSON) when every check passes")
    check.add_argument("--preset", default="")
    check.add_argument("--methods", default="", help="the arms this run trains")
    check.add_argument("--all-methods", default="", help="every arm the driver knows")
    check.add_argument("--instruction-data", default="", help="what the instruction-following arms train on")
    check.add_argument("--dss-data", default="", help="what the step-by-step arms train on")
    check.add_argument("--teacher-cache-top-k", type=int, default=0,
                       help="TEACHER_CACHE_TOP_K: KD and DSS-KD read a top-k teacher cache (0: the live teacher)")
    count = commands.add_parser("items", help="refuse processed data that cannot fill one global batch")
    count.add_argument("--data", required=True, type=Path, help="a processed folder (with data_manifest.json)")
    count.add_argument("--batch-size", required=True, type=int, help="BATCH_SIZE")
    count.add_argument("--stage", required=True, help="the stage that made --data")
    count.add_argument("--made-by", required=True, help="where that stage's input came from")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return settings(args) if args.command == "settings" else items(args)


if __name__ == "__main__":
    sys.exit(main())
