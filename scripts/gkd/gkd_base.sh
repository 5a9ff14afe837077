#!/usr/bin/env bash
# GKD (Agarwal et al., ICLR 2024; TRL's GKDTrainer defaults λ 0.5, β 0.5): word-level KD whose
# loss is the generalised JSD_β alone (KD_RATIO 1), on the student's own samples in a fraction
# GKD_LAMBDA of the steps and on the data's responses in the others (GKD_OFF_POLICY=teacher: the
# teacher's samples). Like MiniLLM it continues the SFT student with MiniLLM's recipe and corpus
# (scripts/lib/on_policy_recipe.sh), so SFT (continued) is its control arm too. Its samples are pure
# ancestral (temperature 1, as MiniLLM's rollouts; TRL samples at 0.9 for 128 new tokens:
# EXTRA_ARGS="--response-temperature 0.9 --response-max-new-tokens 128", which leaves validation as it is).
# Usage: bash scripts/gkd/gkd_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/gkd/gpt2-base}
GKD_LAMBDA=${GKD_LAMBDA:-$PAPER_GKD_LAMBDA}
GKD_OFF_POLICY=${GKD_OFF_POLICY:-$PAPER_GKD_OFF_POLICY}
KD_RATIO=${KD_RATIO:-$PAPER_GKD_KD_RATIO} KD_LOSS=${KD_LOSS:-$PAPER_GKD_KD_LOSS}
KD_ARGS=${KD_ARGS:---jsd-beta $PAPER_GKD_JSD_BETA}
source "$BASE_PATH/scripts/lib/kd.sh"
METHOD_ARGS+=(--gkd-lambda "$GKD_LAMBDA" --gkd-off-policy "$GKD_OFF_POLICY")
source "$BASE_PATH/scripts/lib/on_policy_recipe.sh"
source "$BASE_PATH/scripts/lib/train_token.sh"
