#!/usr/bin/env bash
# DistiLLM (Ko et al., ICML 2024; its scripts/gpt2/distillm: --type adaptive-sfkl, kd_ratio 1,
# init_threshold 0, loss_eps 0.1, capacity 1000): skew forward KL (α 0.1) alone, on adaptive
# student-generated outputs through a replay buffer (train_kd.py --adaptive-sgo). Like MiniLLM it
# continues the SFT student with MiniLLM's recipe and corpus (scripts/lib/on_policy_recipe.sh), so
# SFT (continued) is its control arm too; DistiLLM's own recipe trains 20 epochs from its SFT init.
# Usage: bash scripts/distillm/distillm_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/distillm/gpt2-base}
SGO_LOSS_EPS=${SGO_LOSS_EPS:-$PAPER_DISTILLM_LOSS_EPS}
SGO_CAPACITY=${SGO_CAPACITY:-$PAPER_DISTILLM_CAPACITY}
KD_RATIO=${KD_RATIO:-$PAPER_DISTILLM_KD_RATIO} KD_LOSS=${KD_LOSS:-$PAPER_DISTILLM_KD_LOSS}
KD_ARGS=${KD_ARGS:---skew-alpha $PAPER_DISTILLM_SKEW_ALPHA}
source "$BASE_PATH/scripts/lib/kd.sh"
METHOD_ARGS+=(--adaptive-sgo --sgo-loss-eps "$SGO_LOSS_EPS" --sgo-capacity "$SGO_CAPACITY")
source "$BASE_PATH/scripts/lib/on_policy_recipe.sh"
source "$BASE_PATH/scripts/lib/train_token.sh"
