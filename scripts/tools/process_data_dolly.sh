#!/usr/bin/env bash
# Tokenise Dolly (data/dolly/raw.jsonl) into MiniLLM's processed layout, as MiniLLM's script does:
# the "full" variant (prompt + split id + response) for SFT/KD and the prompt-only variant used
# for MiniLLM rollouts (MiniLLM calls the tool twice; one process writes both here).
# Usage: bash scripts/tools/process_data_dolly.sh BASE_PATH   (variables below, or from the environment)
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
DATA_DIR=${DATA_DIR:-$BASE_PATH/data/dolly/}
PROCESSED_DIR=${PROCESSED_DIR:-$BASE_PATH/processed_data/dolly/full}
PROMPT_PROCESSED_DIR=${PROMPT_PROCESSED_DIR:-$BASE_PATH/processed_data/dolly/prompt}
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-large}  # only its tokenizer is used
MODEL_TYPE=${MODEL_TYPE:-gpt2}
WORKERS=${WORKERS:-8}
DEV_NUM=${DEV_NUM:-1000}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-256}
MAX_LENGTH=${MAX_LENGTH:-512}

COMMON_ARGS=(--data-dir "$DATA_DIR" --model-path "$MODEL_PATH" --model-type "$MODEL_TYPE"
  --data-process-workers "$WORKERS" --max-prompt-length "$MAX_PROMPT_LENGTH" --max-length "$MAX_LENGTH"
  --dev-num "$DEV_NUM")
python tools/process_data_dolly.py "${COMMON_ARGS[@]}" --processed-data-dir "$PROCESSED_DIR" \
  --prompt-processed-data-dir "$PROMPT_PROCESSED_DIR"
