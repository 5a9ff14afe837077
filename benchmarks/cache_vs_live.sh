#!/usr/bin/env bash
# Students trained from the top-k teacher cache vs with the live teacher (issue 14): the tiny
# preset's word-level KD arm (forward KL; ARM=dss-kd: DSS-KD, both task streams cached), with the
# recipe of the tiny preset (minillm/experiments/settings.py), paired by training seed (same init, data order and generation
# seeds); writes OUT/cache_vs_live.{md,json}: each metric's paired difference cache − live with its
# 95% CI (minillm.statistics.paired_difference), and what the paired runs' records differ in.
# Needs a finished tiny driver run under WORK with the arm (`METHODS=default TRAIN_SEEDS="10 20 30 40 50"
# bash scripts/run_comparison.sh`): its teachers, processed data and student inits, and with LIVE=reuse
# the arm's runs and evaluations.
# Usage: bash benchmarks/cache_vs_live.sh BASE_PATH OUT
#   ARM=kd | dss-kd, WORK (default BASE_PATH), TRAIN_SEEDS ("10 20 30 40 50"), TOP_K (64,
#   tools/cache_teacher.py's default), LIVE=reuse (the driver's runs) | train (train and evaluate
#   the live arm into OUT as well)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh" "${1:?usage: cache_vs_live.sh BASE_PATH OUT}"
OUT=$(mkdir -p "${2:?usage: cache_vs_live.sh BASE_PATH OUT}" && cd "$2" && pwd)
WORK=${WORK:-$BASE_PATH}
export WORK
seeds=${TRAIN_SEEDS:-"10 20 30 40 50"}
unset TRAIN_SEEDS
tiny_settings=$(python -m minillm.experiments.settings --shell tiny "$BASE_PATH") || exit 1
set -a  # RESULTS, PROCESSED, STUDENT_LR, DS_CONFIG, MAX_LENGTH, ... with the environment's overrides, exported
eval "$tiny_settings"  # for the stage scripts below, as the driver gives them
set +a
ARM=${ARM:-kd}
TRAIN_SEEDS=$seeds
TOP_K=${TOP_K:-64}
LIVE=${LIVE:-reuse}
# The driver's stage for the arm: its script, teacher (trained with the first training seed, 10)
# and task streams (DSS-KD: the label task, then the rationale task), each with its own cache.
case $ARM in
  kd) LIVE_ARM=kd-forward_kl SCRIPT=scripts/kd/kd_base.sh TEACHER=$RESULTS/runs/teacher/seed${TRAIN_SEEDS%% *}
      STREAMS=("DATA_DIR=$PROCESSED/full/tiny") ;;
  dss-kd) LIVE_ARM=dss-kd SCRIPT=scripts/dss/dss_kd_base.sh TEACHER=$RESULTS/runs/dss-teacher/seed${TRAIN_SEEDS%% *}
      STREAMS=("DATA_DIR=$PROCESSED/dss/full/label/tiny" "RATIONALE_DATA_DIR=$PROCESSED/dss/full/rationale/tiny") ;;
  *) echo "error: ARM=$ARM; choose kd or dss-kd" >&2; exit 1 ;;
