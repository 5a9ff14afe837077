#!/usr/bin/env bash
# Distilling across tokenizers on a real teacher (docs/cross-tokenizer.md): llama2.c's stories260K
# (SentencePiece BPE, 512 tokens) into a random-init Llama with a byte-level BPE of 512 tokens
# trained on the teacher's text, against the same-tokenizer students of the stories preset.
#
#   bash scripts/xtok/run_cross_tokenizer.sh [WORK]        (WORK defaults to the repository root)
#
# Every step is skipped when its output exists (a run folder with final.json, a data folder), so
# a rerun continues; delete a folder under $RESULTS to redo it. Steps (all read the teacher):
#   1 teacher      tools/convert_llama2c.py        -> checkpoints/stories260K (as the stories preset)
#   2 data         tools/make_stories_data.py      -> processed_data/stories: the teacher's samples
#                  (openings = prompts, continuations = responses), in the teacher's tokenizer
#   3 tokenizer    tools/make_student_tokenizer.py -> checkpoints/stories-bpe512: byte-level BPE on 2's train text
#   4 retokenize   tools/retokenize_data.py        -> processed_data/stories-bpe512: 2's texts, student ids
#   5 inits        tools/make_llama_student.py     -> checkpoints/stories-student (teacher's tokenizer)
#                                                     and checkpoints/stories-student-bpe512 (same shape, BPE)
#   6 train        train_sft.py / train_kd.py / train_minillm.py -> results/xtok/<arm>_s<seed>, ARMS x SEEDS
#   7 compare      tools/compare_to_teacher.py --tokenizer-free -> results/xtok/comparison_tokenizer_free.{md,json}
#   8 paired       scripts/xtok/paired_table.py    -> results/xtok/paired.md (paired CIs over training seeds)
# The training text of every arm is the teacher's own samples (2): ../shared/data holds the model,
# not TinyStories, so SFT on the preset's text IS sequence-level KD; one arm stands for both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$PWD
WORK=$(realpath -m "${1:-$REPO}")
export PYTHONPATH=$REPO HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
# Models this small run several times faster on one thread; JOBS runs go side by side.
export OMP_NUM_THREADS=${XTOK_THREADS:-1}
JOBS=${JOBS:-2}
LLAMA2C_DIR=${LLAMA2C_DIR:-$REPO/../shared/data/models/stories260K}
TEACHER=${TEACHER:-$WORK/checkpoints/stories260K}
PROCESSED=${PROCESSED:-$WORK/processed_data/stories}
STUDENT_TOKENIZER=${STUDENT_TOKENIZER:-$WORK/checkpoints/stories-bpe512}
STUDENT_VOCAB=${STUDENT_VOCAB:-512}
XT_PROCESSED=${XT_PROCESSED:-$WORK/processed_data/stories-bpe512}
SAME_INIT=${SAME_INIT:-$WORK/checkpoints/stories-student}
XT_INIT=${XT_INIT:-$WORK/checkpoints/stories-student-bpe512}
RESULTS=${RESULTS:-$WORK/results/xtok}
STUDENT_SHAPE=${STUDENT_SHAPE:-"--layers 2 --dim 32 --heads 4 --kv-heads 2 --hidden-dim 86 --seed 0"}
NUM_TRAIN=${NUM_TRAIN:-2048} NUM_VALID=${NUM_VALID:-64} NUM_TEST=${NUM_TEST:-256}
PROMPT_TOKENS=${PROMPT_TOKENS:-24} CONTINUATION_TOKENS=${CONTINUATION_TOKENS:-40}
STEPS=${STEPS:-400}            # optimizer steps of BATCH_SIZE sequences per student
BATCH_SIZE=${BATCH_SIZE:-32}
LR=${LR:-3e-3}                 # off-policy arms (cosine), as the stories preset
ON_POLICY_LR=${ON_POLICY_LR:-1e-3}  # on-policy arms (constant), as the stories preset's MiniLLM
KD_RATIO=${KD_RATIO:-0.5}      # (1 - r)·CE + r·D for the off-policy distillation arms
SEEDS=${SEEDS:-"1 2 3"}        # training seeds (data order; the init is shared)
EVAL_SEEDS=${EVAL_SEEDS:-"10 20"}
# Arms (see docs/cross-tokenizer.md). same_*: the teacher's tokenizer (references); xt_*: the BPE student.
ARMS=${ARMS:-"same_seqkd same_kd same_minillm xt_seqkd xt_uld xt_aligned xt_uld_onpolicy xt_aligned_onpolicy"}
BASELINE=${BASELINE:-xt_seqkd}

