#!/usr/bin/env bash
# White-box distillation from a teacher with ANOTHER tokenizer (docs/cross-tokenizer.md): train_kd.py
# with --cross-tokenizer, the teacher reading the same text in its own tokenizer.
#   CROSS_TOKENIZER=uld      universal logit distance: sorted probability vectors, L1, i-th response tokens
#   CROSS_TOKENIZER=aligned  KD_LOSS over the vocabulary entries both tokenizers spell alike, at tokens that
#                            start at the same byte; ULD over the rest
# Off-policy (default, GKD_LAMBDA=0): from MODEL_PATH on DATA_DIR's responses, (1 − KD_RATIO)·CE + KD_RATIO·D.
# On-policy (INIT_PATH set, GKD_LAMBDA=1, KD_RATIO=1): continue INIT_PATH's student on its own samples with
# the on-policy arms' recipe (scripts/lib/on_policy_recipe.sh); its corpus term must be CE (PTX_KD_RATIO=0).
# TEACHER_TOKENIZER: the teacher's tokenizer folder (default: the teacher's own).
# Usage: bash scripts/xtok/xtok_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
CROSS_TOKENIZER=${CROSS_TOKENIZER:?set CROSS_TOKENIZER: uld or aligned}
TEACHER_PATH=${TEACHER_PATH:?set TEACHER_PATH: the teacher (a model folder or a training run folder)}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/xtok/gpt2-base-$CROSS_TOKENIZER}
KD_RATIO=${KD_RATIO:-$PAPER_KD_KD_RATIO}
KD_LOSS=${KD_LOSS:-forward_kl}
GKD_LAMBDA=${GKD_LAMBDA:-0}
ENTRYPOINT=train_kd.py
METHOD_ARGS=(--teacher-model-path "$TEACHER_PATH" --kd-ratio "$KD_RATIO" --kd-loss "$KD_LOSS"
             --cross-tokenizer "$CROSS_TOKENIZER" --gkd-lambda "$GKD_LAMBDA")
if [[ -n ${TEACHER_TOKENIZER:-} ]]; then METHOD_ARGS+=(--teacher-tokenizer "$TEACHER_TOKENIZER"); fi
if [[ -n ${INIT_PATH:-} ]]; then
  PTX_KD_RATIO=${PTX_KD_RATIO:-0}
  source "$BASE_PATH/scripts/lib/on_policy_recipe.sh"
else
  MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-base}
fi
source "$BASE_PATH/scripts/lib/train_token.sh"
