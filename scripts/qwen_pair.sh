#!/usr/bin/env bash
# The same-tokenizer transfer experiment (recipes/compare/qwen-pair.yaml, docs/qwen-pair.md), phase by phase.
# Every phase resumes: rerun the same command after a stop and it does only what is missing. Its files live
# under REASONKD_HOME (outside the work tree), so a later checkout on the same machine continues it.
#   scripts/qwen_pair.sh check      # data + step 1: teacher vs untrained student on the dev split
#   scripts/qwen_pair.sh traces     # step 2: the 1.5b teacher's verified traces (2 samples at T 0.7, shortest)
#   scripts/qwen_pair.sh logits     # the teacher's top-128 log-probs over those traces (the kd arms read them)
#   scripts/qwen_pair.sh dev [ARMS] # step 3: train + evaluate the arms on dev, seed 0 (DEV_SEEDS='[0,1,2]' for more)
#   scripts/qwen_pair.sh heldout ARMS   # step 4: the chosen arms (+ baselines), 3 seeds, 1000 held-out problems
#                                       # (seed 0's trained students are reused from step 3)
#   scripts/qwen_pair.sh status     # what is done and what is left (steps, checkpoints, accuracies); runs nothing
#   scripts/qwen_pair.sh report [SPLIT] # compare.md/json of SPLIT (heldout) from what is evaluated so far; runs nothing
# Output and log: $REASONKD_HOME/experiments/qwen-pair/ (run.log holds every phase's output).
set -euo pipefail
cd "$(dirname "$0")/.."
RK=${RK:-.venv/bin/reasonkd}
HOME_DIR=${REASONKD_HOME:-$HOME/.cache/reasonkd}
EXP=${QWEN_PAIR_DIR:-$HOME_DIR/experiments/qwen-pair}
mkdir -p "$EXP"
LOG="$EXP/run.log"
# each trained student's OpenVINO conversion is 2.4 GB (the 1.5b's 6.7): keep the most recently used ones
# within 12 GiB (reasonkd/models/engines/ov_convert.py; the default 40, even 24, filled a 250 GB disk shared
# with the runs, whose trained students alone hold ~2.4 GB per arm and seed; `status` shows the disk)
export REASONKD_ENGINE_CACHE_GB=${REASONKD_ENGINE_CACHE_GB:-12}
KEYS=("out=$EXP/compare" "traces=$EXP/traces" "eval.data=$EXP/data" "logit_cache=$EXP/logits")
say() { echo "== $(date -u '+%F %T UTC') $*" | tee -a "$LOG"; }

data() {
  [ -f "$EXP/data/stats.json" ] || { say "data build"; $RK data build recipes/compare/transfer-data.yaml \
    --out "$EXP/data" 2>&1 | tee -a "$LOG"; }
}

case "${1:-}" in
  check)
    data
    say "teacher check (dev)"
    $RK compare recipes/compare/qwen-pair.yaml "${KEYS[@]}" --teacher-check 2>&1 | tee -a "$LOG" ;;
  traces)
    data
    say "traces: qwen2.5-coder-1.5b, 1000 train problems, 2 samples at T 0.7, shortest verified kept"
    $RK teacher generate --teacher qwen2.5-coder-1.5b --data "$EXP/data" --split train --domain math \
      --limit 1000 --template recipes/compare/prompt.yaml --max-new-tokens 256 --samples-per-problem 2 \
      --temperature 0.7 --prefer shortest --out "$EXP/traces" 2>&1 | tee -a "$LOG" ;;
  logits)
    say "teacher logits: qwen2.5-coder-1.5b, top-128 + tail mass over the verified traces"
    $RK teacher logits --teacher qwen2.5-coder-1.5b --traces "$EXP/traces" --out "$EXP/logits" --k 128 \
      --max-length 512 --batch-size 8 2>&1 | tee -a "$LOG" ;;
  dev)
    say "compare on dev: ${2:-every arm}, seeds ${DEV_SEEDS:-[0]}"
    $RK compare recipes/compare/qwen-pair.yaml "${KEYS[@]}" "seeds=${DEV_SEEDS:-[0]}" ${2:+--arms "$2"} 2>&1 \
      | tee -a "$LOG" ;;
  heldout)
    [ -n "${2:-}" ] || { echo "heldout needs ARMS (the arms chosen on dev)" >&2; exit 2; }
    say "compare on held-out: $2"
    $RK compare recipes/compare/qwen-pair.yaml "${KEYS[@]}" --split heldout --arms "$2" 2>&1 | tee -a "$LOG" ;;
  status)
    $RK compare recipes/compare/qwen-pair.yaml "${KEYS[@]}" --status ;;
  report)
    $RK compare recipes/compare/qwen-pair.yaml "${KEYS[@]}" --split "${2:-heldout}" --report ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac
