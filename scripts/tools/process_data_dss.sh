#!/usr/bin/env bash
# Step-by-step data → two task streams: DATA_DIR/raw.jsonl (rationale rows, e.g. from
# tools/import_rationales.py or tools/generate_rationales.py) is processed once per task, each
# prompt preceded by its task prefix ([label] / [rationale]):
#   $PROCESSED_DIR/full/{label,rationale}/$MODEL_TYPE     (SFT / KD / DSS / DSS-KD)
#   $PROCESSED_DIR/prompt/{label,rationale}/$MODEL_TYPE   (prompt-only, for DSS-MiniLLM rollouts)
# Usage: bash scripts/tools/process_data_dss.sh BASE_PATH
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
DATA_DIR=${DATA_DIR:-$BASE_PATH/data/dolly-dss}
PROCESSED_DIR=${PROCESSED_DIR:-$BASE_PATH/processed_data/dolly-dss}
MODEL_PATH=${MODEL_PATH:-$BASE_PATH/checkpoints/gpt2-large}  # only its tokenizer is used
MODEL_TYPE=${MODEL_TYPE:-gpt2}
WORKERS=${WORKERS:-8}
DEV_NUM=${DEV_NUM:-1000}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-256}
MAX_LENGTH=${MAX_LENGTH:-512}

# One process writes the four folders (tools/process_data_dolly.py fills in {task}).
python tools/process_data_dolly.py --data-dir "$DATA_DIR" --model-path "$MODEL_PATH" --model-type "$MODEL_TYPE" \
  --task label rationale --data-process-workers "$WORKERS" --max-prompt-length "$MAX_PROMPT_LENGTH" \
  --max-length "$MAX_LENGTH" --dev-num "$DEV_NUM" --processed-data-dir "$PROCESSED_DIR/full/{task}" \
  --prompt-processed-data-dir "$PROCESSED_DIR/prompt/{task}"