mkdir -p "$RESULTS/logs"
started=$SECONDS
note() { echo "=== [$(( (SECONDS - started) / 60 ))m$(( (SECONDS - started) % 60 ))s] $*"; }
if [[ ! -f $LLAMA2C_DIR/stories260K.bin ]]; then
  echo "error: $LLAMA2C_DIR/stories260K.bin not found: this experiment needs llama2.c's stories260K" \
    "(../shared/data/models/); point LLAMA2C_DIR at a copy" >&2
  exit 1
fi

# -- 1-5: teacher, data, student tokenizer, re-tokenized data, inits ------------------------------
[[ -f $TEACHER/config.json ]] || python tools/convert_llama2c.py --checkpoint "$LLAMA2C_DIR/stories260K.bin" \
  --tokenizer "$LLAMA2C_DIR/tok512.bin" --out "$TEACHER"
[[ -f $PROCESSED/stories.json ]] || python tools/make_stories_data.py --teacher "$TEACHER" --out "$PROCESSED" \
  --num-train "$NUM_TRAIN" --num-valid "$NUM_VALID" --num-test "$NUM_TEST" --prompt-tokens "$PROMPT_TOKENS" \
  --continuation-tokens "$CONTINUATION_TOKENS"
[[ -f $STUDENT_TOKENIZER/tokenizer.json ]] || python tools/make_student_tokenizer.py --data-dir "$PROCESSED/full" \
  --data-tokenizer "$TEACHER" --vocab-size "$STUDENT_VOCAB" --out "$STUDENT_TOKENIZER"
[[ -f $XT_PROCESSED/retokenized.json ]] || python tools/retokenize_data.py --data-dir "$PROCESSED" \
  --data-tokenizer "$TEACHER" --tokenizer "$STUDENT_TOKENIZER" --out "$XT_PROCESSED"
# shellcheck disable=SC2086  # STUDENT_SHAPE is a list of flags
[[ -f $SAME_INIT/config.json ]] || python tools/make_llama_student.py --teacher "$TEACHER" --out "$SAME_INIT" $STUDENT_SHAPE
# shellcheck disable=SC2086
[[ -f $XT_INIT/config.json ]] || python tools/make_llama_student.py --teacher "$TEACHER" --out "$XT_INIT" \
  --tokenizer "$STUDENT_TOKENIZER" $STUDENT_SHAPE
note "inputs ready"

# Lengths in each tokenizer: the teacher's are fixed by the data; the student's read from step 4.
SAME_PROMPT=$((PROMPT_TOKENS + 1)) SAME_LENGTH=$((PROMPT_TOKENS + 1 + CONTINUATION_TOKENS))
# The student's continuations (on-policy arms) are sampled to about the teacher's length in characters.
read -r XT_PROMPT XT_LENGTH XT_NEW_TOKENS < <(python -c "import json, math, sys
folders = json.load(open(sys.argv[1]))['folders']
splits = [c for f in folders.values() for c in f.values()]
print(max(c['longest_prompt'] for c in splits), max(c['longest_item'] for c in splits),
      math.ceil(folders['full']['train']['mean_response_tokens']))" "$XT_PROCESSED/retokenized.json")

common=(--batch-size "$BATCH_SIZE" --micro-batch-size "$BATCH_SIZE" --deepspeed-config configs/deepspeed/zero1_fp32.json
        --eval-interval $((STEPS / 2)) --eval-gen-num -1 --log-interval 50 --resume)
same=(--max-prompt-length "$SAME_PROMPT" --max-length "$SAME_LENGTH")
xt=(--max-prompt-length "$XT_PROMPT" --max-length "$XT_LENGTH" --max-new-tokens "$XT_NEW_TOKENS")
off=(--lr "$LR" --total-steps "$STEPS")
# On-policy arms start, like the stories preset's MiniLLM, from their tokenizer's SeqKD run at
# STEPS/2 and take STEPS/2 steps: the same budget. GKD's λ = 1: every step on the student's samples.
on=(--lr "$ON_POLICY_LR" --lr-scheduler constant --total-steps $((STEPS / 2)) --gkd-lambda 1 --kd-ratio 1)

arm_command() {  # ARM SEED -> the command line of that run
  local arm=$1 seed=$2 save="$RESULTS/$1_s$2"
  local sft=(python train_sft.py --save "$save" --seed "$seed" "${common[@]}" "${off[@]}")
  local kd=(python train_kd.py --save "$save" --seed "$seed" "${common[@]}" --teacher-model-path "$TEACHER")
  local distance=${arm#xt_}
  distance=${distance%_onpolicy}
  case $arm in
    same_seqkd) echo "${sft[*]} ${same[*]} --model-path $SAME_INIT --data-dir $PROCESSED/full" ;;
    same_kd) echo "${kd[*]} ${same[*]} ${off[*]} --model-path $SAME_INIT --data-dir $PROCESSED/full --kd-ratio $KD_RATIO" ;;
    same_minillm) echo "python train_minillm.py --save $save --seed $seed --deepspeed-config configs/deepspeed/zero1_fp32.json \
      --model-path $RESULTS/same_seqkd_s$seed/$((STEPS / 2)) --teacher-model-path $TEACHER --data-dir $PROCESSED/prompt \
      --max-prompt-length $SAME_PROMPT --max-length $SAME_LENGTH --lr $ON_POLICY_LR --warmup-steps 0 \
      --total-steps $((STEPS / 2)) --num-rollouts 128 --batch-size $BATCH_SIZE --micro-batch-size $BATCH_SIZE \
      --ppo-epochs 2 --rollout-batch-size 128 --eval-interval $((STEPS / 2)) --eval-gen-num -1 --log-interval 50 --resume" ;;
    xt_seqkd) echo "${sft[*]} ${xt[*]} --model-path $XT_INIT --data-dir $XT_PROCESSED/full" ;;
    xt_uld|xt_aligned) echo "${kd[*]} ${xt[*]} ${off[*]} --model-path $XT_INIT --data-dir $XT_PROCESSED/full \
      --kd-ratio $KD_RATIO --cross-tokenizer $distance" ;;
    xt_uld_onpolicy|xt_aligned_onpolicy) echo "${kd[*]} ${xt[*]} ${on[*]} --model-path $RESULTS/xt_seqkd_s$seed/$((STEPS / 2)) \
      --data-dir $XT_PROCESSED/full --cross-tokenizer $distance" ;;
    *) echo "error: unknown arm $arm" >&2; return 1 ;;
  esac
}

