#!/usr/bin/env bash
# Teacher: SFT of GPT-2 XL (1.5B) on dolly, the paper's teacher recipe (minillm/recipes.py TEACHER);
# later stages take its best checkpoint by validation Rouge-L from $SAVE_PATH/best.json.
# Usage: bash scripts/sft/sft_xlarge.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-xl}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}
LR=${LR:-$PAPER_TEACHER_LR}
EPOCHS=${EPOCHS:-$PAPER_TEACHER_EPOCHS}
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-$PAPER_TEACHER_MICRO_BATCH_SIZE}
source "$BASE_PATH/scripts/lib/train_token.sh"
