#!/usr/bin/env bash
# Installs torch into the active Python environment without dragging in CUDA wheels on a machine
# that has no NVIDIA GPU: a local CPU wheel when pip's find-links has one (its dependencies from
# the usual indexes), else the CPU-only index. With a GPU, the normal (CUDA) build from PyPI.
set -euo pipefail
PY=${PY:-python}
VERSION=${FASTHG_TORCH_VERSION:-2.13.0}
if "$PY" -c "import torch" 2>/dev/null; then
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "$PY" -m pip install "torch==$VERSION"
elif "$PY" -m pip install --no-index --no-deps "torch==$VERSION" 2>/dev/null; then
  # The CPU index is never asked here: where it is unreachable, pip retried it five times for
  # each of torch's dependencies.
  "$PY" -m pip install "torch==$VERSION"
  echo "installed the local CPU build of torch $VERSION"
else
  "$PY" -m pip install "torch==$VERSION" --index-url "${FASTHG_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
fi
