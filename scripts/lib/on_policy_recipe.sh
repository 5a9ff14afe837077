# The on-policy runs' recipe for train_kd.py (sourced after the method set its METHOD_ARGS, the
# teacher among them, before scripts/lib/train_token.sh): continue INIT_PATH's student (its
# checkpoint with the lowest validation loss, as scripts/minillm/train_base_xl.sh picks it) with
# MiniLLM's optimizer steps, global batch, learning rate, schedule, Adam settings, dropout and
# pretraining term, the same chunks with the same loss (1 − r)·CE + r·KD to the teacher, r =
# PTX_KD_RATIO (MiniLLM's KD_RATIO 0.5). Used by the control arms (scripts/sft/sft_continued.sh),
# GKD and DistiLLM, so that they and MiniLLM differ only in what they do on the task prompts.
INIT_PATH=${INIT_PATH:-$BASE_PATH/results/gpt2/train/init/gpt2-base}   # run folder: lowest valid loss
MODEL_PATH=$(python -m minillm.checkpoint resolve "$INIT_PATH" --by valid_loss)
# MiniLLM's recipe (minillm/args.py add_minillm_args) unless the caller matches another run.
LR=${LR:-5e-6}
WARMUP_STEPS=${WARMUP_STEPS:-100}
TOTAL_STEPS=${TOTAL_STEPS:-5000}
BATCH_SIZE=${BATCH_SIZE:-64}
PTX=${PTX:-1}                                      # as scripts/minillm/train_base_xl.sh
PTX_DATA_DIR=${PTX_DATA_DIR:-$BASE_PATH/processed_data/openwebtext/gpt2}
[[ -v METHOD_ARGS ]] || METHOD_ARGS=()
METHOD_ARGS+=(--total-steps "$TOTAL_STEPS" --lr-scheduler constant --warmup-steps "$WARMUP_STEPS"
  --adam-betas 0.9 0.95 --weight-decay 1e-6 --dropout 0)
PTX_KD_RATIO=${PTX_KD_RATIO:-0.5}
# (an if, not "&&": as a sourced file's last command a false test would fail the caller under set -e)
if [[ $PTX == 1 ]]; then METHOD_ARGS+=(--ptx-data-dir "$PTX_DATA_DIR" --ptx-kd-ratio "$PTX_KD_RATIO"); fi
