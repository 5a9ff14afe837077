# Preset "custom": your data and models. Set the paths (instruction data in MiniLLM's raw.jsonl
# format, local HF model folders sharing one tokenizer, eval sets in MiniLLM's layout), then
#   PRESET=custom bash scripts/run_comparison.sh
# Each variable below is required or has the default shown; see presets/gpt2.sh for recipes.
WORK=${WORK:-$BASE_PATH}
RESULTS=${RESULTS:-$WORK/results/custom}
RAW_DIR=${RAW_DIR:?set RAW_DIR: a folder with raw.jsonl (instruction, input, output; validation rows first)}
EVAL_DATA_ROOT=${EVAL_DATA_ROOT:?set EVAL_DATA_ROOT: the folder holding one sub-folder per eval set}
EVAL_SETS=${EVAL_SETS:?set EVAL_SETS: eval set names under EVAL_DATA_ROOT}
PROCESSED=${PROCESSED:-$WORK/processed_data/custom}
TEACHER_INIT=${TEACHER_INIT:?set TEACHER_INIT: the teacher model folder}
STUDENT_INIT=${STUDENT_INIT:?set STUDENT_INIT: the student model folder}
TOKENIZER=${TOKENIZER:-$STUDENT_INIT}
DEV_NUM=${DEV_NUM:-500}
PTX_TEXT=${PTX_TEXT:-}                        # a text corpus (one document per line), or
PTX_DATA_DIR=${PTX_DATA_DIR:-}                # an already processed one; both empty: no pretraining loss
# Rationales: "dataset" imports DSS_SOURCE (synthetic | gsm8k | cqa | svamp) from DSS_SOURCE_INPUT;
# "teacher-fewshot" has the SFT teacher write them for RAW_DIR's rows.
DSS_RATIONALES=${DSS_RATIONALES:-teacher-fewshot} FEWSHOT_PROMPT_LENGTH=${FEWSHOT_PROMPT_LENGTH:-768} DSS_SOURCE=${DSS_SOURCE:-} DSS_SOURCE_INPUT=${DSS_SOURCE_INPUT:-}
TEACHER_LR=${TEACHER_LR:-5e-5} TEACHER_EPOCHS=${TEACHER_EPOCHS:-10} TEACHER_MICRO_BATCH=${TEACHER_MICRO_BATCH:-4}
DSS_TEACHER_LR=${DSS_TEACHER_LR:-5e-5} DSS_TEACHER_EPOCHS=${DSS_TEACHER_EPOCHS:-3}
STUDENT_LR=${STUDENT_LR:-5e-4} STUDENT_EPOCHS=${STUDENT_EPOCHS:-20}
MINILLM_LR=${MINILLM_LR:-5e-6} MINILLM_STEPS=${MINILLM_STEPS:-5000} MINILLM_EVAL_INTERVAL=${MINILLM_EVAL_INTERVAL:-100}
NUM_ROLLOUTS=${NUM_ROLLOUTS:-256} MINI_BATCH=${MINI_BATCH:-64} PPO_EPOCHS=${PPO_EPOCHS:-4} MINILLM_WARMUP=${MINILLM_WARMUP:-100}
EVAL_SEEDS=${EVAL_SEEDS:-"10 20 30 40 50"}
export DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_bf16.json}
export MAX_LENGTH=${MAX_LENGTH:-512} MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-256}
export BATCH_SIZE=${BATCH_SIZE:-32} MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-8}
export EVAL_GEN_NUM=${EVAL_GEN_NUM:-500}
export WORKERS=${WORKERS:-8}
preset_inputs() {
  require_inputs "$RAW_DIR/raw.jsonl" "$TOKENIZER" "$TEACHER_INIT" "$STUDENT_INIT"
}
