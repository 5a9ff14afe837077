#!/usr/bin/env bash
# SeqKD: GPT-2 base fine-tuned on the TEACHER's responses (scripts/tools/generate_data_seqkd.sh
# makes them), with the SFT recipe; the paper's SeqKD is plain SFT on that data (KD_RATIO=0).
# KD_RATIO > 0 adds word-level KD toward a teacher on top (see scripts/lib/kd.sh); it needs
# TEACHER_PATH set explicitly (this script never reaches for a default teacher).
# Usage: bash scripts/seqkd/seqkd_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-base}
DATA_DIR=${DATA_DIR:-$BASE_PATH/processed_data/dolly-seqkd/full/gpt2}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/seqkd/gpt2-base}
KD_RATIO=${KD_RATIO:-0}
if [[ "$KD_RATIO" != 0 ]]; then
  : "${TEACHER_PATH:?KD_RATIO=$KD_RATIO adds word-level KD to SeqKD: set TEACHER_PATH to its teacher (or KD_RATIO=0)}"
  source "$BASE_PATH/scripts/lib/kd.sh"
fi
source "$BASE_PATH/scripts/lib/train_token.sh"
