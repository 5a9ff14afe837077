#!/usr/bin/env bash
# Control arm of an on-policy method ("SFT (continued)", "DSS (continued)"): the student the
# on-policy run starts from trained further by cross-entropy on its own training data, with the
# on-policy run's recipe (scripts/lib/on_policy_recipe.sh: steps, global batch, learning rate,
# schedule, Adam settings, dropout, and the same pretraining corpus chunks, by cross-entropy: no
# teacher). The gap between the on-policy row and this one is its objective's effect, not more
# training or more text. RATIONALE_DATA_DIR set = both DSS task streams; PTX=0 = no corpus (for
# an on-policy run without one).
# Usage: bash scripts/sft/sft_continued.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/sft/base-continued}
source "$BASE_PATH/scripts/lib/on_policy_recipe.sh"
source "$BASE_PATH/scripts/lib/train_token.sh"
