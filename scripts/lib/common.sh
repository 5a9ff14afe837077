# Shared launch logic, sourced by every stage script as:  source .../lib/common.sh "$@"
# Positional arguments (MiniLLM's convention): BASE_PATH [MASTER_PORT] [GPUS_PER_NODE].
# Multi-node: set HOSTFILE (a DeepSpeed hostfile) and NNODES; MASTER_ADDR if not the first host.
set -euo pipefail

BASE_PATH=$(cd "${1:-.}" && pwd)
MASTER_PORT=${2:-${MASTER_PORT:-$((20000 + RANDOM % 20000))}}
GPUS_PER_NODE=${3:-${GPUS_PER_NODE:-1}}
NNODES=${NNODES:-1}
HOSTFILE=${HOSTFILE:-}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$BASE_PATH${PYTHONPATH:+:$PYTHONPATH}"
cd "$BASE_PATH"
# The paper's recipes (minillm/recipes.py), the stage scripts' fallbacks: PAPER_SFT_LR, PAPER_MINILLM_LR, ...
# (a failed substitution inside eval would not stop the script: checked on its own)
paper_recipes=$(python -m minillm.recipes) || { echo "error: cannot read the recipes (python -m minillm.recipes in" \
  "$BASE_PATH failed, see above): is BASE_PATH the repository and its environment active?" >&2; exit 1; }
eval "$paper_recipes"

# On CPU, ranks share the cores; oversubscribed threads are much slower than one per core. (The
# CUDA probe imports torch, ~1 s: skipped when the caller, e.g. the driver, already chose.)
if [[ -z ${OMP_NUM_THREADS:-} ]] && ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  export OMP_NUM_THREADS=$(( $(nproc) / GPUS_PER_NODE > 0 ? $(nproc) / GPUS_PER_NODE : 1 ))
fi

# launch ENTRYPOINT.py ARGS...: one process directly, several through the DeepSpeed launcher.
launch() {
  if [[ -n "$HOSTFILE" ]]; then
    deepspeed --hostfile "$HOSTFILE" --num_nodes "$NNODES" --num_gpus "$GPUS_PER_NODE" \
      --master_port "$MASTER_PORT" ${MASTER_ADDR:+--master_addr "$MASTER_ADDR"} "$@"
  elif (( GPUS_PER_NODE > 1 )); then
    deepspeed --num_gpus "$GPUS_PER_NODE" --master_port "$MASTER_PORT" "$@"
  else
    python "$@"
  fi
}
