#!/usr/bin/env bash
# Evaluate models on MiniLLM's eval sets (sampled generation + Rouge-L, seeds 10..50; rows with an
# answer also greedy accuracy, strict and flexible), then print one table per metric (mean ± std
# over seeds per set and model; greedy accuracy is one value).
# Usage: bash scripts/eval/run_eval.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
# name=path pairs (a name may hold a slash: "sft/seed10" saves to SAVE_ROOT/sft/seed10); a training
# run folder means its best checkpoint by PICK_BY.
MODELS=${MODELS:-"teacher=$BASE_PATH/results/gpt2/train/sft/gpt2-xlarge sft=$BASE_PATH/results/gpt2/train/sft/gpt2-base"}
PICK_BY=${PICK_BY:-rougeL}
DATA_ROOT=${DATA_ROOT:-$BASE_PATH/data}  # MiniLLM's layout: dolly/ self-inst/ vicuna/ sinst/11_/ uinst/11_/
EVAL_SETS=${EVAL_SETS:-}                 # empty = whichever of the five exist under DATA_ROOT
SEEDS=${SEEDS:-"10 20 30 40 50"}
SAVE_ROOT=${SAVE_ROOT:-$BASE_PATH/results/gpt2/eval}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-256}
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-256}
DTYPE=${DTYPE:-fp32}
ACCURACY_DECODING=${ACCURACY_DECODING:-greedy}  # or "sampled": accuracy from every seed's samples
EXTRA_ARGS=${EXTRA_ARGS:-}               # e.g. "--no-repeat-ngram-size 6" for the reference's final setting
REPORT=${REPORT-$SAVE_ROOT/results.md}   # the table of these models; empty = none

summaries=()
for entry in $MODELS; do
  name=${entry%%=*}
  echo "== evaluating $name"
  # shellcheck disable=SC2086
  launch evaluate.py --model-path "${entry#*=}" --pick "$PICK_BY" --name "$name" --data-root "$DATA_ROOT" \
    ${EVAL_SETS:+--eval-sets $EVAL_SETS} --seeds $SEEDS --save "$SAVE_ROOT/$name" \
    --max-new-tokens "$MAX_NEW_TOKENS" --max-prompt-length "$MAX_PROMPT_LENGTH" --dtype "$DTYPE" \
    --accuracy-decoding "$ACCURACY_DECODING" $EXTRA_ARGS
  summaries+=("$SAVE_ROOT/$name")
done
[[ -z $REPORT ]] || python tools/report.py "${summaries[@]}" --out "$REPORT"
