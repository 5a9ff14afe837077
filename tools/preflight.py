"""The main command's checks and plan, without running anything.

  PRESET=custom RAW_DIR=... METHODS="sft kd" python tools/preflight.py [BASE_PATH]

Reads the same settings as `bash scripts/run_comparison.sh` (the environment, over the preset's
defaults), then prints the arms, the stages and every problem the driver would refuse before
its first stage (minillm/experiments/preflight.py: lengths, tokenizers, recipes, missing inputs; once the models
exist, minillm/experiments/costs.py: the cost estimate per stage and the reference lengths against the budget);
the model checks run when the model folders exist (the tiny preset builds them in its first
stage). Exit status 1 when something is refused.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.experiments import preflight  # noqa: E402
from minillm.experiments.settings import InstructionSettings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    base_path = Path(argv[0] if argv else ".").resolve()
    preset = os.environ.get("PRESET", "tiny")
    try:
        settings, plan = preflight.load_plan(preset, base_path, os.environ)
    except preflight.PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for note in plan.notes:
        print(note)
    print(f"preset {preset}: {len(plan.stages)} stages; arms: {' '.join(plan.record.get('methods', [])) or '–'}")
    problems = preflight.settings_problems(settings, plan)
    if isinstance(settings, InstructionSettings):
        models = (settings.teacher_init, settings.student_init, settings.tokenizer)
        if all(path.exists() for path in models):
            problems += preflight.model_problems(settings, plan)
            if not problems:
                report, missing = preflight.cost_estimate(settings, plan)
                if missing:
                    print(f"warning: {missing}")
                else:
                    print(f"cost estimate:\n{report.table()}")
                    print("".join(f"warning: {warning}\n" for warning in report.warnings), end="")
                    problems += report.refusals
        else:
            print("model checks: after the stage that builds the models (they are not there yet)")
    if problems:
        print("error: the comparison cannot run with these settings:", file=sys.stderr)
        print("\n".join(f"  - {problem}" for problem in problems), file=sys.stderr)
        return 1
    print("every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
