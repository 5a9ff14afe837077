#!/usr/bin/env bash
# The main command: every stage of the comparison for one preset, then the comparison report.
#   bash scripts/run_comparison.sh [BASE_PATH] [--force]       PRESET=tiny (default) | gpt2 | custom | stories
# (stories: a real pretrained teacher with a pipeline of its own, scripts/presets/stories.sh)
# Driver knobs (README "Main command"): METHODS (the arms to run), MAX_TRAIN_ROWS, MAX_EVAL_ROWS,
# MAX_RATIONALE_FAILURE_RATE, TEACHER_CACHE_TOP_K; tools/preflight.py checks the settings before anything trains.
# Methods, every student of a training seed from the same initialisation and data order (a paired
# design; with STUDENT_INIT_PER_SEED=1 each seed also draws its own random init): SFT on gold
# labels; word-level KD (one run per divergence in KD_LOSSES); SeqKD (SFT on the teacher's
# answers); MiniLLM (from the SFT student) and its control arm SFT (continued) (the SFT student
# trained further by cross-entropy for MiniLLM's steps, with its pretraining term on the same chunks), which
# also controls on-policy distillation, GKD and DistiLLM (METHODS=all; same init and recipe);
# step-by-step DSS (labels and rationales the DSS teacher writes in one chain-of-thought pass),
# DSS (gold labels) (gold labels + the teacher's rationales), DSS-KD (white-box KD in both task
# streams) and DSS-MiniLLM (from the DSS student) with its control arm DSS (continued). The
# teacher and the two-task DSS teacher are trained once; every student once per seed in
# TRAIN_SEEDS. Everything is evaluated on the preset's eval sets (Rouge-L sampled with several
# generation seeds, accuracy greedy); results/<preset>/comparison.md (+ .csv, .json, plots/) is
# written by tools/report.py, which can regenerate it without training.
# A stage whose outputs exist and whose inputs are unchanged is skipped (minillm/experiments/stages.py); an
# interrupted one resumes; --force (or FORCE=1) reruns everything.
force=${FORCE:-0}
positional=()
for arg in "$@"; do
  if [[ $arg == --force ]]; then force=1; else positional+=("$arg"); fi
done
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" "${positional[@]}"
PRESET=${PRESET:-tiny}
TRAIN_SEEDS=${TRAIN_SEEDS:-10}          # several ("10 20 30") = the spread across training runs
KD_LOSSES=${KD_LOSSES:-forward_kl}      # e.g. "forward_kl reverse_kl skew_forward_kl"
PTX_DATA_DIR=${PTX_DATA_DIR:-}
ALL_METHODS="sft kd seqkd minillm minillm-lmops opd gkd distillm sft-continued dss dss-gold dss-kd dss-minillm dss-continued"
# The default leaves out MiniLLM with LMOps' whitening, on-policy distillation, GKD and DistiLLM, which keeps the tiny main command
# within its time budget; METHODS=all runs every arm (the README's table does).
DEFAULT_METHODS="sft kd seqkd minillm sft-continued dss dss-gold dss-kd dss-minillm dss-continued"
METHODS=${METHODS:-$DEFAULT_METHODS}   # the arms to run ("kd" = one per KD_LOSSES); others' stages are skipped
[[ $METHODS == all ]] && METHODS=$ALL_METHODS
MAX_TRAIN_ROWS=${MAX_TRAIN_ROWS:-}     # set: only the first N training questions (after DEV_NUM), teachers' data included
MAX_EVAL_ROWS=${MAX_EVAL_ROWS:-}       # set: only the first N rows of each eval set are scored
MAX_RATIONALE_FAILURE_RATE=${MAX_RATIONALE_FAILURE_RATE:-}  # percent; unset: tools/generate_rationales.py's 50
TEACHER_CACHE_TOP_K=${TEACHER_CACHE_TOP_K:-}  # set (e.g. 64): KD and DSS-KD read a top-k cache of their teacher, not the teacher
if [[ -n ${EXTRA_ARGS:-} ]]; then
  echo "error: EXTRA_ARGS='$EXTRA_ARGS' is exported, but the driver sets every stage's flags itself and could not" \
       "track it (a rerun would silently keep results made without it); unset EXTRA_ARGS. Eval rows: MAX_EVAL_ROWS;" \
       "training rows: MAX_TRAIN_ROWS; recipes: the variables of scripts/presets/$PRESET.sh" >&2
  exit 1
