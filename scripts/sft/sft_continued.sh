#!/usr/bin/env bash
# Control arm of an on-policy method ("SFT (continued)", "DSS (continued)"): the student the
# on-policy run starts from trained further by cross-entropy on its own training data, with the
# on-policy run's recipe (scripts/lib/on_policy_recipe.sh: steps, global batch, learning rate,
# schedule, Adam settings, dropout, and the same pretraining term on the same corpus chunks, KD
# to TEACHER_PATH included). The teacher serves that corpus term only (train_kd.py --kd-ratio 0).
# The gap between the on-policy row and this one is what the on-policy objective does on the task
# prompts, not more training or more text. RATIONALE_DATA_DIR set = both DSS task streams; PTX=0
# = no corpus (for an on-policy run without one).
# Usage: bash scripts/sft/sft_continued.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/sft/base-continued}
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}  # the on-policy run's teacher
ENTRYPOINT=train_kd.py
METHOD_ARGS=(--teacher-model-path "$TEACHER_PATH" --kd-ratio 0)
source "$BASE_PATH/scripts/lib/on_policy_recipe.sh"
source "$BASE_PATH/scripts/lib/train_token.sh"
