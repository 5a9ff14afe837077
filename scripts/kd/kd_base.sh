#!/usr/bin/env bash
# Word-level KD: GPT-2 base student, GPT-2 XL SFT teacher (its best checkpoint by Rouge-L), the
# SFT recipe with loss (1 - KD_RATIO)·CE + KD_RATIO·D. Pick the divergence with KD_LOSS (and its
# parameters with KD_ARGS); no new script per divergence:
#   KD_LOSS=reverse_kl bash scripts/kd/kd_base.sh BASE_PATH
#   KD_LOSS=skew_forward_kl KD_ARGS="--skew-alpha 0.1" bash scripts/kd/kd_base.sh BASE_PATH
# Usage: bash scripts/kd/kd_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
KD_LOSS=${KD_LOSS:-forward_kl}
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-base}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/kd/gpt2-base-$KD_LOSS}
source "$BASE_PATH/scripts/lib/kd.sh"
source "$BASE_PATH/scripts/lib/train_token.sh"