fi
# Knobs that change results without appearing on a stage's command line.
export STAGE_ENV="DS_CONFIG MAX_LENGTH MAX_PROMPT_LENGTH BATCH_SIZE MICRO_BATCH_SIZE EVAL_GEN_NUM"
# ... and the stage scripts' own knobs, which count only when a user exports them (minillm/experiments/stages.py
# skips unset names, so they change no fingerprint otherwise).
STAGE_ENV+=" TRAIN_FRACTION LABEL_WEIGHT RATIONALE_DATA_DIR KD_RATIO KD_ARGS KD_LOSS TEACHER_MIX_ALPHA"
STAGE_ENV+=" ROLLOUT_BATCH_SIZE EVAL_INTERVAL SEED DTYPE TEMPLATE LABEL_TEMPLATE LABEL_PASS GEN_ARGS PICK_BY"
STAGE_ENV+=" ACCURACY_DECODING MODEL_PATH MAX_DOCS NUM_ROLLOUTS PPO_EPOCHS GKD_LAMBDA GKD_OFF_POLICY SGO_LOSS_EPS"
STAGE_ENV+=" SGO_CAPACITY PTX_KD_RATIO"
FORCE_FLAG=()
(( force )) && FORCE_FLAG=(--force)
SECONDS=0
# stage NAME "INPUT PATHS" "OUTPUT PATHS" COMMAND...   (run, skip or resume; see minillm/experiments/stages.py)
stage() {
  local name=$1 inputs=$2 outputs=$3
  shift 3
  echo
  echo "=== [$((SECONDS / 60))m$((SECONDS % 60))s] $name"
  # shellcheck disable=SC2086  # the path lists split on spaces
  python -m minillm.experiments.stages --name "$name" --state-dir "$RESULTS/stages" --inputs $inputs --outputs $outputs \
    "${FORCE_FLAG[@]}" -- "$@"
}
source "$BASE_PATH/scripts/presets/$PRESET.sh"
# A preset with a pipeline of its own (stories) runs it on the same stages, and that is all.
if declare -F preset_pipeline >/dev/null; then preset_pipeline; exit 0; fi
# MiniLLM's corpus term takes KD_RATIO (scripts/lib/minillm.sh), its control arms' and
# GKD's / DistiLLM's PTX_KD_RATIO (scripts/lib/on_policy_recipe.sh): they must stay one term.
if [[ ${KD_RATIO:-0.5} != "${PTX_KD_RATIO:-0.5}" ]]; then
  echo "error: KD_RATIO=${KD_RATIO:-0.5} (MiniLLM's pretraining term, and word-level KD) differs from" \
       "PTX_KD_RATIO=${PTX_KD_RATIO:-0.5} (the same term in its control arms, GKD and DistiLLM): set both alike" >&2
  exit 1
fi
export MASTER_PORT GPUS_PER_NODE NNODES HOSTFILE
runs() { [[ " $METHODS " == *" $1 "* ]]; }
runs_any() {
  local method
  for method in "$@"; do runs "$method" && return 0; done
  return 1
}
for method in $METHODS; do
  [[ " $ALL_METHODS " == *" $method "* ]] || { echo "error: METHODS names '$method'; choose from: $ALL_METHODS" >&2; exit 1; }
done
for arm_and_init in minillm:sft minillm-lmops:sft opd:sft gkd:sft distillm:sft sft-continued:sft dss-minillm:dss dss-continued:dss; do
  if runs "${arm_and_init%%:*}" && ! runs "${arm_and_init#*:}"; then
    echo "METHODS: ${arm_and_init%%:*} starts from the ${arm_and_init#*:} student, so ${arm_and_init#*:} runs too"
    METHODS+=" ${arm_and_init#*:}"
  fi
