#!/usr/bin/env bash
# One command for a GPU machine (issue 15 item 4): the CUDA tests, then updates/s eager vs
# compile=true for SAC, DDPG+TCRL and PPO at the presets' network sizes, with the ratios.
#
#   bash benchmarks/gpu.sh            # on a machine with CUDA torch installed (< 8 minutes)
#   bash benchmarks/gpu.sh cpu        # the same steps on the CPU, tiny sizes (checks the script)
#
# Installs nothing when rlaux imports already; otherwise `pip install -e ".[test]"` into the
# current Python, keeping the torch (CUDA build) that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-cuda}"
PY="${PYTHON:-python}"

if ! "$PY" -c "import rlaux, pytest" 2>/dev/null; then
  "$PY" -m pip install -e ".[test]"
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu.sh: torch.cuda.is_available() is false here; install a CUDA build of torch or run: bash $0 cpu" >&2
  exit 2
fi

echo "== CUDA tests (skipped without CUDA)"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -m "not learning and not slow" -k cuda tests/ || status=$?

echo "== updates/s, eager vs compile=true"
if [ "$DEVICE" = cuda ]; then
  timeout 300 "$PY" benchmarks/update_speed.py --device cuda --rounds 8 --calls 50
else
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout 600 "$PY" benchmarks/update_speed.py --device cpu --sizes tiny \
    --warmup 5 --rounds 3 --calls 10
fi
exit "${status:-0}"
