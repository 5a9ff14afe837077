#!/usr/bin/env bash
# MiniLLM: GPT-2 base student distilled from the GPT-2 XL SFT teacher by reverse-KL policy
# gradient (ref §6). Student = the MiniLLM-init SFT run's checkpoint with the lowest validation
# loss; teacher = the teacher SFT run's best by Rouge-L (both read from their best.json).
# PTX=0 runs the no-pretraining-corpus variant; the other ablations go in EXTRA_ARGS
# (--no-length-norm, --no-single-step-reg, --teacher-mix-alpha 0).
# Usage: bash scripts/minillm/train_base_xl.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
INIT_PATH=${INIT_PATH:-$BASE_PATH/results/gpt2/train/init/gpt2-base}          # run folder: lowest valid loss
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge}   # run folder: best Rouge-L
PROMPT_DATA_DIR=${PROMPT_DATA_DIR:-$BASE_PATH/processed_data/dolly/prompt/gpt2}
RATIONALE_DATA_DIR=${RATIONALE_DATA_DIR:-}         # DSS-MiniLLM: rationale-task prompts (PROMPT_DATA_DIR = label task)
LABEL_WEIGHT=${LABEL_WEIGHT:-0.5}                  # α of the label task's rollouts
PTX=${PTX:-1}                                      # 1 = pretraining loss on PTX_DATA_DIR, 0 = none
PTX_DATA_DIR=${PTX_DATA_DIR:-$BASE_PATH/processed_data/openwebtext/gpt2}
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/minillm/base-init-xlarge$([[ $PTX == 1 ]] || echo -noptx)}
DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_fp16.json}
LR=${LR:-5e-6}                        # constant after WARMUP_STEPS
WARMUP_STEPS=${WARMUP_STEPS:-100}
TOTAL_STEPS=${TOTAL_STEPS:-5000}
NUM_ROLLOUTS=${NUM_ROLLOUTS:-256}     # GLOBAL, per collection
MINI_BATCH=${MINI_BATCH:-64}          # GLOBAL rollouts per optimizer step
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-8}
PPO_EPOCHS=${PPO_EPOCHS:-4}
ROLLOUT_BATCH_SIZE=${ROLLOUT_BATCH_SIZE:-32}  # per-GPU sampling batch
TEACHER_MIX_ALPHA=${TEACHER_MIX_ALPHA:-0.2}
KD_RATIO=${KD_RATIO:-0.5}             # inside the pretraining loss: (1 - r)·CE + r·KD
MAX_LENGTH=${MAX_LENGTH:-512}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-256}
EVAL_INTERVAL=${EVAL_INTERVAL:-100}
EVAL_GEN_NUM=${EVAL_GEN_NUM:-1000}
SEED=${SEED:-10}
EXTRA_ARGS=${EXTRA_ARGS:-}

DATA_ARGS=()
[[ $PTX == 1 ]] && DATA_ARGS=(--ptx-data-dir "$PTX_DATA_DIR")
[[ -n $RATIONALE_DATA_DIR ]] && DATA_ARGS+=(--rationale-data-dir "$RATIONALE_DATA_DIR" --label-weight "$LABEL_WEIGHT")
# shellcheck disable=SC2086  # EXTRA_ARGS is a list of flags
launch train_minillm.py \
  --model-path "$(python -m minillm.checkpoint resolve "$INIT_PATH" --by valid_loss)" \
  --teacher-model-path "$TEACHER_PATH" --data-dir "$PROMPT_DATA_DIR" "${DATA_ARGS[@]}" --save "$SAVE_PATH" \
  --deepspeed-config "$DS_CONFIG" --lr "$LR" --warmup-steps "$WARMUP_STEPS" --total-steps "$TOTAL_STEPS" --num-rollouts "$NUM_ROLLOUTS" \
  --batch-size "$MINI_BATCH" --micro-batch-size "$MICRO_BATCH_SIZE" --ppo-epochs "$PPO_EPOCHS" \
  --rollout-batch-size "$ROLLOUT_BATCH_SIZE" --teacher-mix-alpha "$TEACHER_MIX_ALPHA" --kd-ratio "$KD_RATIO" \
  --max-length "$MAX_LENGTH" --max-prompt-length "$MAX_PROMPT_LENGTH" --eval-interval "$EVAL_INTERVAL" \
  --eval-gen-num "$EVAL_GEN_NUM" --seed "$SEED" $EXTRA_ARGS
