#!/usr/bin/env bash
# SeqKD data: the SFT teacher samples a response for every training prompt of data/dolly
# (evaluation sampler: temperature 1, top-k off, top-p 1, ≤ 256 new tokens), then the result is
# processed like dolly into processed_data/dolly-seqkd/{full,prompt}/$MODEL_TYPE.
# Usage: bash scripts/tools/generate_data_seqkd.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}  # run folder: best by Rouge-L
DATA_DIR=${DATA_DIR:-$BASE_PATH/data/dolly}
SEQKD_DIR=${SEQKD_DIR:-$BASE_PATH/data/dolly-seqkd}     # its raw.jsonl holds the teacher's outputs
PROCESSED_DIR=${PROCESSED_DIR:-$BASE_PATH/processed_data/dolly-seqkd/full}
PROMPT_PROCESSED_DIR=${PROMPT_PROCESSED_DIR:-$BASE_PATH/processed_data/dolly-seqkd/prompt}
MODEL_TYPE=${MODEL_TYPE:-gpt2}
TOKENIZER_PATH=${TOKENIZER_PATH:-$(python -m minillm.train.checkpoint resolve "$TEACHER_PATH")}  # the students'
DEV_NUM=${DEV_NUM:-1000}                 # these first rows stay gold (validation)
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-256}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-256}
SEED=${SEED:-10}
DTYPE=${DTYPE:-fp32}
BATCH_TOKENS=${BATCH_TOKENS:-65536}

launch tools/generate.py --model-path "$TEACHER_PATH" --data-dir "$DATA_DIR" --save "$SEQKD_DIR" \
  --dev-num "$DEV_NUM" --max-prompt-length "$MAX_PROMPT_LENGTH" --max-new-tokens "$MAX_NEW_TOKENS" \
  --seed "$SEED" --dtype "$DTYPE" --eval-batch-tokens "$BATCH_TOKENS"
DATA_DIR=$SEQKD_DIR MODEL_PATH=$TOKENIZER_PATH \
  PROCESSED_DIR=$PROCESSED_DIR PROMPT_PROCESSED_DIR=$PROMPT_PROCESSED_DIR MODEL_TYPE=$MODEL_TYPE \
  DEV_NUM=$DEV_NUM MAX_PROMPT_LENGTH=$MAX_PROMPT_LENGTH bash scripts/tools/process_data_dolly.sh "$BASE_PATH"
