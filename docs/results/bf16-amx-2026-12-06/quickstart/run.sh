#!/bin/bash
# Quickstart, fp32 vs bf16 + channels-last, seeds 0-2, interleaved.
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-/tmp/qs}; mkdir -p "$OUT"
for s in 0 1 2; do
  for v in fp32 bf16cl; do
    extra=""
    [ $v = bf16cl ] && extra="--set train.precision=bf16 --set train.channels_last=true"
    /usr/bin/time -v ./target/release/selfsup --threads 2 pretrain recipes/quickstart.toml --set seed=$s --set eval.raw_baseline=false $extra --run-dir runs/qs-$v-s$s --quiet > $OUT/$v-s$s.log 2>&1
  done
done
echo done > $OUT/done
