#!/bin/bash
# The GPU check behind docs/performance.md ("CUDA"): W1–W4 beside PyTorch on the same GPU, then the
# quickstart and the MAE recipe on CUDA. From anywhere, on a machine with an NVIDIA GPU:
#   docs/results/h200-2026-11-28/run.sh [BIN] [OUT]
# BIN: a CUDA build of selfsup (`SELFSUP_CUDA=1 ./scripts/setup.sh`; default target/release/selfsup).
# OUT: a folder for the logs (default runs/h200-check). PYTHON: a Python with torch for the
# reference (default python3). FMNIST_FROM: an offline copy of Fashion-MNIST to import (default:
# download). STEPS, ROUNDS: bench sizes; EXTRA: more arguments for the two recipe runs.
# (The committed logs came from a binary built against the GPU machine's own PyTorch 2.11 libtorch,
# found through LD_LIBRARY_PATH; a binary from setup.sh finds its libtorch by rpath.)
set -u
cd "$(dirname "$0")/../../.."
BIN=$(realpath "${1:-target/release/selfsup}"); OUT=$(realpath -m "${2:-runs/h200-check}"); mkdir -p "$OUT"
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch;print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
ldd "$BIN" | grep -i 'torch\|not found'
"$BIN" --device cuda --threads 16 bench w1 w2 w3 w3sdpa w3explicit w4 --steps "${STEPS:-20}" \
  --rounds "${ROUNDS:-2}" --python "$PY" --script ../shared/bench/torch_reference.py \
  --out "$OUT/bench-cuda.json" 2>&1 | tee "$OUT/bench.log"
"$BIN" data fetch fashion-mnist ${FMNIST_FROM:+--from "$FMNIST_FROM"} --quiet
for r in quickstart fmnist-vit/mae; do
  n=$(basename $r)
  /usr/bin/time -v "$BIN" --device cuda --threads 16 pretrain recipes/$r.toml --run-dir "$OUT/run-$n" \
    --quiet --set train.workers=12 ${EXTRA:-} 2>&1 | grep -v '^\s*$' | tee "$OUT/recipe-$n.log" | tail -25
done
