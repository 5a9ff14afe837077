#!/usr/bin/env bash
# The white-box teacher of DSS-KD / DSS-MiniLLM: the SFT teacher (its best checkpoint by Rouge-L)
# fine-tuned on the two-task data (label and rationale streams, α = LABEL_WEIGHT), so that it
# knows both tasks behind their prefixes. It also writes the black-box DSS data of a preset whose
# rationales come from the dataset (scripts/tools/generate_rationales.sh with the dss_* templates).
# Usage: bash scripts/dss/dss_teacher_xlarge.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}  # run folder: best by Rouge-L
MODEL_PATH=${MODEL_PATH:-$(python -m minillm.train.checkpoint resolve "$TEACHER_PATH")}
DATA_DIR=${DATA_DIR:-$BASE_PATH/processed_data/dolly-dss/full/label/gpt2}
RATIONALE_DATA_DIR=${RATIONALE_DATA_DIR:-$BASE_PATH/processed_data/dolly-dss/full/rationale/gpt2}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/dss/gpt2-xlarge-teacher}
LR=${LR:-$PAPER_DSS_TEACHER_LR}
EPOCHS=${EPOCHS:-$PAPER_DSS_TEACHER_EPOCHS}
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-$PAPER_DSS_TEACHER_MICRO_BATCH_SIZE}
source "$BASE_PATH/scripts/lib/train_token.sh"