esac
CACHED_ARM=$LIVE_ARM-cache-k$TOP_K
caches=("$OUT/teacher_cache-k$TOP_K")
(( ${#STREAMS[@]} == 2 )) && caches+=("$OUT/teacher_cache-k$TOP_K-rationale")

# train_and_evaluate ARM SEED [KD_ARGS]: the driver's training stage and its evaluation, into OUT.
train_and_evaluate() {
  local run=$OUT/runs/$1/seed$2
  [[ -f $OUT/eval/$1/seed$2/summary.json ]] && return
  SECONDS=0
  env EXTRA_ARGS="--resume${CHECKPOINT_CANDIDATES:+ --evaluations $CHECKPOINT_CANDIDATES}" SEED="$2" MODEL_PATH="$WORK/checkpoints/student-init/seed$2" LR="$STUDENT_LR" \
    EPOCHS="$STUDENT_EPOCHS" "${STREAMS[@]}" TEACHER_PATH="$TEACHER" KD_LOSS=forward_kl KD_ARGS="${3:-}" \
    SAVE_PATH="$run" bash "$SCRIPT" "$BASE_PATH"
  local trained=$SECONDS
  env MODELS="$1/seed$2=$run" DATA_ROOT="$EVAL_DATA_ROOT" EVAL_SETS="$EVAL_SETS" SEEDS="$EVAL_SEEDS" \
    SAVE_ROOT="$OUT/eval" REPORT= MAX_NEW_TOKENS=$((MAX_LENGTH - MAX_PROMPT_LENGTH)) \
    MAX_PROMPT_LENGTH=$((MAX_PROMPT_LENGTH + 16)) bash scripts/eval/run_eval.sh "$BASE_PATH"
  echo "$1/seed$2: training ${trained}s, evaluation $((SECONDS - trained))s" | tee -a "$OUT/times.txt"
}

for i in "${!STREAMS[@]}"; do
  SECONDS=0
  env TEACHER_PATH="$TEACHER" DATA_DIR="${STREAMS[i]#*=}" CACHE_DIR="${caches[i]}" TOP_K="$TOP_K" \
    bash scripts/tools/cache_teacher.sh "$BASE_PATH"
  echo "cache ${caches[i]}: ${SECONDS}s" | tee -a "$OUT/times.txt"
done
live_runs=$RESULTS/runs/$LIVE_ARM live_eval=$RESULTS/eval/$LIVE_ARM
if [[ $LIVE == train ]]; then live_runs=$OUT/runs/$LIVE_ARM-live live_eval=$OUT/eval/$LIVE_ARM-live; fi
for seed in $TRAIN_SEEDS; do
  [[ $LIVE == train ]] && train_and_evaluate "$LIVE_ARM-live" "$seed"
  train_and_evaluate "$CACHED_ARM" "$seed" "--teacher-cache ${caches[*]}"
done

python - "$OUT" "$live_runs" "$live_eval" "$OUT/runs/$CACHED_ARM" "$OUT/eval/$CACHED_ARM" "$EVAL_SETS" $TRAIN_SEEDS <<'EOF'
import json, re, sys
from pathlib import Path
from minillm.statistics import paired_difference

out, live_runs, live_eval, cache_runs, cache_eval, sets, *seeds = sys.argv[1:]
load = lambda *parts: json.loads(Path(*parts).read_text())
metrics = {}  # name -> (live values, cache values), by seed
def add(name, live, cache):
    values = metrics.setdefault(name, ([], []))
    values[0].append(live)
    values[1].append(cache)
notes = []
for seed in seeds:
    run = f"seed{seed}"
    # run.json: the settings that identify a run (paths as content hashes).
    live_id, cache_id = (load(root, run, "run.json") for root in (live_runs, cache_runs))
    only_cache = sorted(k for k in cache_id.keys() - live_id.keys() if k != "teacher_cache")
    differing = sorted(k for k in live_id.keys() & cache_id.keys() - {"teacher_cache"} if live_id[k] != cache_id[k])
    threads = [re.search(r"(\d+) CPU thread", Path(root, run, "log.txt").read_text()) for root in (live_runs, cache_runs)]
    notes.append(f"{run}: run.json differs in {differing or 'nothing'} besides teacher_cache; not in the live run's "
                 f"record (flags added since): {', '.join(f'{k}={cache_id[k]}' for k in only_cache) or 'none'}; "
                 f"CPU threads live {threads[0] and threads[0][1]}, cache {threads[1] and threads[1][1]}")
    for name in sets.split():
        live, cache = (load(root, run, "summary.json")["sets"][name] for root in (live_eval, cache_eval))
        for key, label in (("rougeL_mean", "Rouge-L"), ("accuracy_strict", "accuracy strict"),
                           ("accuracy_flexible", "accuracy flexible")):
            add(f"{label} {name}", live[key], cache[key])
    finals = [load(root, run, "final.json") for root in (live_runs, cache_runs)]
    add("validation CE, last evaluation", finals[0]["evaluations"][-1]["valid_loss"],
        finals[1]["evaluations"][-1]["valid_loss"])
rows = ["| metric | live (mean) | cache (mean) | Δ cache − live [95% CI] | p |", "|---|---|---|---|---|"]
report = {"seeds": seeds, "live": [live_runs, live_eval], "cache": [cache_runs, cache_eval], "notes": notes, "metrics": {}}
for name, (live, cache) in metrics.items():
    d = paired_difference(cache, live)
    report["metrics"][name] = {"live": live, "cache": cache, "difference": d}
    ci = "n=1, no CI" if d["ci_low"] is None else f"[{d['ci_low']:+.3g}, {d['ci_high']:+.3g}]"
    p = "–" if d["p_value"] is None else f"{d['p_value']:.3f}"
    rows.append(f"| {name} | {sum(live) / len(live):.4g} | {sum(cache) / len(cache):.4g} | "
                f"{d['mean_difference']:+.3g} {ci} | {p} |")
text = "\n".join(rows + [""] + notes) + "\n"
Path(out, "cache_vs_live.md").write_text(text)
Path(out, "cache_vs_live.json").write_text(json.dumps(report, indent=2) + "\n")
print(text)
EOF