done
DSS_METHODS=(dss dss-gold dss-kd dss-minillm dss-continued)
ON_POLICY_RECIPE=(minillm minillm-lmops opd gkd distillm sft-continued dss-minillm dss-continued)  # MINILLM_* steps, lr, warm-up
RUNS=$RESULTS/runs
FIRST_SEED=${TRAIN_SEEDS%% *}
NEW_TOKENS=$((MAX_LENGTH - MAX_PROMPT_LENGTH))
# Generation keeps a prompt's LAST tokens: room for a task prefix ("[label] ") in front of the
# longest prompts, so that it is never the part cut off.
PREFIXED_PROMPT_LENGTH=$((MAX_PROMPT_LENGTH + 16))
EVAL_INPUTS=$(for set in $EVAL_SETS; do printf '%s ' "$EVAL_DATA_ROOT/$set"; done)
require_inputs() {
  local path
  for path in "$@"; do
    [[ -e $path ]] || { echo "error: preset $PRESET needs $path (see the README's paper-scale how-to)" >&2; exit 1; }
  done
}
# evaluate METHOD RUN MODEL: best checkpoint by validation Rouge-L on every eval set and seed.
evaluate() {
  # The preset's EVAL_NO_REPEAT_NGRAM (gpt2: 6, MiniLLM's final protocol) and MAX_EVAL_ROWS; unset
  # (or 0) they add nothing, so the stage's command line, and its fingerprint, stay as they were.
  local flags=() eval_args=()
  if (( ${EVAL_NO_REPEAT_NGRAM:-0} > 0 )); then flags+=(--no-repeat-ngram-size "$EVAL_NO_REPEAT_NGRAM"); fi
  if [[ -n $MAX_EVAL_ROWS ]]; then flags+=(--max-eval-rows "$MAX_EVAL_ROWS"); fi
  if (( ${#flags[@]} )); then eval_args=("EXTRA_ARGS=${flags[*]}"); fi
  stage "eval-$1-$2" "$3 $EVAL_INPUTS" "$RESULTS/eval/$1/$2" env MODELS="$1/$2=$3" DATA_ROOT="$EVAL_DATA_ROOT" \
    EVAL_SETS="$EVAL_SETS" SEEDS="$EVAL_SEEDS" SAVE_ROOT="$RESULTS/eval" REPORT= MAX_NEW_TOKENS="$NEW_TOKENS" \
    MAX_PROMPT_LENGTH="$PREFIXED_PROMPT_LENGTH" "${eval_args[@]}" bash scripts/eval/run_eval.sh "$BASE_PATH"
}
# check_items DATA STAGE MADE_BY: refuse processed data that cannot fill one global batch, naming
# the stage that made it and its input (the training stage would fail later, far from the cause).
check_items() {
  python tools/preflight.py items --data "$1" --batch-size "$BATCH_SIZE" --stage "$2" --made-by "$3"
}
# cap_rows NAME ROWS_FILE OUT_DIR: the first MAX_TRAIN_ROWS training rows (after DEV_NUM) of a file.
cap_rows() {
  stage "$1" "$2" "$3" python tools/cap_rows.py --input "$2" --keep-first "$DEV_NUM" --max-rows "$MAX_TRAIN_ROWS" \
    --out "$3/raw.jsonl"
}
# Added to a rationale-generation stage's GEN_ARGS only when set, so default commands stay as they were.
failure_gate=${MAX_RATIONALE_FAILURE_RATE:+ --max-failure-rate $MAX_RATIONALE_FAILURE_RATE}
train_env=(env EXTRA_ARGS=--resume)  # an interrupted training stage continues where it stopped
# The students' initialisation for a training seed: the preset's STUDENT_INIT, or (random-init
# students, STUDENT_INIT_PER_SEED=1) a model of its architecture drawn with that seed.
student_init() {
  if [[ ${STUDENT_INIT_PER_SEED:-0} == 1 ]]; then echo "$WORK/checkpoints/student-init/seed$1"; else echo "$STUDENT_INIT"; fi
}

echo "preset $PRESET: results in $RESULTS; training seeds $TRAIN_SEEDS; generation seeds $EVAL_SEEDS"
echo "budget: teacher $TEACHER_EPOCHS epochs; DSS teacher +$DSS_TEACHER_EPOCHS epochs; every token-level student" \
     "$STUDENT_EPOCHS epochs of global batch $BATCH_SIZE questions; MiniLLM / DSS-MiniLLM +$MINILLM_STEPS steps" \
     "($NUM_ROLLOUTS rollouts per collection, mini-batch $MINI_BATCH) from the SFT / DSS student"
echo "methods: $METHODS${MAX_TRAIN_ROWS:+; first $MAX_TRAIN_ROWS training questions}${MAX_EVAL_ROWS:+; first $MAX_EVAL_ROWS rows per eval set}"
preset_inputs

# Checks before anything trains; they also record the run's plan for the report.
checked_lrs=(TEACHER_LR="$TEACHER_LR" STUDENT_LR="$STUDENT_LR")
fewshot=() on_policy=()
if runs_any "${DSS_METHODS[@]}"; then
  checked_lrs+=(DSS_TEACHER_LR="$DSS_TEACHER_LR")
  [[ $DSS_RATIONALES == dataset ]] || fewshot=(--fewshot-prompt-length "$FEWSHOT_PROMPT_LENGTH")
fi
if runs_any "${ON_POLICY_RECIPE[@]}"; then
  checked_lrs+=(MINILLM_LR="$MINILLM_LR")
  on_policy=(--warmup "$MINILLM_WARMUP" --steps "$MINILLM_STEPS")
fi
TRAIN_ROWS=$RAW_DIR  # the instruction rows every stage trains on or writes for: RAW_DIR, or its capped copy
train_data=$RAW_DIR${MAX_TRAIN_ROWS:+ (first $MAX_TRAIN_ROWS training rows)}
if [[ $DSS_RATIONALES == dataset ]]; then
  dss_data="$DSS_SOURCE rationale rows from $DSS_SOURCE_INPUT${MAX_TRAIN_ROWS:+ (first $MAX_TRAIN_ROWS training rows)}"
else
  dss_data="rationales the SFT teacher writes few-shot for $train_data"
fi
python tools/preflight.py settings --teacher "$TEACHER_INIT" --student "$STUDENT_INIT" --tokenizer "$TOKENIZER" \
  --max-length "$MAX_LENGTH" --max-prompt-length "$MAX_PROMPT_LENGTH" --batch-size "$BATCH_SIZE" "${fewshot[@]}" \
  --lr "${checked_lrs[@]}" "${on_policy[@]}" --max-train-rows "${MAX_TRAIN_ROWS:-0}" \
  --max-eval-rows "${MAX_EVAL_ROWS:-0}" --record "$RESULTS/driver.json" --preset "$PRESET" --methods "$METHODS" \
  --all-methods "$ALL_METHODS" --instruction-data "$train_data" --dss-data "$dss_data" \
  --teacher-cache-top-k "${TEACHER_CACHE_TOP_K:-0}"
if [[ -n $MAX_TRAIN_ROWS ]]; then
  TRAIN_ROWS=$RESULTS/data/train-rows
  cap_rows cap-train-rows "$RAW_DIR/raw.jsonl" "$TRAIN_ROWS"
fi

FULL=$PROCESSED/full/$PRESET PROMPTS=$PROCESSED/prompt/$PRESET
stage process "$TRAIN_ROWS $TOKENIZER" "$PROCESSED/full $PROCESSED/prompt" env DATA_DIR="$TRAIN_ROWS" \
  PROCESSED_DIR="$PROCESSED/full" PROMPT_PROCESSED_DIR="$PROCESSED/prompt" MODEL_PATH="$TOKENIZER" \
  MODEL_TYPE="$PRESET" DEV_NUM="$DEV_NUM" bash scripts/tools/process_data_dolly.sh "$BASE_PATH"
check_items "$FULL" process "$TRAIN_ROWS/raw.jsonl (RAW_DIR, DEV_NUM=$DEV_NUM validation rows first)"
if [[ -n $PTX_TEXT ]] && runs_any "${ON_POLICY_RECIPE[@]}"; then
  PTX_DATA_DIR=$PROCESSED/pretrain/$PRESET
  stage process-pretrain "$PTX_TEXT $TOKENIZER" "$PROCESSED/pretrain" env DATA_PATH="$PTX_TEXT" \
    PROCESSED_DIR="$PROCESSED/pretrain" MODEL_PATH="$TOKENIZER" MODEL_TYPE="$PRESET" CHUNK_LENGTH="$MAX_LENGTH" \
    DEV_NUM=10 bash scripts/tools/process_data_pretrain.sh "$BASE_PATH"
fi
PTX_ENV=(PTX=0)
[[ -n $PTX_DATA_DIR ]] && PTX_ENV=(PTX=1 PTX_DATA_DIR="$PTX_DATA_DIR")

TEACHER=$RUNS/teacher/seed$FIRST_SEED
stage teacher "$FULL $TEACHER_INIT" "$TEACHER" "${train_env[@]}" DATA_DIR="$FULL" MODEL_PATH="$TEACHER_INIT" \
  SAVE_PATH="$TEACHER" SEED="$FIRST_SEED" LR="$TEACHER_LR" EPOCHS="$TEACHER_EPOCHS" \
  MICRO_BATCH_SIZE="$TEACHER_MICRO_BATCH" bash scripts/sft/sft_xlarge.sh "$BASE_PATH"

SEQKD_RAW=$RESULTS/data/seqkd
if runs seqkd; then
  stage seqkd-data "$TEACHER $TRAIN_ROWS" "$SEQKD_RAW $PROCESSED/seqkd" env TEACHER_PATH="$TEACHER" DATA_DIR="$TRAIN_ROWS" \
    SEQKD_DIR="$SEQKD_RAW" PROCESSED_DIR="$PROCESSED/seqkd/full" PROMPT_PROCESSED_DIR="$PROCESSED/seqkd/prompt" \
    MODEL_TYPE="$PRESET" DEV_NUM="$DEV_NUM" MAX_NEW_TOKENS="$NEW_TOKENS" bash scripts/tools/generate_data_seqkd.sh "$BASE_PATH"
  check_items "$PROCESSED/seqkd/full/$PRESET" seqkd-data "the teacher's answers in $SEQKD_RAW/raw.jsonl"
fi

# Step-by-step data: rationale rows (the dataset's own, or written few-shot by the SFT teacher),
# the two-task DSS teacher fine-tuned on them, and the black-box students' data written by a teacher.
DSS_ROWS=$RESULTS/data/dss
DSS_TEACHER=$RUNS/dss-teacher/seed$FIRST_SEED
BLACK_BOX_ROWS=$DSS_ROWS BLACK_BOX=$PROCESSED/dss
if [[ $DSS_RATIONALES == dataset ]]; then BLACK_BOX_ROWS=$RESULTS/data/dss-teacher BLACK_BOX=$PROCESSED/dss-teacher; fi
# process_dss NAME ROWS_DIR OUT UPSTREAM: the two task streams of a folder of rationale rows that
# the stage UPSTREAM wrote.
process_dss() {
  stage "$1" "$2 $TOKENIZER" "$3" env DATA_DIR="$2" PROCESSED_DIR="$3" MODEL_PATH="$TOKENIZER" MODEL_TYPE="$PRESET" \
    DEV_NUM="$DEV_NUM" bash scripts/tools/process_data_dss.sh "$BASE_PATH"
  check_items "$3/full/label/$PRESET" "$1" "$2/raw.jsonl, written by stage $4 (DEV_NUM=$DEV_NUM validation rows first)"
}
# derive_rows NAME INPUT_DIR OUT_DIR FLAG: rationale rows derived by tools/derive_rationale_rows.py.
derive_rows() {
  stage "$1" "$2" "$3" python tools/derive_rationale_rows.py --input "$2/raw.jsonl" --out "$3/raw.jsonl" "${@:4}"
}
if runs_any "${DSS_METHODS[@]}"; then
  if [[ $DSS_RATIONALES == dataset ]]; then
    : "${DSS_SOURCE:?DSS_RATIONALES=dataset needs DSS_SOURCE (synthetic, gsm8k, cqa or svamp) and DSS_SOURCE_INPUT}"
    stage dss-rows "$DSS_SOURCE_INPUT" "$DSS_ROWS" python tools/import_rationales.py --source "$DSS_SOURCE" \
      --input "$DSS_SOURCE_INPUT" --split train --out "$DSS_ROWS/raw.jsonl"
    dss_rows_stage=dss-rows
    if [[ -n $MAX_TRAIN_ROWS ]]; then
      cap_rows cap-dss-rows "$DSS_ROWS/raw.jsonl" "$RESULTS/data/dss-capped"
      DSS_ROWS=$RESULTS/data/dss-capped dss_rows_stage=cap-dss-rows
    fi
  else
    failure_gate_args=()
    [[ -n $failure_gate ]] && failure_gate_args=(GEN_ARGS="${failure_gate# }")
    stage dss-rows "$TEACHER $TRAIN_ROWS" "$DSS_ROWS" env TEACHER_PATH="$TEACHER" INPUT="$TRAIN_ROWS/raw.jsonl" \
      OUT="$DSS_ROWS/raw.jsonl" DEV_NUM="$DEV_NUM" MAX_PROMPT_LENGTH="$FEWSHOT_PROMPT_LENGTH" \
      MAX_NEW_TOKENS="$NEW_TOKENS" "${failure_gate_args[@]}" bash scripts/tools/generate_rationales.sh "$BASE_PATH"
    dss_rows_stage=dss-rows
  fi
  process_dss process-dss "$DSS_ROWS" "$PROCESSED/dss" "$dss_rows_stage"
  # The DSS teacher learns the rationale task as chain of thought (each rationale ends "So the answer
  # is X."), so that it writes labels and rationales in ONE pass: the label is the one its rationale
  # concludes.
  derive_rows dss-cot-rows "$DSS_ROWS" "$RESULTS/data/dss-cot" --chain-of-thought
  process_dss process-dss-cot "$RESULTS/data/dss-cot" "$PROCESSED/dss-cot" dss-cot-rows
  stage dss-teacher "$TEACHER $PROCESSED/dss-cot" "$DSS_TEACHER" "${train_env[@]}" TEACHER_PATH="$TEACHER" \
    DATA_DIR="$PROCESSED/dss-cot/full/label/$PRESET" RATIONALE_DATA_DIR="$PROCESSED/dss-cot/full/rationale/$PRESET" \
    SAVE_PATH="$DSS_TEACHER" SEED="$FIRST_SEED" LR="$DSS_TEACHER_LR" EPOCHS="$DSS_TEACHER_EPOCHS" \
    MICRO_BATCH_SIZE="$TEACHER_MICRO_BATCH" bash scripts/dss/dss_teacher_xlarge.sh "$BASE_PATH"
  # The DSS teacher writes what the black-box students (and the gold-label arm's rationales) learn from.
  if [[ $DSS_RATIONALES == dataset ]] && runs_any dss dss-gold dss-continued; then
    # Greedy chain of thought for the reasoning rows (label = its conclusion, written in the gold
    # labels' style); a label pass for the open-ended rows, which have no rationale.
    stage dss-teacher-data "$DSS_TEACHER $DSS_ROWS" "$BLACK_BOX_ROWS" env TEACHER_PATH="$DSS_TEACHER" \
      INPUT="$DSS_ROWS/raw.jsonl" OUT="$BLACK_BOX_ROWS/raw.jsonl" TEMPLATE=prompts/rationales/dss_rationale.txt \
      LABEL_TEMPLATE=prompts/rationales/dss_label.txt LABEL_PASS=no-rationale COT_LABEL_FORMAT="$COT_LABEL_FORMAT" \
      GEN_ARGS="--rationale-rows with-rationale --top-k 1$failure_gate" DEV_NUM="$DEV_NUM" \
      MAX_PROMPT_LENGTH="$PREFIXED_PROMPT_LENGTH" MAX_NEW_TOKENS="$NEW_TOKENS" bash scripts/tools/generate_rationales.sh "$BASE_PATH"
    process_dss process-dss-teacher "$BLACK_BOX_ROWS" "$BLACK_BOX" dss-teacher-data
  fi
  # The paper's third arm: the gold labels beside the teacher's rationales.
  if runs dss-gold; then
    derive_rows dss-gold-rows "$BLACK_BOX_ROWS" "$RESULTS/data/dss-gold" --labels gold
    process_dss process-dss-gold "$RESULTS/data/dss-gold" "$PROCESSED/dss-gold" dss-gold-rows
  fi
fi

# TEACHER_CACHE_TOP_K: one teacher pass writes its top-k outputs on the KD arms' data
# (tools/cache_teacher.py), which they read every epoch instead of running the teacher.
KD_CACHE=() DSS_KD_CACHE=()
if [[ -n $TEACHER_CACHE_TOP_K ]]; then
  # teacher_cache NAME TEACHER DATA_DIR: the stage writing TEACHER's cache of DATA_DIR to $RESULTS/teacher-cache/NAME
  teacher_cache() {
    stage "cache-$1" "$2 $3" "$RESULTS/teacher-cache/$1" env TEACHER_PATH="$2" DATA_DIR="$3" \
      CACHE_DIR="$RESULTS/teacher-cache/$1" TOP_K="$TEACHER_CACHE_TOP_K" bash scripts/tools/cache_teacher.sh "$BASE_PATH"
  }
  if runs kd; then
    teacher_cache teacher "$TEACHER" "$FULL"
    KD_CACHE=("KD_ARGS=--teacher-cache $RESULTS/teacher-cache/teacher")
  fi
  if runs dss-kd; then
    teacher_cache dss-teacher-label "$DSS_TEACHER" "$PROCESSED/dss/full/label/$PRESET"
    teacher_cache dss-teacher-rationale "$DSS_TEACHER" "$PROCESSED/dss/full/rationale/$PRESET"
    DSS_KD_CACHE=("KD_ARGS=--teacher-cache $RESULTS/teacher-cache/dss-teacher-label $RESULTS/teacher-cache/dss-teacher-rationale")
  fi
fi

# streams DIR: the DSS task streams of a processed folder, as training variables.
streams() { echo DATA_DIR="$1/full/label/$PRESET" RATIONALE_DATA_DIR="$1/full/rationale/$PRESET"; }
for seed in $TRAIN_SEEDS; do
  init=$(student_init "$seed")
  if [[ ${STUDENT_INIT_PER_SEED:-0} == 1 ]]; then
    stage "student-init-seed$seed" "$STUDENT_INIT $TOKENIZER" "$init" python tools/make_random_model.py \
      --config "$STUDENT_INIT" --tokenizer "$TOKENIZER" --seed "$seed" --out "$init"
  fi
  common=("${train_env[@]}" SEED="$seed" MODEL_PATH="$init" LR="$STUDENT_LR" EPOCHS="$STUDENT_EPOCHS")
  if runs sft; then
    stage "sft-seed$seed" "$FULL $init" "$RUNS/sft/seed$seed" "${common[@]}" DATA_DIR="$FULL" \
      SAVE_PATH="$RUNS/sft/seed$seed" bash scripts/gpt2/sft/sft_base.sh "$BASE_PATH"
  fi
  if runs kd; then
    for loss in $KD_LOSSES; do
      stage "kd-$loss-seed$seed" "$FULL $init $TEACHER ${KD_CACHE[*]#*--teacher-cache }" "$RUNS/kd-$loss/seed$seed" \
        "${common[@]}" DATA_DIR="$FULL" TEACHER_PATH="$TEACHER" KD_LOSS="$loss" "${KD_CACHE[@]}" \
        SAVE_PATH="$RUNS/kd-$loss/seed$seed" bash scripts/kd/kd_base.sh "$BASE_PATH"
    done
  fi
  if runs seqkd; then
    stage "seqkd-seed$seed" "$PROCESSED/seqkd $init" "$RUNS/seqkd/seed$seed" "${common[@]}" \
      DATA_DIR="$PROCESSED/seqkd/full/$PRESET" SAVE_PATH="$RUNS/seqkd/seed$seed" bash scripts/seqkd/seqkd_base.sh "$BASE_PATH"
  fi
  # The on-policy runs and their control arms share the optimizer recipe; only the objective differs.
  recipe=(SEED="$seed" LR="$MINILLM_LR" WARMUP_STEPS="$MINILLM_WARMUP" TOTAL_STEPS="$MINILLM_STEPS"
    EVAL_INTERVAL="$MINILLM_EVAL_INTERVAL")
  minillm=("${train_env[@]}" "${recipe[@]}" "${PTX_ENV[@]}" NUM_ROLLOUTS="$NUM_ROLLOUTS" MINI_BATCH="$MINI_BATCH"
    PPO_EPOCHS="$PPO_EPOCHS")
  continued=("${train_env[@]}" "${recipe[@]}" "${PTX_ENV[@]}" BATCH_SIZE="$MINI_BATCH")
  if runs minillm; then
    stage "minillm-seed$seed" "$RUNS/sft/seed$seed $TEACHER $PROMPTS $PTX_DATA_DIR" "$RUNS/minillm/seed$seed" \
      "${minillm[@]}" INIT_PATH="$RUNS/sft/seed$seed" TEACHER_PATH="$TEACHER" PROMPT_DATA_DIR="$PROMPTS" \
      SAVE_PATH="$RUNS/minillm/seed$seed" bash scripts/minillm/train_base_xl.sh "$BASE_PATH"
  fi
  if runs minillm-lmops; then  # MiniLLM with LMOps' advantage whitening (--whiten reference), else the same
    stage "minillm-lmops-seed$seed" "$RUNS/sft/seed$seed $TEACHER $PROMPTS $PTX_DATA_DIR" "$RUNS/minillm-lmops/seed$seed" \
      "${minillm[@]}" EXTRA_ARGS="--resume --whiten reference" INIT_PATH="$RUNS/sft/seed$seed" TEACHER_PATH="$TEACHER" \
      PROMPT_DATA_DIR="$PROMPTS" SAVE_PATH="$RUNS/minillm-lmops/seed$seed" bash scripts/minillm/train_base_xl.sh "$BASE_PATH"
  fi
  if runs sft-continued; then
    stage "sft-continued-seed$seed" "$RUNS/sft/seed$seed $FULL $TEACHER $PTX_DATA_DIR" "$RUNS/sft-continued/seed$seed" \
      "${continued[@]}" INIT_PATH="$RUNS/sft/seed$seed" DATA_DIR="$FULL" TEACHER_PATH="$TEACHER" \
      SAVE_PATH="$RUNS/sft-continued/seed$seed" bash scripts/sft/sft_continued.sh "$BASE_PATH"
  fi
  # On-policy distillation, GKD and DistiLLM continue the SFT student like MiniLLM, with its recipe
  # and corpus: SFT (continued) is their control arm too.
  if runs opd; then
    stage "opd-seed$seed" "$RUNS/sft/seed$seed $TEACHER $PROMPTS $PTX_DATA_DIR" "$RUNS/opd/seed$seed" \
      "${train_env[@]}" "${recipe[@]}" "${PTX_ENV[@]}" MINI_BATCH="$MINI_BATCH" NUM_ROLLOUTS="$MINI_BATCH" PPO_EPOCHS=1 \
      TEACHER_MIX_ALPHA=0 INIT_PATH="$RUNS/sft/seed$seed" TEACHER_PATH="$TEACHER" PROMPT_DATA_DIR="$PROMPTS" \
      SAVE_PATH="$RUNS/opd/seed$seed" bash scripts/opd/opd_base.sh "$BASE_PATH"
  fi
  for method in gkd distillm; do
    if runs $method; then
      stage "$method-seed$seed" "$RUNS/sft/seed$seed $FULL $TEACHER $PTX_DATA_DIR" "$RUNS/$method/seed$seed" \
        "${continued[@]}" KD_RATIO=1 INIT_PATH="$RUNS/sft/seed$seed" DATA_DIR="$FULL" TEACHER_PATH="$TEACHER" \
        SAVE_PATH="$RUNS/$method/seed$seed" bash "scripts/$method/${method}_base.sh" "$BASE_PATH"
    fi
  done
  if runs dss; then
    # shellcheck disable=SC2046  # streams prints two VAR=value words
    stage "dss-seed$seed" "$BLACK_BOX $init" "$RUNS/dss/seed$seed" "${common[@]}" $(streams "$BLACK_BOX") \
      SAVE_PATH="$RUNS/dss/seed$seed" bash scripts/dss/dss_base.sh "$BASE_PATH"
  fi
  if runs dss-gold; then
    # shellcheck disable=SC2046
    stage "dss-gold-seed$seed" "$PROCESSED/dss-gold $init" "$RUNS/dss-gold/seed$seed" "${common[@]}" \
      $(streams "$PROCESSED/dss-gold") SAVE_PATH="$RUNS/dss-gold/seed$seed" bash scripts/dss/dss_base.sh "$BASE_PATH"
  fi
  if runs dss-kd; then
    # shellcheck disable=SC2046
    stage "dss-kd-seed$seed" "$PROCESSED/dss $init $DSS_TEACHER ${DSS_KD_CACHE[*]#*--teacher-cache }" \
      "$RUNS/dss-kd/seed$seed" "${common[@]}" $(streams "$PROCESSED/dss") TEACHER_PATH="$DSS_TEACHER" \
      "${DSS_KD_CACHE[@]}" SAVE_PATH="$RUNS/dss-kd/seed$seed" bash scripts/dss/dss_kd_base.sh "$BASE_PATH"
  fi
  if runs dss-minillm; then
    stage "dss-minillm-seed$seed" "$RUNS/dss/seed$seed $DSS_TEACHER $PROCESSED/dss $PTX_DATA_DIR" \
      "$RUNS/dss-minillm/seed$seed" "${minillm[@]}" INIT_PATH="$RUNS/dss/seed$seed" TEACHER_PATH="$DSS_TEACHER" \
      PROMPT_DATA_DIR="$PROCESSED/dss/prompt/label/$PRESET" RATIONALE_DATA_DIR="$PROCESSED/dss/prompt/rationale/$PRESET" \
      SAVE_PATH="$RUNS/dss-minillm/seed$seed" bash scripts/dss/dss_minillm_base.sh "$BASE_PATH"
  fi
  if runs dss-continued; then
    # shellcheck disable=SC2046
    stage "dss-continued-seed$seed" "$RUNS/dss/seed$seed $BLACK_BOX $DSS_TEACHER $PTX_DATA_DIR" \
      "$RUNS/dss-continued/seed$seed" \
      "${continued[@]}" INIT_PATH="$RUNS/dss/seed$seed" $(streams "$BLACK_BOX") TEACHER_PATH="$DSS_TEACHER" \
      SAVE_PATH="$RUNS/dss-continued/seed$seed" bash scripts/sft/sft_continued.sh "$BASE_PATH"
  fi
done

evaluate untrained init "$(student_init "$FIRST_SEED")"
evaluate teacher "seed$FIRST_SEED" "$TEACHER"
if runs_any "${DSS_METHODS[@]}"; then evaluate dss-teacher "seed$FIRST_SEED" "$DSS_TEACHER"; fi
for seed in $TRAIN_SEEDS; do
  for method in $ALL_METHODS; do
    runs "$method" || continue
    if [[ $method == kd ]]; then
      for loss in $KD_LOSSES; do evaluate "kd-$loss" "seed$seed" "$RUNS/kd-$loss/seed$seed"; done
    else
      evaluate "$method" "seed$seed" "$RUNS/$method/seed$seed"
    fi
  done
done

echo
echo "=== [$((SECONDS / 60))m$((SECONDS % 60))s] report"
python tools/report.py "$RESULTS"
