#!/usr/bin/env bash
# Tokenise a one-document-per-line corpus (OpenWebText in the paper) into fixed-length chunks for
# MiniLLM's pretraining-loss term: EOS after each document, concatenated, cut into CHUNK_LENGTH-token
# items without a split id (every position supervised); the first DEV_NUM chunks form valid_0.
# Usage: bash scripts/tools/process_data_pretrain.sh BASE_PATH   (variables below, or from the environment)
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
DATA_PATH=${DATA_PATH:-$BASE_PATH/data/openwebtext/data.txt}
PROCESSED_DIR=${PROCESSED_DIR:-$BASE_PATH/processed_data/openwebtext}
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-large}  # only its tokenizer is used
MODEL_TYPE=${MODEL_TYPE:-gpt2}
CHUNK_LENGTH=${CHUNK_LENGTH:-512}
DEV_NUM=${DEV_NUM:-100}
WORKERS=${WORKERS:-8}
MAX_DOCS=${MAX_DOCS:-0}  # 0 = the whole corpus

python tools/process_data_pretrain.py --data-path "$DATA_PATH" --processed-data-dir "$PROCESSED_DIR" \
  --model-path "$MODEL_PATH" --model-type "$MODEL_TYPE" --chunk-length "$CHUNK_LENGTH" \
  --dev-num "$DEV_NUM" --data-process-workers "$WORKERS" --max-docs "$MAX_DOCS"
