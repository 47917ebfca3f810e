#!/usr/bin/env bash
# The main job, from a fresh clone: set-up (libtorch, release build, Fashion-MNIST from Debian's
# package imported into the data root), then SimCLR pretraining on Fashion-MNIST's 60k training
# images without labels, then kNN and linear-probe accuracy on the 10k test images beside the
# raw-pixel baselines. Extra arguments go to
# `selfsup pretrain` (e.g. --set train.epochs=2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh --data
run_dir="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
exec ./target/release/selfsup pretrain recipes/quickstart.toml --run-dir "$run_dir" "$@"
