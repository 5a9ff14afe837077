#!/usr/bin/env bash
# SFT baseline: GPT-2 base (124M) on dolly, the paper's SFT recipe; compared by its best checkpoint
# by validation Rouge-L ($SAVE_PATH/best.json).
# Usage: bash scripts/gpt2/sft/sft_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/common.sh" "$@"
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-base}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-base}
source "$BASE_PATH/scripts/lib/train_token.sh"
