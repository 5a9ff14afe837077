# Launch train_minillm.py (MiniLLM, DSS-MiniLLM, on-policy distillation) from the variables the
# calling script set; MiniLLM's recipe (minillm/recipes.py MINILLM, ref §6) fills in the rest.
# Student = INIT_PATH's checkpoint with the lowest validation loss; teacher = TEACHER_PATH's best by
# Rouge-L (both read from their best.json). PTX=0 runs the no-pretraining-corpus variant; the other
# ablations go in EXTRA_ARGS (--no-length-norm, --no-single-step-reg, --teacher-mix-alpha 0).
: "${INIT_PATH:?set INIT_PATH}" "${SAVE_PATH:?set SAVE_PATH}"
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}   # run folder: best Rouge-L
PROMPT_DATA_DIR=${PROMPT_DATA_DIR:-$BASE_PATH/processed_data/dolly/prompt/gpt2}
RATIONALE_DATA_DIR=${RATIONALE_DATA_DIR:-}         # DSS-MiniLLM: rationale-task prompts (PROMPT_DATA_DIR = label task)
LABEL_WEIGHT=${LABEL_WEIGHT:-$PAPER_DSS_LABEL_WEIGHT}  # α of the label task's rollouts
PTX=${PTX:-1}                                      # 1 = pretraining loss on PTX_DATA_DIR, 0 = none
PTX_DATA_DIR=${PTX_DATA_DIR:-$BASE_PATH/processed_data/openwebtext/gpt2}
DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_fp16.json}
LR=${LR:-$PAPER_MINILLM_LR}                        # constant after WARMUP_STEPS
WARMUP_STEPS=${WARMUP_STEPS:-$PAPER_MINILLM_WARMUP_STEPS}
TOTAL_STEPS=${TOTAL_STEPS:-$PAPER_MINILLM_TOTAL_STEPS}
NUM_ROLLOUTS=${NUM_ROLLOUTS:-$PAPER_MINILLM_NUM_ROLLOUTS}  # GLOBAL, per collection
MINI_BATCH=${MINI_BATCH:-$PAPER_MINILLM_BATCH_SIZE}        # GLOBAL rollouts per optimizer step
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-$PAPER_MINILLM_MICRO_BATCH_SIZE}
PPO_EPOCHS=${PPO_EPOCHS:-$PAPER_MINILLM_PPO_EPOCHS}
ROLLOUT_BATCH_SIZE=${ROLLOUT_BATCH_SIZE:-$PAPER_MINILLM_ROLLOUT_BATCH_SIZE}  # per-GPU sampling batch
TEACHER_MIX_ALPHA=${TEACHER_MIX_ALPHA:-$PAPER_MINILLM_TEACHER_MIX_ALPHA}
PTX_KD_RATIO=${PTX_KD_RATIO:-$PAPER_MINILLM_PTX_KD_RATIO}  # the pretraining loss: (1 - r)·CE + r·KD
MAX_LENGTH=${MAX_LENGTH:-$PAPER_SFT_MAX_LENGTH}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-$PAPER_SFT_MAX_PROMPT_LENGTH}
EVAL_INTERVAL=${EVAL_INTERVAL:-$PAPER_MINILLM_EVAL_INTERVAL}
EVAL_GEN_NUM=${EVAL_GEN_NUM:-1000}
SEED=${SEED:-10}
TRAIN_FRACTION=${TRAIN_FRACTION:-1}                # the same fixed fraction of the training prompts
EXTRA_ARGS=${EXTRA_ARGS:-}

DATA_ARGS=()
[[ $PTX == 1 ]] && DATA_ARGS=(--ptx-data-dir "$PTX_DATA_DIR")
[[ -n $RATIONALE_DATA_DIR ]] && DATA_ARGS+=(--rationale-data-dir "$RATIONALE_DATA_DIR" --label-weight "$LABEL_WEIGHT")
# shellcheck disable=SC2086  # EXTRA_ARGS is a list of flags
launch train_minillm.py \
  --model-path "$(python -m minillm.train.checkpoint resolve "$INIT_PATH" --by valid_loss)" \
  --teacher-model-path "$TEACHER_PATH" --data-dir "$PROMPT_DATA_DIR" "${DATA_ARGS[@]}" --save "$SAVE_PATH" \
  --deepspeed-config "$DS_CONFIG" --lr "$LR" --warmup-steps "$WARMUP_STEPS" --total-steps "$TOTAL_STEPS" --num-rollouts "$NUM_ROLLOUTS" \
  --batch-size "$MINI_BATCH" --micro-batch-size "$MICRO_BATCH_SIZE" --ppo-epochs "$PPO_EPOCHS" \
  --rollout-batch-size "$ROLLOUT_BATCH_SIZE" --teacher-mix-alpha "$TEACHER_MIX_ALPHA" --ptx-kd-ratio "$PTX_KD_RATIO" \
  --max-length "$MAX_LENGTH" --max-prompt-length "$MAX_PROMPT_LENGTH" --eval-interval "$EVAL_INTERVAL" \
  --eval-gen-num "$EVAL_GEN_NUM" --seed "$SEED" --train-fraction "$TRAIN_FRACTION" $EXTRA_ARGS
