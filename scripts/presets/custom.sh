# Preset "custom": your data and models, with the gpt2 preset's recipes (any variable can be
# overridden). Set the paths (instruction data in MiniLLM's raw.jsonl format, local HF model
# folders sharing one tokenizer, eval sets in MiniLLM's layout), then
#   RAW_DIR=... EVAL_DATA_ROOT=... EVAL_SETS="..." TEACHER_INIT=... STUDENT_INIT=... \
#     PRESET=custom bash scripts/run_comparison.sh . 29500 8
# README "Your own models and data" has a CPU-sized and a GPU-sized recipe and a table of every
# variable this preset reads, with its default and where that default comes from.
WORK=${WORK:-$BASE_PATH}
RESULTS=${RESULTS:-$WORK/results/custom}
RAW_DIR=${RAW_DIR:?set RAW_DIR: a folder with raw.jsonl (instruction, input, output; validation rows first)}
EVAL_DATA_ROOT=${EVAL_DATA_ROOT:?set EVAL_DATA_ROOT: the folder holding one sub-folder per eval set}
EVAL_SETS=${EVAL_SETS:?set EVAL_SETS: eval set names under EVAL_DATA_ROOT}
PROCESSED=${PROCESSED:-$WORK/processed_data/custom}
TEACHER_INIT=${TEACHER_INIT:?set TEACHER_INIT: the teacher model folder}
STUDENT_INIT=${STUDENT_INIT:?set STUDENT_INIT: the student model folder}
TOKENIZER=${TOKENIZER:-$STUDENT_INIT}
# The pretraining loss: a text corpus (PTX_TEXT, one document per line) or a processed one
# (PTX_DATA_DIR); neither = none.
custom_ptx_dir=$PTX_DATA_DIR
# Rationales: "teacher-fewshot" (the SFT teacher writes them for RAW_DIR's rows) or "dataset"
# (DSS_SOURCE = synthetic | gsm8k | cqa | svamp, read from DSS_SOURCE_INPUT).
# Every other variable takes MiniLLM's paper recipe from gpt2.sh unless set; the run says which.
FROM_GPT2=(DEV_NUM PTX_TEXT DSS_RATIONALES FEWSHOT_PROMPT_LENGTH DSS_SOURCE DSS_SOURCE_INPUT COT_LABEL_FORMAT
  TEACHER_LR TEACHER_EPOCHS TEACHER_MICRO_BATCH DSS_TEACHER_LR DSS_TEACHER_EPOCHS STUDENT_LR STUDENT_EPOCHS
  MINILLM_LR MINILLM_STEPS MINILLM_EVAL_INTERVAL NUM_ROLLOUTS MINI_BATCH PPO_EPOCHS MINILLM_WARMUP EVAL_SEEDS
  EVAL_NO_REPEAT_NGRAM DS_CONFIG MAX_LENGTH MAX_PROMPT_LENGTH BATCH_SIZE MICRO_BATCH_SIZE EVAL_GEN_NUM WORKERS)
inherited=()
for name in "${FROM_GPT2[@]}"; do [[ -v $name ]] || inherited+=("$name"); done
source "$BASE_PATH/scripts/presets/gpt2.sh"
PTX_DATA_DIR=$custom_ptx_dir
if (( ${#inherited[@]} )); then
  echo "preset custom: from scripts/presets/gpt2.sh (set any of them to change it):" \
       "$(for name in "${inherited[@]}"; do printf '%s=%q ' "$name" "${!name}"; done)"
fi
preset_inputs() {
  require_inputs "$RAW_DIR/raw.jsonl" "$TOKENIZER" "$TEACHER_INIT" "$STUDENT_INIT"
}
