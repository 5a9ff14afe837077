#!/usr/bin/env bash
# One teacher pass over a processed dataset: top-k teacher log-probabilities + tail mass at every
# supervised position, into $CACHE_DIR (default $DATA_DIR/teacher_cache), for
# `train_kd.py --teacher-cache` and MiniLLM's pretraining KD term. MAX_LENGTH and KD_TEMPERATURE
# must be the training run's. Resumable: rerun the same command after an interruption.
# Usage: bash scripts/tools/cache_teacher.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]   (several GPUs share
# out the items; variables below, or from the environment)
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}
DATA_DIR=${DATA_DIR:-$BASE_PATH/processed_data/dolly/full/gpt2}
CACHE_DIR=${CACHE_DIR:-$DATA_DIR/teacher_cache}
MAX_LENGTH=${MAX_LENGTH:-512}
TOP_K=${TOP_K:-64}
KD_TEMPERATURE=${KD_TEMPERATURE:-1.0}
BATCH_SIZE=${BATCH_SIZE:-16}
DTYPE=${DTYPE:-fp32}

launch tools/cache_teacher.py --teacher-model-path "$TEACHER_PATH" --data-dir "$DATA_DIR" \
  --out "$CACHE_DIR" --max-length "$MAX_LENGTH" --top-k "$TOP_K" --kd-temperature "$KD_TEMPERATURE" \
  --batch-size "$BATCH_SIZE" --dtype "$DTYPE" ${EXTRA_ARGS:-}
