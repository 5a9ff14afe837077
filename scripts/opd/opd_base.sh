#!/usr/bin/env bash
# On-policy distillation (train_minillm.py --recipe opd): the student samples alone, each sampled
# token's advantage is log p_teacher − log q_student (γ 0, no whitening, no clipping), one
# optimizer step per collection of MINI_BATCH rollouts. Starts from the SFT student (lowest
# validation loss), like MiniLLM; every other variable of scripts/lib/minillm.sh applies. No corpus by
# default (PTX=0, the method's own form: Tinker's has none); the driver sets PTX=1 to keep MiniLLM's
# corpus, so that SFT (continued) controls both. Tinker's groups and token-sum loss (the reference
# recipe, minillm/recipes.py OPD_REFERENCE): EXTRA_ARGS="--samples-per-prompt 4 --loss-reduction sum --clip-grad 0".
# Usage: bash scripts/opd/opd_base.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
INIT_PATH=${INIT_PATH:-$BASE_PATH/results/gpt2/train/init/gpt2-base}          # run folder: lowest valid loss
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/opd/base-init-xlarge}
MINI_BATCH=${MINI_BATCH:-$PAPER_MINILLM_BATCH_SIZE}
NUM_ROLLOUTS=${NUM_ROLLOUTS:-$MINI_BATCH}           # one optimizer step per collection (recipes.OPD)
PPO_EPOCHS=${PPO_EPOCHS:-$PAPER_OPD_PPO_EPOCHS}
TEACHER_MIX_ALPHA=${TEACHER_MIX_ALPHA:-$PAPER_OPD_TEACHER_MIX_ALPHA}
PTX=${PTX:-0}                                      # the method's own form: no corpus term
EXTRA_ARGS="--recipe opd ${EXTRA_ARGS:-}"
source "$BASE_PATH/scripts/lib/minillm.sh"
