#!/usr/bin/env bash
# The figures the trunk change must leave unchanged, at 1 thread, from the checkout's root:
#   docs/results/trunk-2026-12-06/figures.sh BIN OUT
# BIN: a selfsup binary (e.g. target/release/selfsup); OUT: a new folder for logs, run folders and
# results. Fashion-MNIST, Adult and Cora are read from ../shared/data (Adult and Cora imported into
# the data root OUT/data first, since the recipes name datasets). Compare OUT/*.json (and
# OUT/quickstart/eval.json) between two binaries; timings differ, figures must not.
# (Graph recipes before the change had their protocol under [eval], not [eval.graph], and
# `selfsup graph` had no --runs: the older binary ran the same commands without it.)
set -u
BIN=$(realpath "$1"); OUT=$(realpath -m "$2"); mkdir -p "$OUT"
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
D=../shared/data/fashion_mnist
FM=(--set "data.train_images=$D/train-images-idx3-ubyte.gz" --set "data.train_labels=$D/train-labels-idx1-ubyte.gz"
    --set "data.test_images=$D/t10k-images-idx3-ubyte.gz" --set "data.test_labels=$D/t10k-labels-idx1-ubyte.gz")
step() { local name=$1; shift; local t0=$(date +%s); "$@" > "$OUT/$name.log" 2>&1; echo "$name rc=$? $(( $(date +%s) - t0 ))s" >> "$OUT/times"; }
export SELFSUP_DATA="$OUT/data"
step fetch "$BIN" data fetch adult cora --from ../shared/data --quiet
step quickstart "$BIN" --threads 1 pretrain recipes/quickstart.toml "${FM[@]}" --run-dir "$OUT/quickstart" --quiet
step compare "$BIN" --threads 1 compare recipes/fmnist/simclr.toml recipes/fmnist/vicreg.toml --seeds 1 "${FM[@]}" \
  --set train.max_samples=2000 --set train.epochs=1 --set eval.max_train_samples=2000 --set eval.max_test_samples=1000 \
  --runs "$OUT/compare-runs" --out "$OUT/compare.json"
step tjepa "$BIN" --threads 1 tabular recipes/tables/tjepa-adult.toml --seeds 1 --runs "$OUT/tabular-runs" --out "$OUT/tjepa.json"
step dgi "$BIN" --threads 1 graph recipes/graph/dgi-cora.toml --set 'seeds=[0]' --runs "$OUT/graph-runs" --out "$OUT/dgi.json"
step graphmae "$BIN" --threads 1 graph recipes/graph/graphmae-cora.toml --set 'seeds=[0]' --runs "$OUT/graph-runs" --out "$OUT/graphmae.json"
