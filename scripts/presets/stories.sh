# Preset "stories": a real pretrained teacher on CPU. llama2.c's stories260K (a Llama trained on
# TinyStories) is distilled into a smaller random-init Llama of the same vocabulary; each method
# gets the same init and the same budget (STEPS optimizer steps of BATCH_SIZE sequences):
#   seqkd          SFT on the teacher's sampled continuations (black box)
#   kd_forward_kl  word-level KD, (1 - KD_RATIO)·CE + KD_RATIO·KL(teacher ‖ student), same data
#   kd_reverse_kl  the same with the reverse KL(student ‖ teacher)
#   minillm        MiniLLM (reverse-KL policy gradient); like the paper it starts from an SFT'd
#                  student: the SeqKD run's checkpoint at STEPS/2, then STEPS/2 MiniLLM steps
# then measures each student's forward/reverse KL to the teacher on held-out teacher samples and
# Rouge-L against the teacher's continuations -> results/stories/comparison.{md,json}.
#   PRESET=stories bash scripts/run_comparison.sh [BASE_PATH] [--force]
# (needs ../shared/data/models/stories260K). Its own pipeline on the driver's stages (skip,
# resume, --force); METHODS and TRAIN_SEEDS do not apply. Every variable can be set from the environment.

# These models (40K-260K parameters) run much faster on one thread than on two (a KD step: 0.07 s
# vs 1.3 s on a busy 2-core machine); the thread count changes speed only. (common.sh has set
# OMP_NUM_THREADS already; STORIES_THREADS chooses.)
export OMP_NUM_THREADS=${STORIES_THREADS:-1}
WORK=${WORK:-$BASE_PATH}
LLAMA2C_DIR=${LLAMA2C_DIR:-$BASE_PATH/../shared/data/models/stories260K}
TEACHER=${TEACHER:-$WORK/checkpoints/stories260K}
STUDENT_INIT=${STUDENT_INIT:-$WORK/checkpoints/stories-student}
PROCESSED=${PROCESSED:-$WORK/processed_data/stories}
RESULTS=${RESULTS:-$WORK/results/stories}
# Student: 2 layers x 32 wide, 4 heads (2 KV heads), SwiGLU 86: 39K parameters (teacher: 260K).
STUDENT_SHAPE=${STUDENT_SHAPE:-"--layers 2 --dim 32 --heads 4 --kv-heads 2 --hidden-dim 86 --seed 0"}
# Data: the teacher samples PROMPT_TOKENS (the opening, after BOS) + CONTINUATION_TOKENS per story.
NUM_TRAIN=${NUM_TRAIN:-2048} NUM_VALID=${NUM_VALID:-64} NUM_TEST=${NUM_TEST:-256}
PROMPT_TOKENS=${PROMPT_TOKENS:-24} CONTINUATION_TOKENS=${CONTINUATION_TOKENS:-40}
STEPS=${STEPS:-800}
KD_RATIO=${KD_RATIO:-0.5}
MINILLM_LR=${MINILLM_LR:-1e-3}
EVAL_SEEDS=${EVAL_SEEDS:-"10 20 30"}
# Shared by every training stage (read by the stage scripts).
export DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_fp32.json}
export MAX_PROMPT_LENGTH=$((PROMPT_TOKENS + 1)) MAX_LENGTH=$((PROMPT_TOKENS + 1 + CONTINUATION_TOKENS))
export LR=${LR:-3e-3} BATCH_SIZE=${BATCH_SIZE:-32} MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-32}
export EVAL_INTERVAL=$((STEPS / 2)) EVAL_GEN_NUM=-1  # checkpoints at STEPS/2 (MiniLLM's init) and STEPS

