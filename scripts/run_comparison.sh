#!/usr/bin/env bash
# The main command: every stage of the comparison for one preset, then the results table.
#   bash scripts/run_comparison.sh [BASE_PATH]          (PRESET=tiny by default)
# Stages: build the preset's inputs -> process data (instructions, pretraining corpus) -> SFT
# teacher -> students from the same init: SFT, word-level KD (KD_LOSS, forward KL by default),
# SeqKD (SFT on teacher samples), MiniLLM (from the SFT student) -> evaluate the teacher, every
# student and the untrained student -> results/<preset>/eval/results.md
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" "${1:-.}"
PRESET=${PRESET:-tiny}
source "$BASE_PATH/scripts/presets/$PRESET.sh"
SECONDS=0
stage() { echo; echo "=== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

stage "inputs of preset $PRESET"
make_preset_inputs

stage "process data"
DATA_DIR=$RAW_DIR PROCESSED_DIR=$PROCESSED/full PROMPT_PROCESSED_DIR=$PROCESSED/prompt MODEL_PATH=$TOKENIZER \
  MODEL_TYPE=$PRESET DEV_NUM=$DEV_NUM bash scripts/tools/process_data_dolly.sh "$BASE_PATH"

stage "process the pretraining corpus (MiniLLM's pretraining loss)"
DATA_PATH=$PTX_TEXT PROCESSED_DIR=$PROCESSED/pretrain MODEL_PATH=$TOKENIZER MODEL_TYPE=$PRESET \
  CHUNK_LENGTH=$MAX_LENGTH DEV_NUM=10 bash scripts/tools/process_data_pretrain.sh "$BASE_PATH"

stage "SFT teacher"
DATA_DIR=$PROCESSED/full/$PRESET MODEL_PATH=$TEACHER_INIT SAVE_PATH=$RESULTS/sft/teacher \
  LR=$TEACHER_LR EPOCHS=$TEACHER_EPOCHS MICRO_BATCH_SIZE=$MICRO_BATCH_SIZE bash scripts/sft/sft_xlarge.sh "$BASE_PATH"

stage "SFT student"
DATA_DIR=$PROCESSED/full/$PRESET MODEL_PATH=$STUDENT_INIT SAVE_PATH=$RESULTS/sft/student \
  LR=$STUDENT_LR EPOCHS=$STUDENT_EPOCHS bash scripts/gpt2/sft/sft_base.sh "$BASE_PATH"

stage "KD student ($KD_LOSS)"
DATA_DIR=$PROCESSED/full/$PRESET MODEL_PATH=$STUDENT_INIT SAVE_PATH=$RESULTS/kd/student TEACHER_PATH=$RESULTS/sft/teacher \
  LR=$STUDENT_LR EPOCHS=$STUDENT_EPOCHS bash scripts/kd/kd_base.sh "$BASE_PATH"

stage "SeqKD data: the teacher answers every training prompt"
TEACHER_PATH=$RESULTS/sft/teacher DATA_DIR=$RAW_DIR SEQKD_DIR=$RESULTS/seqkd/data PROCESSED_DIR=$PROCESSED/seqkd/full \
  PROMPT_PROCESSED_DIR=$PROCESSED/seqkd/prompt MODEL_TYPE=$PRESET DEV_NUM=$DEV_NUM \
  MAX_NEW_TOKENS=$((MAX_LENGTH - MAX_PROMPT_LENGTH)) bash scripts/tools/generate_data_seqkd.sh "$BASE_PATH"

stage "SeqKD student"
DATA_DIR=$PROCESSED/seqkd/full/$PRESET MODEL_PATH=$STUDENT_INIT SAVE_PATH=$RESULTS/seqkd/student \
  LR=$STUDENT_LR EPOCHS=$STUDENT_EPOCHS bash scripts/seqkd/seqkd_base.sh "$BASE_PATH"

stage "MiniLLM student (from the SFT student's lowest-validation-loss checkpoint)"
INIT_PATH=$RESULTS/sft/student TEACHER_PATH=$RESULTS/sft/teacher PROMPT_DATA_DIR=$PROCESSED/prompt/$PRESET \
  PTX_DATA_DIR=$PROCESSED/pretrain/$PRESET SAVE_PATH=$RESULTS/minillm/student LR=$MINILLM_LR WARMUP_STEPS=0 \
  TOTAL_STEPS=$MINILLM_STEPS NUM_ROLLOUTS=$NUM_ROLLOUTS MINI_BATCH=$MINI_BATCH PPO_EPOCHS=$PPO_EPOCHS \
  EVAL_INTERVAL=$MINILLM_EVAL_INTERVAL bash scripts/minillm/train_base_xl.sh "$BASE_PATH"

stage "evaluate"
MODELS="teacher=$RESULTS/sft/teacher sft=$RESULTS/sft/student kd=$RESULTS/kd/student seqkd=$RESULTS/seqkd/student minillm=$RESULTS/minillm/student untrained=$STUDENT_INIT" \
  DATA_ROOT=$(dirname "$RAW_DIR") EVAL_SETS=$PRESET SEEDS=$EVAL_SEEDS SAVE_ROOT=$RESULTS/eval \
  MAX_NEW_TOKENS=$((MAX_LENGTH - MAX_PROMPT_LENGTH)) bash scripts/eval/run_eval.sh "$BASE_PATH"

stage "done; results in $RESULTS (tables: $RESULTS/eval/results.md)"
