# Launch a token-level training entrypoint (train_sft.py, or train_kd.py when a method script set
# ENTRYPOINT and METHOD_ARGS) from the variables the calling script set; the GPT-2 recipe of the
# MiniLLM paper (ref §3; minillm/recipes.py SFT) fills in everything the caller leaves unset.
: "${MODEL_PATH:?set MODEL_PATH}" "${SAVE_PATH:?set SAVE_PATH}"
ENTRYPOINT=${ENTRYPOINT:-train_sft.py}
DATA_DIR=${DATA_DIR:-$BASE_PATH/processed_data/dolly/full/gpt2}
DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_fp16.json}
LR=${LR:-$PAPER_SFT_LR}
EPOCHS=${EPOCHS:-$PAPER_SFT_EPOCHS}
BATCH_SIZE=${BATCH_SIZE:-$PAPER_SFT_BATCH_SIZE}             # GLOBAL: the same on any number of GPUs
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-$PAPER_SFT_MICRO_BATCH_SIZE} # per-GPU upper bound; accumulation covers the rest
MAX_LENGTH=${MAX_LENGTH:-$PAPER_SFT_MAX_LENGTH}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-$PAPER_SFT_MAX_PROMPT_LENGTH}
EVAL_GEN_NUM=${EVAL_GEN_NUM:-0}          # validation prompts for sampled Rouge-L; 0 = all
EVAL_INTERVAL=${EVAL_INTERVAL:-0}        # 0 = once per epoch
SEED=${SEED:-10}
EXTRA_ARGS=${EXTRA_ARGS:-}               # any other flags of the entrypoint, e.g. "--resume"
RATIONALE_DATA_DIR=${RATIONALE_DATA_DIR:-}  # step-by-step: the rationale task (DATA_DIR = the label task)
LABEL_WEIGHT=${LABEL_WEIGHT:-$PAPER_DSS_LABEL_WEIGHT}  # α: loss = α·L_label + (1 − α)·L_rationale
TOKEN_MATCHED_TO=${TOKEN_MATCHED_TO:-}   # step-by-step control: the label task for the tokens of both tasks
TRAIN_FRACTION=${TRAIN_FRACTION:-1}      # a fixed random fraction of the training questions
[[ -v METHOD_ARGS ]] || METHOD_ARGS=()
STREAM_ARGS=(--train-fraction "$TRAIN_FRACTION")
[[ -n $RATIONALE_DATA_DIR ]] && STREAM_ARGS+=(--rationale-data-dir "$RATIONALE_DATA_DIR" --label-weight "$LABEL_WEIGHT")
[[ -n $TOKEN_MATCHED_TO ]] && STREAM_ARGS+=(--token-matched-to "$TOKEN_MATCHED_TO")

# shellcheck disable=SC2086  # EXTRA_ARGS is a list of flags
launch "$ENTRYPOINT" \
  --model-path "$MODEL_PATH" --data-dir "$DATA_DIR" --save "$SAVE_PATH" \
  --deepspeed-config "$DS_CONFIG" --lr "$LR" --epochs "$EPOCHS" \
  --batch-size "$BATCH_SIZE" --micro-batch-size "$MICRO_BATCH_SIZE" \
  --max-length "$MAX_LENGTH" --max-prompt-length "$MAX_PROMPT_LENGTH" \
  --eval-gen-num "$EVAL_GEN_NUM" --eval-interval "$EVAL_INTERVAL" --seed "$SEED" \
  "${STREAM_ARGS[@]}" "${METHOD_ARGS[@]}" $EXTRA_ARGS