preset_pipeline() {
  if [[ ! -f $LLAMA2C_DIR/stories260K.bin ]]; then
    echo "error: $LLAMA2C_DIR/stories260K.bin not found: this preset needs llama2.c's stories260K" \
      "(../shared/data/models/, see its README); point LLAMA2C_DIR at a copy" >&2
    exit 1
  fi
  local knob
  for knob in MAX_TRAIN_ROWS MAX_EVAL_ROWS TEACHER_CACHE_TOP_K; do  # the instruction pipeline's knobs
    [[ -z ${!knob} ]] || { echo "error: $knob does not apply to the stories preset; unset it" >&2; exit 1; }
  done
  echo "preset stories: results in $RESULTS; every student $STEPS steps of $BATCH_SIZE sequences from one init"
  local token_run=(env "EXTRA_ARGS=--total-steps $STEPS --resume" MODEL_PATH="$STUDENT_INIT" DATA_DIR="$PROCESSED/full"
    LR="$LR")
  # The teacher, the student init and the data depend on none of the training knobs in STAGE_ENV.
  STAGE_ENV= stage teacher "$LLAMA2C_DIR" "$TEACHER" python tools/convert_llama2c.py \
    --checkpoint "$LLAMA2C_DIR/stories260K.bin" --tokenizer "$LLAMA2C_DIR/tok512.bin" --out "$TEACHER"
  # shellcheck disable=SC2086  # STUDENT_SHAPE is a list of flags
  STAGE_ENV= stage student-init "$TEACHER" "$STUDENT_INIT" python tools/make_llama_student.py --teacher "$TEACHER" \
    --out "$STUDENT_INIT" $STUDENT_SHAPE
  STAGE_ENV= stage data "$TEACHER" "$PROCESSED" python tools/make_stories_data.py --teacher "$TEACHER" --out "$PROCESSED" \
    --num-train "$NUM_TRAIN" --num-valid "$NUM_VALID" --num-test "$NUM_TEST" --prompt-tokens "$PROMPT_TOKENS" \
    --continuation-tokens "$CONTINUATION_TOKENS"
  stage seqkd "$PROCESSED $STUDENT_INIT" "$RESULTS/seqkd" "${token_run[@]}" SAVE_PATH="$RESULTS/seqkd" KD_RATIO=0 \
    bash scripts/seqkd/seqkd_base.sh "$BASE_PATH"
  local loss
  for loss in forward_kl reverse_kl; do
    stage "kd_$loss" "$PROCESSED $STUDENT_INIT $TEACHER" "$RESULTS/kd_$loss" "${token_run[@]}" \
      SAVE_PATH="$RESULTS/kd_$loss" TEACHER_PATH="$TEACHER" KD_LOSS="$loss" KD_RATIO="$KD_RATIO" \
      bash scripts/kd/kd_base.sh "$BASE_PATH"
  done
  # One collection = 128 rollouts, 2 PPO epochs of mini-batches of BATCH_SIZE: 8 steps.
  stage minillm "$RESULTS/seqkd $TEACHER $PROCESSED" "$RESULTS/minillm" env EXTRA_ARGS=--resume \
    INIT_PATH="$RESULTS/seqkd/$((STEPS / 2))" TEACHER_PATH="$TEACHER" PROMPT_DATA_DIR="$PROCESSED/prompt" PTX=0 \
    SAVE_PATH="$RESULTS/minillm" LR="$MINILLM_LR" WARMUP_STEPS=0 TOTAL_STEPS=$((STEPS / 2)) NUM_ROLLOUTS=128 \
    MINI_BATCH="$BATCH_SIZE" PPO_EPOCHS=2 ROLLOUT_BATCH_SIZE=128 EVAL_GEN_NUM="$NUM_VALID" \
    bash scripts/minillm/train_base_xl.sh "$BASE_PATH"
  local runs=(seqkd kd_forward_kl kd_reverse_kl minillm) models=("init=$STUDENT_INIT") run
  for run in "${runs[@]}"; do models+=("$run=$RESULTS/$run"); done
  # shellcheck disable=SC2086  # EVAL_SEEDS is a list
  stage compare "$TEACHER $PROCESSED $STUDENT_INIT ${runs[*]/#/$RESULTS/}" "$RESULTS/comparison.md $RESULTS/comparison.json" \
    python tools/compare_to_teacher.py --teacher "$TEACHER" --data-dir "$PROCESSED/full" --split test \
    --models "${models[@]}" --seeds $EVAL_SEEDS --max-new-tokens "$CONTINUATION_TOKENS" --out "$RESULTS" \
    --note "Teacher: llama2.c stories260K; students from one random init, $STEPS steps of $BATCH_SIZE sequences each;" \
    --note "minillm starts from the seqkd run at step $((STEPS / 2)); its $((STEPS / 2)) steps complete the budget." \
    --note "seqkd = SFT on the teacher's samples; kd_* = (1 - $KD_RATIO)·CE + $KD_RATIO·KL on the same samples."
  echo
  echo "=== [$((SECONDS / 60))m$((SECONDS % 60))s] done; table in $RESULTS/comparison.md"
  if [[ -f $RESULTS/comparison.md ]]; then cat "$RESULTS/comparison.md"; fi  # also when every stage was skipped
}
