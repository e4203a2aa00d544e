#!/usr/bin/env bash
# One-command GPU check: on a machine with a CUDA GPU, run
#   1. the vLLM teacher backend (and the hf backend on the same GPU, for comparison),
#   2. a CUDA distillation smoke run on the shipped models (smollm2-135m <- qwen2.5-coder-0.5b),
#   3. the quick demo on the GPU (every step timed: OUT/demo/timings.md),
# then print one summary table (also written to OUT/summary.md).
#
#   bash scripts/gpu_check.sh                 # OUT=runs/gpu_check
#   OUT=/scratch/gc LIMIT=128 bash scripts/gpu_check.sh
#   bash scripts/gpu_check.sh --dry-run       # print the commands, run nothing (works without a GPU)
#   QWEN_PAIR=1 bash scripts/gpu_check.sh     # also the qwen-pair experiment: check, traces, dev (docs/qwen-pair.md)
#
# Needs: `make setup` done (.venv with the shipped models), a CUDA build of torch
# (pip install torch --index-url https://download.pytorch.org/whl/cu124, then pip install -e .[export]),
# and for step 1 vLLM (pip install 'reasonkd[vllm]'). A step that fails is marked FAIL in the table
# and the others still run; the exit code is the number of failed steps. Without a GPU it exits 2
# at once and says so. Every step resumes: rerun the same command after a failure.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_check}
LIMIT=${LIMIT:-64}                 # teacher problems per backend
STEPS=${STEPS:-10}                 # optimizer steps per distillation stage
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
RK=("$PY" -m reasonkd)

if [ "$DRY" = 0 ]; then
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA GPU visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null \
      || echo 'torch not importable')); nothing run." >&2
    echo "  On a GPU machine: install a CUDA torch build, then rerun. nvidia-smi says:" >&2
    { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 || echo "nvidia-smi: not found"; } | sed 's/^/  /' >&2
    exit 2
  fi
fi
mkdir -p "$OUT"
TABLE="$OUT/summary.tsv"
: > "$TABLE"
FAILED=0

# run_step NAME FIGURE_COMMAND -- CMD...: time CMD, then FIGURE_COMMAND (a shell snippet) prints its figure
run_step() {
  local name=$1 figure=$2; shift 3
  echo "== $name: $*"
  if [ "$DRY" = 1 ]; then printf '%s\tdry-run\t-\t-\n' "$name" >> "$TABLE"; return; fi
  local t0=$(date +%s.%N) status=ok
  "$@" > "$OUT/$name.log" 2>&1 || status=FAIL
  local dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  local fig="-"
  if [ "$status" = ok ]; then fig=$(eval "$figure" 2>/dev/null || echo "-"); else
    FAILED=$((FAILED + 1)); fig="see $OUT/$name.log: $(tail -n 1 "$OUT/$name.log" | cut -c1-80)"; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$dt" "$fig" >> "$TABLE"
}

json() {  # json FILE EXPR: print a Python expression over the parsed file `d`
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

run_step data "echo \$(wc -l < $OUT/data/train.jsonl) train problems" -- \
  "${RK[@]}" data build recipes/data/quick.yaml --out "$OUT/data"

run_step teacher-vllm "json $OUT/traces-vllm/stats.json \"f\\\"{d['overall']['accepted']}/{d['overall']['samples']} verified, {d['generation']['tokens_per_s']} tok/s\\\"\"" -- \
  "${RK[@]}" teacher generate --backend vllm --teacher qwen2.5-coder-0.5b --data "$OUT/data" \
  --out "$OUT/traces-vllm" --limit "$LIMIT" --max-new-tokens 200 --no-progress

run_step teacher-hf-cuda "json $OUT/traces-hf/stats.json \"f\\\"{d['overall']['accepted']}/{d['overall']['samples']} verified, {d['generation']['tokens_per_s']} tok/s\\\"\"" -- \
  "${RK[@]}" teacher generate --backend hf --device cuda --dtype bfloat16 --teacher qwen2.5-coder-0.5b \
  --data "$OUT/data" --out "$OUT/traces-hf" --limit "$LIMIT" --max-new-tokens 200 --batch-size 32 --no-progress

# the smoke run trains on whichever teacher run produced traces (vLLM first)
TRACES="$OUT/traces-vllm"
[ -s "$OUT/traces-vllm/traces.jsonl" ] || TRACES="$OUT/traces-hf"
cat > "$OUT/distill.yaml" <<EOF
# written by scripts/gpu_check.sh: a CUDA smoke run of the three stages on the shipped pair
student: smollm2-135m
teacher: qwen2.5-coder-0.5b
data: {path: $TRACES/traces.jsonl}
output_dir: $OUT/distill
device: cuda
bf16_autocast: auto
max_length: 384
batch_size: 8
save_every: 0
log_every: 5
report_to: [tensorboard]
stages:
  - {name: feature, kind: feature, steps: $STEPS, lr: 1.0e-4, warmup: 2}
  - {name: logic, kind: logic, steps: $STEPS, lr: 1.0e-4, warmup: 2}
  - {name: output, kind: output, steps: $STEPS, lr: 5.0e-5, warmup: 2}
EOF
run_step distill-cuda "json $OUT/distill/summary.json \"f\\\"{d['total']['steps']} steps, loss {d['total']['final_loss']:.3f}, \\\" + ', '.join(f\\\"{s['stage']} {s['tok_s']} tok/s\\\" for s in d['stages'])\"" -- \
  "${RK[@]}" distill "$OUT/distill.yaml" --resume --quiet

run_step demo-quick-cuda "grep -m1 -i total $OUT/demo/timings.md | tr -s ' |' ' '" -- \
  "${RK[@]}" demo --quick --out "$OUT/demo" device=cuda

# 4. (QWEN_PAIR=1) the same-tokenizer transfer experiment, every phase (docs/qwen-pair.md): well under an hour
#    on one GPU; its files under $OUT/qwen-pair, resumable like every step here
if [ "${QWEN_PAIR:-0}" = 1 ]; then
  for phase in check traces logits dev; do
    run_step "qwen-pair-$phase" "tail -n 1 $OUT/qwen-pair/run.log | cut -c1-100" -- \
      env QWEN_PAIR_DIR="$OUT/qwen-pair" RK="$PY -m reasonkd" bash scripts/qwen_pair.sh "$phase"
  done
fi

GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))" 2>/dev/null || echo "-")
{
  echo "## scripts/gpu_check.sh — $(date -u '+%Y-%m-%d %H:%M UTC') — GPU: $GPU"
  echo
  echo "| step | status | seconds | result |"
  echo "|---|---|---|---|"
  awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$TABLE"
  echo
  if [ -f "$OUT/demo/timings.md" ]; then
    echo "Demo steps on the GPU ($OUT/demo/timings.md):"; echo; sed -n '1,/^| total/p' "$OUT/demo/timings.md"
  fi
} | tee "$OUT/summary.md"
exit "$FAILED"
