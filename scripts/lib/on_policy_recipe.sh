# The on-policy runs' recipe for train_kd.py (sourced after the method set its METHOD_ARGS, the
# teacher among them, before scripts/lib/train_token.sh): continue INIT_PATH's student (its
# checkpoint with the lowest validation loss, as scripts/lib/minillm.sh picks it) with
# MiniLLM's optimizer steps, global batch, learning rate, schedule, Adam settings, dropout and
# pretraining term, the same chunks with the same loss (1 − r)·CE + r·KD to the teacher, r =
# PTX_KD_RATIO (MiniLLM's 0.5). Used by the control arms (scripts/sft/sft_continued.sh),
# GKD and DistiLLM, so that they and MiniLLM differ only in what they do on the task prompts.
INIT_PATH=${INIT_PATH:-$BASE_PATH/results/gpt2/train/init/gpt2-base}   # run folder: lowest valid loss
MODEL_PATH=$(python -m minillm.train.checkpoint resolve "$INIT_PATH" --by valid_loss)
# MiniLLM's recipe (minillm/recipes.py MINILLM) unless the caller matches another run.
LR=${LR:-$PAPER_MINILLM_LR}
WARMUP_STEPS=${WARMUP_STEPS:-$PAPER_MINILLM_WARMUP_STEPS}
TOTAL_STEPS=${TOTAL_STEPS:-$PAPER_MINILLM_TOTAL_STEPS}
BATCH_SIZE=${BATCH_SIZE:-$PAPER_MINILLM_BATCH_SIZE}
PTX=${PTX:-1}                                      # as scripts/lib/minillm.sh
PTX_DATA_DIR=${PTX_DATA_DIR:-$BASE_PATH/processed_data/openwebtext/gpt2}
[[ -v METHOD_ARGS ]] || METHOD_ARGS=()
# shellcheck disable=SC2206  # the betas are two words
METHOD_ARGS+=(--total-steps "$TOTAL_STEPS" --lr-scheduler "$PAPER_MINILLM_LR_SCHEDULER" --warmup-steps "$WARMUP_STEPS"
  --adam-betas $PAPER_MINILLM_ADAM_BETAS --weight-decay "$PAPER_MINILLM_WEIGHT_DECAY" --dropout "$PAPER_MINILLM_DROPOUT")
PTX_KD_RATIO=${PTX_KD_RATIO:-$PAPER_MINILLM_PTX_KD_RATIO}
# (an if, not "&&": as a sourced file's last command a false test would fail the caller under set -e)
if [[ $PTX == 1 ]]; then METHOD_ARGS+=(--ptx-data-dir "$PTX_DATA_DIR" --ptx-kd-ratio "$PTX_KD_RATIO"); fi
