# Preset "tiny": the embedded default (generated data, BPE tokenizer, random-init GPT-2s),
# sized for 2 CPU cores. Sourced by run_comparison.sh; each variable can be overridden.
RESULTS=${RESULTS:-$BASE_PATH/results/tiny}
RAW_DIR=${RAW_DIR:-$BASE_PATH/data/tiny}
PROCESSED=${PROCESSED:-$BASE_PATH/processed_data/tiny}
TOKENIZER=${TOKENIZER:-$BASE_PATH/checkpoints/tiny-tokenizer}
TEACHER_INIT=${TEACHER_INIT:-$BASE_PATH/checkpoints/tiny-teacher}
STUDENT_INIT=${STUDENT_INIT:-$BASE_PATH/checkpoints/tiny-student}
DEV_NUM=${DEV_NUM:-200}
TEACHER_LR=${TEACHER_LR:-2e-3} TEACHER_EPOCHS=${TEACHER_EPOCHS:-6}
STUDENT_LR=${STUDENT_LR:-2e-3} STUDENT_EPOCHS=${STUDENT_EPOCHS:-6}
EVAL_SEEDS=${EVAL_SEEDS:-"10 20 30"}
PTX_TEXT=${PTX_TEXT:-$RAW_DIR/pretrain.txt}  # MiniLLM's pretraining corpus, one document per line
# MiniLLM at this scale: 128 steps = 16 collections of 128 rollouts, 2 PPO epochs of mini-batches of 32.
MINILLM_LR=${MINILLM_LR:-5e-4} MINILLM_STEPS=${MINILLM_STEPS:-128} MINILLM_EVAL_INTERVAL=${MINILLM_EVAL_INTERVAL:-32}
NUM_ROLLOUTS=${NUM_ROLLOUTS:-128} MINI_BATCH=${MINI_BATCH:-32} PPO_EPOCHS=${PPO_EPOCHS:-2}
export KD_LOSS=${KD_LOSS:-forward_kl}  # the divergence of the KD student
# Shared by every training stage (read by scripts/lib/train_token.sh).
export DS_CONFIG=${DS_CONFIG:-$BASE_PATH/configs/deepspeed/zero1_fp32.json}
export MAX_LENGTH=${MAX_LENGTH:-128} MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-80}
export BATCH_SIZE=${BATCH_SIZE:-32} MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-32}
export EVAL_GEN_NUM=${EVAL_GEN_NUM:-100}
export WORKERS=${WORKERS:-1}  # tokenisation processes: one per core is plenty here
make_preset_inputs() {
  python tools/make_tiny_default.py --root "$BASE_PATH"
}
