#!/usr/bin/env bash
# MiniLLM: GPT-2 base student distilled from the GPT-2 XL SFT teacher by reverse-KL policy
# gradient (ref §6), from the MiniLLM-init SFT run (scripts/sft/sft_base.sh). Every variable of
# scripts/lib/minillm.sh applies (PTX=0: no pretraining corpus).
# Usage: bash scripts/minillm/train_base_xl.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
INIT_PATH=${INIT_PATH:-$BASE_PATH/results/gpt2/train/init/gpt2-base}          # run folder: lowest valid loss
SAVE_PATH=${SAVE_PATH:-$BASE_PATH/results/gpt2/train/minillm/base-init-xlarge$([[ ${PTX:-1} == 1 ]] || echo -noptx)}
source "$BASE_PATH/scripts/lib/minillm.sh"
