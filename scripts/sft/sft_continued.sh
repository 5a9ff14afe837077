#!/usr/bin/env bash
# Control arm of an on-policy method ("SFT (continued)", "DSS (continued)"): the student the
# on-policy run starts from (INIT_PATH's checkpoint with the lowest validation loss, as
# scripts/minillm/train_base_xl.sh picks it) trained further by cross-entropy on its own training
# data, with the on-policy run's optimizer steps, global batch, learning rate, schedule, Adam
# settings and dropout, and its pretraining term on the same corpus chunks (cross-entropy alone: no
# teacher). The gap between the on-policy row and this one is its objective's effect, not more
# training or more text. RATIONALE_DATA_DIR set = both DSS task streams; PTX=0 = no corpus (for an
# on-policy run without one).
# Usage: bash scripts/sft/sft_continued.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
INIT_PATH=${INIT_PATH:-$BASE_PATH/results/gpt2/train/init/gpt2-base}   # run folder: lowest valid loss
MODEL_PATH=$(python -m minillm.checkpoint resolve "$INIT_PATH" --by valid_loss)
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/sft/base-continued}
# MiniLLM's recipe (minillm/args.py add_minillm_args) unless the caller matches another run.
LR=${LR:-5e-6}
WARMUP_STEPS=${WARMUP_STEPS:-100}
TOTAL_STEPS=${TOTAL_STEPS:-5000}
BATCH_SIZE=${BATCH_SIZE:-64}
PTX=${PTX:-1}                                      # as scripts/minillm/train_base_xl.sh
PTX_DATA_DIR=${PTX_DATA_DIR:-$BASE_PATH/processed_data/openwebtext/gpt2}
METHOD_ARGS=(--total-steps "$TOTAL_STEPS" --lr-scheduler constant --warmup-steps "$WARMUP_STEPS"
  --adam-betas 0.9 0.95 --weight-decay 1e-6 --dropout 0)
[[ $PTX == 1 ]] && METHOD_ARGS+=(--ptx-data-dir "$PTX_DATA_DIR")
source "$BASE_PATH/scripts/lib/train_token.sh"
