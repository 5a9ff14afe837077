#!/usr/bin/env bash
# MiniLLM initialisation: SFT of GPT-2 base on dolly (same recipe as the baseline); MiniLLM starts
# from the checkpoint with the LOWEST VALIDATION LOSS (best.json "valid_loss"), which comes
# early, before over-fitting sharpens the distribution (ref §3).
# Usage: bash scripts/sft/sft_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-base}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/init/gpt2-base}
EPOCHS=${EPOCHS:-$PAPER_INIT_EPOCHS}
source "$BASE_PATH/scripts/lib/train_token.sh"
