#!/usr/bin/env bash
# The paper-scale path on one GPU, every stage through its own script, a few steps each, then one
# report (benchmarks/gpu_check_report.py): speed, MFU, memory, non-finite and overflow steps,
# whether each loss falls. Exits non-zero on any crash, NaN or loss that does not fall.
#
#   bash benchmarks/gpu_check.sh                # one GPU: GPT-2 base (124M) student, GPT-2 XL (1.5B) teacher
#   bash benchmarks/gpu_check.sh --cpu-smoke    # the same stages at toy shapes on CPU (tests/test_gpu_check.py)
#
# Stages (GPU; --cpu-smoke runs each kind once, with the configs in brackets):
#   models      random-init GPT-2 base and XL (tools/make_random_model.py, configs/models/) with the
#               official GPT-2 tokenizer [1 × 32 student, 2 × 128 teacher]
#   data-dolly  the shared dolly sample (scripts/tools/process_data_dolly.sh), DEV_NUM 100 [8]; a
#               stand-in pretraining corpus: the sample's lines as text (scripts/tools/process_data_pretrain.sh)
#   data-dss    CQA with PaLM rationales, 2000 rows [32] (scripts/tools/import_rationales.sh, process_data_dss.sh)
#               (the three preparations run side by side)
#   sft-*       scripts/sft/sft_xlarge.sh, XL: zero1_fp16 zero2_bf16 zero3_bf16 [zero3_bf16]
#   kd-*        scripts/kd/kd_base.sh, base ← XL: zero1_fp16 zero1_bf16 [zero1_fp32]
#   seqkd       scripts/tools/generate_data_seqkd.sh: XL answers 100 prompts, bf16 [8 prompts, fp32]
#   minillm-*   scripts/minillm/train_base_xl.sh: one collection of 256 rollouts, 8 steps, XL teacher:
#               zero1_fp16 zero1_bf16 zero3_bf16 [8 rollouts, 4 steps, zero1_bf16]
#   dss-kd      scripts/dss/dss_kd_base.sh, base ← XL on both CQA task streams: zero1_bf16
#   eval        scripts/eval/run_eval.sh on every eval set of ../shared/data/minillm-data, 100 prompts
#               each, one seed, bf16 [4 prompts, fp32]
# The recipes are the scripts' own (the paper's) except: a few steps (TRAIN_STEPS 12, so that fp16's
# loss-scale overflows at the start, each a skipped update, leave updates to see; MINILLM_STEPS 8),
# a log line every step, one evaluation at the end with EVAL_GEN_NUM sampled prompts, no MiniLLM
# warm-up (8 steps of a 100-step warm-up would barely move the weights) and MiniLLM's rollouts
# sampled 128 at a time (the per-GPU batch; the collection is the same). --cpu-smoke also
# shrinks lengths and batches and raises the learning rates, so that a toy model's loss falls
# within its few steps; DeepSpeed refuses fp16 on CPU, so fp32 / bf16 configs stand in for it; and
# it runs two stages at a time.
# Checkpoints are deleted after each training stage (an XL run's optimizer state is ~19 GB); logs stay.
#
# Variables: GPU_CHECK_DIR (emptied first; results/gpu_check, results/gpu_check-cpu-smoke with --cpu-smoke),
# SHARED_DATA (../shared/data), TRAIN_STEPS, MINILLM_STEPS, EVAL_GEN_NUM, GPU_PEAK_TFLOPS (the
# MFU denominator when the GPU is not in the reporter's table).
set -euo pipefail

MODE=gpu
case ${1:-} in
  --cpu-smoke) MODE=cpu-smoke; shift ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
BASE_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$BASE_PATH"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SHARED_DATA=${SHARED_DATA:-$BASE_PATH/../shared/data}
DOLLY=$SHARED_DATA/minillm-data/dolly
TOKENIZER=$SHARED_DATA/tokenizers/gpt2
for input in "$DOLLY/raw.jsonl" "$TOKENIZER/tokenizer.json" "$SHARED_DATA/dss/cqa/cqa_train.json"; do
  [[ -f $input ]] || { echo "error: $input is missing (SHARED_DATA=$SHARED_DATA)" >&2; exit 1; }
done

if [[ $MODE == gpu ]]; then
  OUT_DIR=${GPU_CHECK_DIR:-$BASE_PATH/results/gpu_check}
  STUDENT_CONFIG=configs/models/gpt2-base.json TEACHER_CONFIG=configs/models/gpt2-xl.json
  SFT_CONFIGS="zero1_fp16 zero2_bf16 zero3_bf16" KD_CONFIGS="zero1_fp16 zero1_bf16"
  MINILLM_CONFIGS="zero1_fp16 zero1_bf16 zero3_bf16" DSS_CONFIG=zero1_bf16 DTYPE=bf16
  TRAIN_STEPS=${TRAIN_STEPS:-12} MINILLM_STEPS=${MINILLM_STEPS:-8} EVAL_GEN_NUM=${EVAL_GEN_NUM:-8}
  SEQKD_PROMPTS=100 EVAL_ROWS=100 DSS_ROWS=2000 DEV_NUM=100  # the dolly sample's validation rows
  MAX_LENGTH=512 MAX_PROMPT_LENGTH=256  # the scripts' own, as are their batches and learning rates
  SHAPES=(MAX_LENGTH=$MAX_LENGTH MAX_PROMPT_LENGTH=$MAX_PROMPT_LENGTH)
  DSS_SHAPES=()
  # The same 256 rollouts as the paper's 32 per GPU on 8+ GPUs, in two sampling passes on one GPU.
  MINILLM_SHAPES=(NUM_ROLLOUTS=256 ROLLOUT_BATCH_SIZE=128)