run_phase() {  # ARM... : every seed of these arms, JOBS at a time; a run with final.json is skipped
  local arm seed commands=()
  for arm in "$@"; do
    [[ " $ARMS " == *" $arm "* ]] || continue
    for seed in $SEEDS; do
      [[ -f $RESULTS/${arm}_s$seed/final.json ]] && continue
      commands+=("$(arm_command "$arm" "$seed") > $RESULTS/logs/${arm}_s$seed.log 2>&1 && echo '  done ${arm}_s$seed'")
    done
  done
  (( ${#commands[@]} )) || return 0
  printf '%s\0' "${commands[@]}" | xargs -0 -P "$JOBS" -I{} bash -c {} \
    || { echo "error: a run failed; its log is under $RESULTS/logs" >&2; exit 1; }
}

# -- 6: students ---------------------------------------------------------------------------------
note "training: $ARMS x seeds $SEEDS, $STEPS steps of $BATCH_SIZE, $JOBS at a time"
run_phase same_seqkd same_kd xt_seqkd xt_uld xt_aligned       # off-policy (SeqKD first: on-policy inits)
run_phase same_minillm xt_uld_onpolicy xt_aligned_onpolicy    # on-policy, from SeqKD at STEPS/2
note "students trained"

# -- 7, 8: tokenizer-free comparison and paired CIs ----------------------------------------------
models=("same_init=$SAME_INIT" "xt_init=$XT_INIT")
for arm in $ARMS; do for seed in $SEEDS; do models+=("${arm}_s$seed=$RESULTS/${arm}_s$seed"); done; done
if [[ ! -f $RESULTS/comparison_tokenizer_free.json ]]; then
  # shellcheck disable=SC2086  # EVAL_SEEDS is a list
  python tools/compare_to_teacher.py --tokenizer-free --teacher "$TEACHER" --data-dir "$PROCESSED/full" --split test \
    --models "${models[@]}" --seeds $EVAL_SEEDS --max-new-tokens "$CONTINUATION_TOKENS" --out "$RESULTS" \
    --note "Teacher: llama2.c stories260K (SentencePiece, 512 tokens); same_*: students with its tokenizer, xt_*: with a byte-level BPE of $STUDENT_VOCAB tokens." \
    > "$RESULTS/logs/compare.log" 2>&1
fi
# shellcheck disable=SC2086
python scripts/xtok/paired_table.py "$RESULTS/comparison_tokenizer_free.json" --arms $ARMS --seeds $SEEDS \
  --baseline "$BASELINE" --out "$RESULTS/paired.md"
note "done; tables in $RESULTS/comparison_tokenizer_free.md and $RESULTS/paired.md"
cat "$RESULTS/paired.md"
