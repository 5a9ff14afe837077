#!/usr/bin/env bash
# DSS-MiniLLM (on-policy white box × step-by-step): MiniLLM's reverse-KL policy gradient on the
# prompts of both tasks — the student samples answers behind [label] and rationales behind
# [rationale], the two-task DSS teacher scores them — rollout terms weighted α, 1 − α.
# Starts from the DSS student (lowest validation loss). Every variable of scripts/lib/minillm.sh applies.
# Usage: bash scripts/dss/dss_minillm_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
INIT_PATH=${INIT_PATH:-$BASE_PATH/results/gpt2/train/dss/gpt2-base}
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/dss/gpt2-xlarge-teacher}
PROMPT_DATA_DIR=${PROMPT_DATA_DIR:-$BASE_PATH/processed_data/dolly-dss/prompt/label/gpt2}
RATIONALE_DATA_DIR=${RATIONALE_DATA_DIR:-$BASE_PATH/processed_data/dolly-dss/prompt/rationale/gpt2}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/dss-minillm/base-init-xlarge}
source "$BASE_PATH/scripts/lib/minillm.sh"