else
  OUT_DIR=${GPU_CHECK_DIR:-$BASE_PATH/results/gpu_check-cpu-smoke}
  STUDENT_CONFIG=configs/models/gpt2-toy.json TEACHER_CONFIG=configs/models/gpt2-7m.json
  SFT_CONFIGS=zero3_bf16 KD_CONFIGS=zero1_fp32 MINILLM_CONFIGS=zero1_bf16 DSS_CONFIG=zero1_fp32 DTYPE=fp32
  TRAIN_STEPS=${TRAIN_STEPS:-6} MINILLM_STEPS=${MINILLM_STEPS:-4} EVAL_GEN_NUM=${EVAL_GEN_NUM:-2}
  SEQKD_PROMPTS=8 EVAL_ROWS=4 DSS_ROWS=32
  MAX_LENGTH=64 MAX_PROMPT_LENGTH=48
  SHAPES=(MAX_LENGTH=$MAX_LENGTH MAX_PROMPT_LENGTH=$MAX_PROMPT_LENGTH BATCH_SIZE=4 MICRO_BATCH_SIZE=4 LR=3e-3 WORKERS=1)
  DSS_SHAPES=(MAX_LENGTH=160 MAX_PROMPT_LENGTH=120)  # CQA's prompts (question and choices) are longer
  DEV_NUM=8
  MINILLM_SHAPES=(NUM_ROLLOUTS=8 MINI_BATCH=4 MICRO_BATCH_SIZE=4 ROLLOUT_BATCH_SIZE=8 LR=1e-3)
fi
SHAPES+=(MAX_NEW_TOKENS=$(( MAX_LENGTH - MAX_PROMPT_LENGTH )))
WORK=$OUT_DIR/work
MODELS=$WORK/models PROCESSED=$WORK/processed RUNS=$OUT_DIR/runs
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR/logs" "$MODELS" "$RUNS"
STAGES=$OUT_DIR/stages.jsonl
echo "gpu_check ($MODE): $OUT_DIR"

# stage NAME KIND RUN CONFIG COMMAND...: run one stage, its output in logs/NAME.log; a failure is
# recorded and the next stages still run, so one report shows every stage.
stage() {
  local name=$1 kind=$2 run=$3 config=$4 status=0 started
  shift 4
  started=$(date +%s.%N)
  echo "== $name"
  "$@" >"$OUT_DIR/logs/$name.log" 2>&1 || status=$?
  printf '{"stage": "%s", "kind": "%s", "run": "%s", "config": "%s", "status": %d, "started": %s, "ended": %s}\n' \
    "$name" "$kind" "$run" "$config" "$status" "$started" "$(date +%s.%N)" >>"$STAGES"
  (( status == 0 )) || echo "   failed (exit $status): $OUT_DIR/logs/$name.log"
  if [[ $kind == train ]]; then rm -rf "$run"/[0-9]* "$run/resume"; fi
}
# next STAGE ARGS: `stage` in turn on a GPU, where stages must not share it while they are timed;
# two at a time (one per core) in the smoke run, whose times measure nothing.
next() {
  if [[ $MODE == gpu ]]; then stage "$@"; return; fi
  while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done
  stage "$@" &
}
# ds NAME: a DeepSpeed config of configs/deepspeed/.
ds() { echo "$BASE_PATH/configs/deepspeed/$1.json"; }
# Flags every training stage adds to its script's own (no variable of the scripts sets them).
STEP_ARGS="--total-steps $TRAIN_STEPS --log-interval 1"

