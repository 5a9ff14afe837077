#!/usr/bin/env bash
# Teacher rationales for step-by-step distillation: a local causal LM writes a rationale and a
# label for every row of INPUT (rationale format, e.g. from tools/import_rationales.py), prompted
# with a template of prompts/rationales/ (see its README). Default: few-shot chain of thought;
# a two-task DSS teacher: TEMPLATE=prompts/rationales/dss_rationale.txt
# LABEL_TEMPLATE=prompts/rationales/dss_label.txt. Writes OUT, OUT's .stats.json and .meta.json.
# Usage: bash scripts/tools/generate_rationales.sh BASE_PATH [MASTER_PORT] [GPUS_PER_NODE]
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh" "$@"
TEACHER_PATH=${TEACHER_PATH:-$BASE_PATH/checkpoints/teacher}   # model folder, or run folder (best by Rouge-L)
INPUT=${INPUT:-$BASE_PATH/data/dss/train.jsonl}
OUT=${OUT:-$BASE_PATH/data/dss-teacher/train.jsonl}
TEMPLATE=${TEMPLATE:-$BASE_PATH/prompts/rationales/fewshot_cot.txt}
LABEL_TEMPLATE=${LABEL_TEMPLATE:-}       # set: the label comes from a second generation
DEV_NUM=${DEV_NUM:-0}                    # these first rows stay gold (validation)
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-768}   # few-shot prompts are long
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128}
SEED=${SEED:-10}
DTYPE=${DTYPE:-fp32}
BATCH_TOKENS=${BATCH_TOKENS:-65536}
LABEL_PASS=${LABEL_PASS:-all}            # no-rationale: rows with a rationale take the label it concludes (one pass)
COT_LABEL_FORMAT=${COT_LABEL_FORMAT:-"{label}"}  # how such a label is written, e.g. "The answer is {label}."
GEN_ARGS=${GEN_ARGS:-}                   # e.g. "--top-k 1" for greedy decoding

launch tools/generate_rationales.py --model-path "$TEACHER_PATH" --input "$INPUT" --out "$OUT" \
  --template "$TEMPLATE" ${LABEL_TEMPLATE:+--label-template "$LABEL_TEMPLATE"} --dev-num "$DEV_NUM" \
  --max-prompt-length "$MAX_PROMPT_LENGTH" --max-new-tokens "$MAX_NEW_TOKENS" --seed "$SEED" --dtype "$DTYPE" \
  --batch-tokens "$BATCH_TOKENS" --label-pass "$LABEL_PASS" --cot-label-format "$COT_LABEL_FORMAT" $GEN_ARGS
