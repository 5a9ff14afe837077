#!/usr/bin/env bash
# Distilling step-by-step (black box): GPT-2 base trained on the teacher's labels and rationales,
# loss = α·CE(label task) + (1 − α)·CE(rationale task), both tasks of a question in one batch.
# DATA_DIR / RATIONALE_DATA_DIR pick the variant: teacher labels + rationales (default), gold
# labels + teacher rationales, ...; TRAIN_FRACTION draws the data-efficiency curves.
# Usage: bash scripts/dss/dss_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-base}
DATA_DIR=${DATA_DIR:-$BASE_PATH/processed_data/dolly-dss-teacher/full/label/gpt2}
RATIONALE_DATA_DIR=${RATIONALE_DATA_DIR:-$BASE_PATH/processed_data/dolly-dss-teacher/full/rationale/gpt2}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/dss/gpt2-base}
source "$BASE_PATH/scripts/lib/train_token.sh"
