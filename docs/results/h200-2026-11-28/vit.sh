#!/bin/bash
# The ViT table of docs/results.md ("Images: masked modelling on a ViT"): MAE and I-JEPA on
# Fashion-MNIST with the recipes/fmnist-vit ViT, 3 seeds side by side on one GPU; per seed: pretrain
# (kNN + linear probe), fine-tune each, and the from-scratch controls. From anywhere:
#   docs/results/h200-2026-11-28/vit.sh [BIN] [OUT]
# BIN: a CUDA build of selfsup (`SELFSUP_CUDA=1 ./scripts/setup.sh`; default target/release/selfsup).
# OUT: a folder for logs and run folders (default runs/h200-vit). EP: pretraining epochs (6).
# FMNIST_FROM: an offline copy of Fashion-MNIST to import (default: download).
set -u
cd "$(dirname "$0")/../../.."
BIN=$(realpath "${1:-target/release/selfsup}"); OUT=$(realpath -m "${2:-runs/h200-vit}"); mkdir -p "$OUT"
"$BIN" data fetch fashion-mnist ${FMNIST_FROM:+--from "$FMNIST_FROM"} --quiet || exit 1
EP=${EP:-6}
one() {
  s=$1; L=$OUT/seed$s.log
  for m in mae ijepa; do
    echo "=== $m seed $s pretrain $(date +%s)" >> "$L"
    "$BIN" --device cuda --threads 4 pretrain recipes/fmnist-vit/$m.toml --run-dir "$OUT/r-$m-$s" --quiet \
      --set seed=$s --set train.epochs=$EP --set train.workers=3 --set eval.raw_baseline=false >> "$L" 2>&1
    echo "=== $m seed $s finetune $(date +%s)" >> "$L"
    "$BIN" --device cuda --threads 4 eval fine-tune --run "$OUT/r-$m-$s" --seeds 1 --first-seed $s >> "$L" 2>&1
  done
  echo "=== scratch seed $s finetune $(date +%s)" >> "$L"
  "$BIN" --device cuda --threads 4 eval fine-tune --run "$OUT/r-mae-$s" --seeds 1 --first-seed $s \
    --from-scratch >> "$L" 2>&1
  echo "=== scratch-long seed $s finetune epochs $((EP+3)) $(date +%s)" >> "$L"
  "$BIN" --device cuda --threads 4 eval fine-tune --run "$OUT/r-mae-$s" --seeds 1 --first-seed $s \
    --from-scratch --set eval.finetune_epochs=$((EP+3)) >> "$L" 2>&1
  echo "=== done seed $s $(date +%s)" >> "$L"
}
nvidia-smi --query-gpu=name --format=csv,noheader
for s in 0 1 2; do one $s & done
wait
tail -n 30 "$OUT"/seed*.log
