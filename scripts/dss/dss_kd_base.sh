#!/usr/bin/env bash
# DSS-KD (white box × step-by-step): both task streams, and in each the word-level KD loss
# (1 − KD_RATIO)·CE + KD_RATIO·D(teacher ‖ student) against the two-task DSS teacher; stream
# weights α = LABEL_WEIGHT, 1 − α. D = KD_LOSS (any divergence of minillm/losses.py).
# Usage: bash scripts/dss/dss_kd_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-base}
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/dss/gpt2-xlarge-teacher}
DATA_DIR=${DATA_DIR:-$BASE_PATH/processed_data/dolly-dss/full/label/gpt2}
RATIONALE_DATA_DIR=${RATIONALE_DATA_DIR:-$BASE_PATH/processed_data/dolly-dss/full/rationale/gpt2}
KD_LOSS=${KD_LOSS:-forward_kl}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/dss-kd/gpt2-base-$KD_LOSS}
source "$BASE_PATH/scripts/lib/kd.sh"
source "$BASE_PATH/scripts/lib/train_token.sh"