# The three preparations run side by side (&& chains: `set -e` does not apply inside a function
# that stage() runs under `||`).
make_models() {
  python tools/make_random_model.py --config "$STUDENT_CONFIG" --tokenizer "$TOKENIZER" --seed 1 --out "$MODELS/student" &&
    python tools/make_random_model.py --config "$TEACHER_CONFIG" --tokenizer "$TOKENIZER" --seed 2 --out "$MODELS/teacher"
}
prepare_dolly() {
  env "${SHAPES[@]}" DATA_DIR="$DOLLY" MODEL_PATH="$TOKENIZER" DEV_NUM=$DEV_NUM PROCESSED_DIR="$PROCESSED/dolly/full" \
    PROMPT_PROCESSED_DIR="$PROCESSED/dolly/prompt" bash scripts/tools/process_data_dolly.sh . &&
    env "${SHAPES[@]}" DATA_PATH="$DOLLY/raw.jsonl" MODEL_PATH="$TOKENIZER" PROCESSED_DIR="$PROCESSED/corpus" \
      CHUNK_LENGTH=$MAX_LENGTH DEV_NUM=16 bash scripts/tools/process_data_pretrain.sh .
}
prepare_dss() {
  env SOURCE=cqa INPUT="$SHARED_DATA/dss/cqa" TRAIN_OUT="$WORK/cqa/all.jsonl" TEST_OUT="$WORK/cqa-test/valid.jsonl" \
    bash scripts/tools/import_rationales.sh . &&
    python tools/cap_rows.py --input "$WORK/cqa/all.jsonl" --keep-first $DEV_NUM --max-rows $DSS_ROWS \
      --out "$WORK/cqa/raw.jsonl" &&
    env "${SHAPES[@]}" "${DSS_SHAPES[@]}" DATA_DIR="$WORK/cqa" MODEL_PATH="$TOKENIZER" DEV_NUM=$DEV_NUM \
      PROCESSED_DIR="$PROCESSED/cqa-dss" bash scripts/tools/process_data_dss.sh .
}
stage models prep "" "" make_models &
stage data-dolly prep "" "" prepare_dolly &
stage data-dss prep "" "" prepare_dss &
wait
DATA=$PROCESSED/dolly/full/gpt2
COMMON=("${SHAPES[@]}" DATA_DIR="$DATA" EVAL_GEN_NUM="$EVAL_GEN_NUM" EVAL_INTERVAL="$TRAIN_STEPS" EXTRA_ARGS="$STEP_ARGS")

for config in $SFT_CONFIGS; do
  next "sft-xl-$config" train "$RUNS/sft-xl-$config" "$config" env "${COMMON[@]}" DS_CONFIG="$(ds "$config")" \
    MODEL_PATH="$MODELS/teacher" SAVE_PATH="$RUNS/sft-xl-$config" bash scripts/sft/sft_xlarge.sh .
done
for config in $KD_CONFIGS; do
  next "kd-$config" train "$RUNS/kd-$config" "$config" env "${COMMON[@]}" DS_CONFIG="$(ds "$config")" \
    MODEL_PATH="$MODELS/student" TEACHER_PATH="$MODELS/teacher" SAVE_PATH="$RUNS/kd-$config" bash scripts/kd/kd_base.sh .
done
next seqkd generate "$RUNS/seqkd" "$DTYPE" env "${SHAPES[@]}" TEACHER_PATH="$MODELS/teacher" DATA_DIR="$DOLLY" \
  SEQKD_DIR="$RUNS/seqkd" PROCESSED_DIR="$PROCESSED/seqkd/full" PROMPT_PROCESSED_DIR="$PROCESSED/seqkd/prompt" \
  DEV_NUM=$(( $(grep -c . "$DOLLY/raw.jsonl") - SEQKD_PROMPTS )) DTYPE="$DTYPE" bash scripts/tools/generate_data_seqkd.sh .
for config in $MINILLM_CONFIGS; do
  next "minillm-$config" train "$RUNS/minillm-$config" "$config" env "${SHAPES[@]}" "${MINILLM_SHAPES[@]}" \
    DS_CONFIG="$(ds "$config")" INIT_PATH="$MODELS/student" TEACHER_PATH="$MODELS/teacher" \
    PROMPT_DATA_DIR="$PROCESSED/dolly/prompt/gpt2" PTX_DATA_DIR="$PROCESSED/corpus/gpt2" TOTAL_STEPS="$MINILLM_STEPS" \
    WARMUP_STEPS=0 EVAL_INTERVAL="$MINILLM_STEPS" EVAL_GEN_NUM="$EVAL_GEN_NUM" EXTRA_ARGS="--log-interval 1" \
    SAVE_PATH="$RUNS/minillm-$config" bash scripts/minillm/train_base_xl.sh .
done
next dss-kd train "$RUNS/dss-kd" "$DSS_CONFIG" env "${COMMON[@]}" "${DSS_SHAPES[@]}" DS_CONFIG="$(ds "$DSS_CONFIG")" \
  MODEL_PATH="$MODELS/student" TEACHER_PATH="$MODELS/teacher" DATA_DIR="$PROCESSED/cqa-dss/full/label/gpt2" \
  RATIONALE_DATA_DIR="$PROCESSED/cqa-dss/full/rationale/gpt2" SAVE_PATH="$RUNS/dss-kd" bash scripts/dss/dss_kd_base.sh .
next eval eval "$RUNS/eval/student" "$DTYPE" env "${SHAPES[@]}" MODELS="student=$MODELS/student" \
  DATA_ROOT="$SHARED_DATA/minillm-data" SEEDS=10 SAVE_ROOT="$RUNS/eval" REPORT= DTYPE="$DTYPE" EXTRA_ARGS="--max-eval-rows $EVAL_ROWS" \
  bash scripts/eval/run_eval.sh .
wait

python benchmarks/gpu_check_report.py "$OUT_DIR" --mode "$MODE" ${GPU_PEAK_TFLOPS:+--peak-tflops "$GPU_PEAK_TFLOPS"}
