#!/usr/bin/env bash
# Teacher: SFT of GPT-2 XL (1.5B) on dolly, lr 5e-5, 10 epochs; later stages take its best
# checkpoint by validation Rouge-L from $SAVE_PATH/best.json.
# Usage: bash scripts/sft/sft_xlarge.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-xl}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}
LR=${LR:-5e-5}
EPOCHS=${EPOCHS:-10}
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-2}
source "$BASE_PATH/scripts/lib/train_token.sh"
