#!/usr/bin/env bash
# The main command: every stage of the comparison for one preset, then the comparison report.
#   bash scripts/run_comparison.sh [BASE_PATH] [MASTER_PORT] [GPUS_PER_NODE] [--force] [--dry-run]
# PRESET=tiny (default) | gpt2 | custom | stories. Every setting is an environment variable of its
# name (METHODS, TRAIN_SEEDS, STUDENT_LR, JOBS, EXECUTOR, ...): the presets and their defaults are
# minillm/experiments/settings.py (`python -m minillm.experiments.settings --markdown tiny` lists
# them), the arms minillm/experiments/methods.py, the stage graph minillm/experiments/plan.py, the
# driver minillm/experiments/driver.py. Settings are checked before anything runs; a stage whose
# inputs, command and code are unchanged is skipped, an interrupted one resumes; --force (or
# FORCE=1) reruns everything. The report: results/<preset>/comparison.md (+ .csv, .json, plots/).
set -euo pipefail
positional=() flags=()
for arg in "$@"; do if [[ $arg == --* ]]; then flags+=("$arg"); else positional+=("$arg"); fi; done
BASE_PATH=$(cd "${positional[0]:-.}" && pwd)
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$BASE_PATH${PYTHONPATH:+:$PYTHONPATH}"
cd "$BASE_PATH"
exec python -m minillm.experiments.driver "$BASE_PATH" "${positional[@]:1}" "${flags[@]}"
