# Preset "gpt2": the MiniLLM paper's scale — GPT-2 XL (1.5B) teacher, GPT-2 base (124M) students,
# databricks-dolly-15k, MiniLLM's recipes (ref §3, §6) and evaluation sets (ref §7), DeepSpeed
# on GPUS_PER_NODE GPUs (multi-node: HOSTFILE + NNODES). Prepare the inputs as the README's
# paper-scale how-to says; this preset only checks they exist. Global batches are fixed, so
# any GPU count trains the same steps on the same data.
WORK=${WORK:-$BASE_PATH}
RESULTS=${RESULTS:-$WORK/results/gpt2/comparison}
RAW_DIR=${RAW_DIR:-$WORK/data/dolly}          # raw.jsonl from MiniLLM's data release
EVAL_DATA_ROOT=${EVAL_DATA_ROOT:-$WORK/data} EVAL_SETS=${EVAL_SETS:-"dolly self-inst vicuna sinst uinst"}
PROCESSED=${PROCESSED:-$WORK/processed_data/dolly}
TOKENIZER=${TOKENIZER:-$WORK/checkpoints/gpt2-base}
TEACHER_INIT=${TEACHER_INIT:-$WORK/checkpoints/gpt2-xl}
STUDENT_INIT=${STUDENT_INIT:-$WORK/checkpoints/gpt2-base}
DEV_NUM=${DEV_NUM:-1000}
PTX_TEXT=${PTX_TEXT:-}                        # empty: PTX_DATA_DIR is already processed
PTX_DATA_DIR=${PTX_DATA_DIR:-$WORK/processed_data/openwebtext/gpt2}
# Dolly has no rationales: the SFT teacher writes them few-shot (prompts/rationales/fewshot_cot.txt).
DSS_RATIONALES=${DSS_RATIONALES:-teacher-fewshot} FEWSHOT_PROMPT_LENGTH=${FEWSHOT_PROMPT_LENGTH:-768}
DSS_SOURCE=${DSS_SOURCE:-} DSS_SOURCE_INPUT=${DSS_SOURCE_INPUT:-}  # with DSS_RATIONALES=dataset (see presets/custom.sh)
COT_LABEL_FORMAT=${COT_LABEL_FORMAT:-"{label}"}  # a label the DSS teacher's chain of thought concludes, as written in the data
# The paper's recipes (minillm/recipes.py, as PAPER_* from scripts/lib/common.sh).
TEACHER_LR=${TEACHER_LR:-$PAPER_TEACHER_LR} TEACHER_EPOCHS=${TEACHER_EPOCHS:-$PAPER_TEACHER_EPOCHS}
TEACHER_MICRO_BATCH=${TEACHER_MICRO_BATCH:-$PAPER_TEACHER_MICRO_BATCH_SIZE}
DSS_TEACHER_LR=${DSS_TEACHER_LR:-$PAPER_DSS_TEACHER_LR} DSS_TEACHER_EPOCHS=${DSS_TEACHER_EPOCHS:-$PAPER_DSS_TEACHER_EPOCHS}
STUDENT_LR=${STUDENT_LR:-$PAPER_SFT_LR} STUDENT_EPOCHS=${STUDENT_EPOCHS:-$PAPER_SFT_EPOCHS}
MINILLM_LR=${MINILLM_LR:-$PAPER_MINILLM_LR} MINILLM_STEPS=${MINILLM_STEPS:-$PAPER_MINILLM_TOTAL_STEPS}
MINILLM_EVAL_INTERVAL=${MINILLM_EVAL_INTERVAL:-$PAPER_MINILLM_EVAL_INTERVAL}
NUM_ROLLOUTS=${NUM_ROLLOUTS:-$PAPER_MINILLM_NUM_ROLLOUTS} MINI_BATCH=${MINI_BATCH:-$PAPER_MINILLM_BATCH_SIZE}
PPO_EPOCHS=${PPO_EPOCHS:-$PAPER_MINILLM_PPO_EPOCHS} MINILLM_WARMUP=${MINILLM_WARMUP:-$PAPER_MINILLM_WARMUP_STEPS}
EVAL_SEEDS=${EVAL_SEEDS:-"10 20 30 40 50"}
EVAL_NO_REPEAT_NGRAM=${EVAL_NO_REPEAT_NGRAM:-6}  # MiniLLM's final evaluation blocks repeated 6-grams (ref §7)
export DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_bf16.json}
export MAX_LENGTH=${MAX_LENGTH:-$PAPER_SFT_MAX_LENGTH} MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-$PAPER_SFT_MAX_PROMPT_LENGTH}
export BATCH_SIZE=${BATCH_SIZE:-$PAPER_SFT_BATCH_SIZE} MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-$PAPER_SFT_MICRO_BATCH_SIZE}
export EVAL_GEN_NUM=${EVAL_GEN_NUM:-1000}
export WORKERS=${WORKERS:-8}
preset_inputs() {
  require_inputs "$RAW_DIR/raw.jsonl" "$TOKENIZER" "$TEACHER_INIT" "$STUDENT_INIT" "$PTX_DATA_DIR"
}
