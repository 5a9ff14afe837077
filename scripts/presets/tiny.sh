# Preset "tiny" (the default): the embedded default — generated instruction data whose reasoning
# families carry rationales, a BPE tokenizer and random-init GPT-2s (teacher 0.97M, student
# 0.19M parameters) — sized for 2 CPU cores. Sourced by run_comparison.sh; every variable can be
# overridden from the environment (tests shrink it: N_TRAIN=... TEACHER_EPOCHS=1 ...).
WORK=${WORK:-$BASE_PATH}                      # root of data/, checkpoints/, processed_data/, results/
RESULTS=${RESULTS:-$WORK/results/tiny}
RAW_DIR=${RAW_DIR:-$WORK/data/tiny}           # raw.jsonl (validation rows first) + valid.jsonl (test)
EVAL_DATA_ROOT=${EVAL_DATA_ROOT:-$WORK/data} EVAL_SETS=${EVAL_SETS:-tiny}
PROCESSED=${PROCESSED:-$WORK/processed_data/tiny}
TOKENIZER=${TOKENIZER:-$WORK/checkpoints/tiny-tokenizer}
TEACHER_INIT=${TEACHER_INIT:-$WORK/checkpoints/tiny-teacher}
STUDENT_INIT=${STUDENT_INIT:-$WORK/checkpoints/tiny-student}
DEV_NUM=${DEV_NUM:-200}
PTX_TEXT=${PTX_TEXT:-$RAW_DIR/pretrain.txt}   # MiniLLM's pretraining corpus, one document per line
STUDENT_INIT_PER_SEED=${STUDENT_INIT_PER_SEED:-1}  # random-init students: each training seed draws its own init
# Step-by-step: the dataset's own rationales (the reasoning families) teach the two-task DSS
# teacher, which then writes the black-box students' labels and rationales in one chain-of-thought
# pass; its labels are written like the gold ones ("The answer is 12.").
DSS_RATIONALES=${DSS_RATIONALES:-dataset} DSS_SOURCE=${DSS_SOURCE:-synthetic} DSS_SOURCE_INPUT=${DSS_SOURCE_INPUT:-$RAW_DIR}
COT_LABEL_FORMAT=${COT_LABEL_FORMAT:-"The answer is {label}."}
# Recipes (global batch 32 everywhere; one epoch = 93 steps over the 3000 training questions).
# The teacher trains to competence (10 epochs: greedy answers right on ≥ 80% of every reasoning
# family); the students get a budget that leaves them short of it (3 epochs), so distillation
# has a gap to close.
TEACHER_LR=${TEACHER_LR:-3e-3} TEACHER_EPOCHS=${TEACHER_EPOCHS:-10} TEACHER_MICRO_BATCH=${TEACHER_MICRO_BATCH:-32}
DSS_TEACHER_LR=${DSS_TEACHER_LR:-1e-3} DSS_TEACHER_EPOCHS=${DSS_TEACHER_EPOCHS:-2}
STUDENT_LR=${STUDENT_LR:-2e-3} STUDENT_EPOCHS=${STUDENT_EPOCHS:-3}
# MiniLLM at this scale: 64 steps = 8 collections of 128 rollouts, 2 PPO epochs of mini-batches of 32;
# the control arms SFT / DSS (continued) take the same steps, batch and optimizer.
MINILLM_LR=${MINILLM_LR:-5e-4} MINILLM_STEPS=${MINILLM_STEPS:-64} MINILLM_EVAL_INTERVAL=${MINILLM_EVAL_INTERVAL:-32}
NUM_ROLLOUTS=${NUM_ROLLOUTS:-128} MINI_BATCH=${MINI_BATCH:-32} PPO_EPOCHS=${PPO_EPOCHS:-2} MINILLM_WARMUP=${MINILLM_WARMUP:-0}
EVAL_SEEDS=${EVAL_SEEDS:-"10 20 30"}
EVAL_NO_REPEAT_NGRAM=${EVAL_NO_REPEAT_NGRAM:-0}  # 0 = pure ancestral sampling
# Shared by every training stage (read by scripts/lib/train_token.sh).
export DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_fp32.json}
export MAX_LENGTH=${MAX_LENGTH:-128} MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-80}
export BATCH_SIZE=${BATCH_SIZE:-32} MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-32}
export EVAL_GEN_NUM=${EVAL_GEN_NUM:-100}
export WORKERS=${WORKERS:-1}  # tokenisation processes: one per core is plenty here
# The generated inputs, rebuilt only when this stage reruns (N_TRAIN etc. shrink them for tests).
preset_inputs() {
  local sizes=()
  [[ -n ${N_TRAIN:-} ]] && sizes+=(--n-train "$N_TRAIN")
  [[ -n ${N_DEV:-} ]] && sizes+=(--n-dev "$N_DEV")
  [[ -n ${N_TEST:-} ]] && sizes+=(--n-test "$N_TEST")
  [[ -n ${N_PRETRAIN:-} ]] && sizes+=(--n-pretrain "$N_PRETRAIN")
  stage inputs "" "$RAW_DIR $TOKENIZER $TEACHER_INIT $STUDENT_INIT" \
    python tools/make_tiny_default.py --root "$WORK" "${sizes[@]}"
}
