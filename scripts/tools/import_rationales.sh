#!/usr/bin/env bash
# Rationale rows from a dataset: its own rationales (SOURCE=synthetic | gsm8k) or the PaLM
# chain-of-thought shipped with the step-by-step release (SOURCE=cqa | svamp; LABELS=gold |
# teacher). The train split goes to TRAIN_OUT (training data; processing takes its first DEV_NUM
# rows as validation), the test split to TEST_OUT (an eval set for evaluate.py: answers are scored
# by accuracy). Each file gets a .stats.json; the parse-failure rate is printed.
# Usage: bash scripts/tools/import_rationales.sh BASE_PATH
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
SOURCE=${SOURCE:-cqa}
INPUT=${INPUT:-$BASE_PATH/../shared/data/dss/$SOURCE}
LABELS=${LABELS:-gold}                                  # label task of the training rows
TRAIN_OUT=${TRAIN_OUT:-$BASE_PATH/data/$SOURCE-dss/raw.jsonl}
TEST_OUT=${TEST_OUT:-$BASE_PATH/data/$SOURCE/valid.jsonl}  # eval set "$SOURCE" under DATA_ROOT=data

python tools/import_rationales.py --source "$SOURCE" --input "$INPUT" --split train --labels "$LABELS" --out "$TRAIN_OUT"
python tools/import_rationales.py --source "$SOURCE" --input "$INPUT" --split test --out "$TEST_OUT"
