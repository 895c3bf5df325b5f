#!/usr/bin/env bash
# Create or refresh the virtual environment (.venv/) with everything the project needs.
# Without a GPU, torch==2.13.0 (a CPU build) goes in first: an unpinned torch
# would pull a multi-GB CUDA build.
set -euo pipefail
PY=${1:-python3}
VENV=${2:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install torch            # CUDA build
  else
    $PIP install "torch==2.13.0"  # CPU build
  fi
fi
$PIP install -e ".[test]"
