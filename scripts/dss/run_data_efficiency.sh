#!/usr/bin/env bash
# The data-efficiency curve of step-by-step distillation (the DSS paper's protocol; docs/step-by-step.md):
# the driver once per training-set fraction (TRAIN_FRACTION: the teachers and their data are shared and
# skipped after the first run, only the students rerun; each fraction trains the whole set's optimizer
# steps, as the DSS reference holds max_steps: train_*.py --fraction-budget steps), each run's report
# kept under OUT, then tools/data_efficiency.py writes the table, its JSON and the curve.
#   bash scripts/dss/run_data_efficiency.sh [BASE_PATH]
# FRACTIONS ("0.125 0.25 0.5 0.75 1"), METHODS ("label-sft dss dss-kd dss-minillm"), TRAIN_SEEDS ("10 20 30"),
# OUT (RESULTS/data-efficiency); every other variable of the driver passes through (PRESET, WORK, JOBS, ...).
# Every fraction retrains the students in the same run folders: OUT keeps each fraction's report. With
# SFT's seed-to-seed SD of ~18 points on tiny, 3 seeds give wide intervals (t(0.975, 2) = 4.3).
set -euo pipefail
BASE_PATH=$(cd "${1:-.}" && pwd)
FRACTIONS=${FRACTIONS:-"0.125 0.25 0.5 0.75 1"}
export METHODS=${METHODS:-"label-sft dss dss-kd dss-minillm"} TRAIN_SEEDS=${TRAIN_SEEDS:-"10 20 30"}
export WORK=${WORK:-$BASE_PATH}
if [[ -z ${RESULTS:-} ]]; then  # the preset's own results folder, so the teachers of a main command are shared
  eval "$(python -m minillm.experiments.settings --shell "${PRESET:-tiny}" "$BASE_PATH" | grep '^RESULTS=')"
fi
export RESULTS
out=${OUT:-$RESULTS/data-efficiency}
unset OUT  # the driver sets OUT for each stage itself and refuses one from the environment
points=()
for fraction in $FRACTIONS; do
  TRAIN_FRACTION=$fraction bash "$BASE_PATH/scripts/run_comparison.sh" "$BASE_PATH"
  mkdir -p "$out/fraction-$fraction"
  cp "$RESULTS/comparison.json" "$RESULTS/comparison.md" "$RESULTS/driver.json" "$out/fraction-$fraction/"
  points+=("$fraction=$out/fraction-$fraction/comparison.json")
done
python "$BASE_PATH/tools/data_efficiency.py" --point "${points[@]}" --out "$out"
