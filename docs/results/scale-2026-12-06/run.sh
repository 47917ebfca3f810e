#!/bin/bash
# Streaming image folder at 20k and 200k synthetic 224×224 JPEGs: per-step time and peak RSS of a
# short SimCLR / ResNet-18 run (recipes/scale/simclr-resnet18-stream.toml), interleaved, plus the
# view pipeline alone. Folders from: cargo run --release -p selfsup --example synth_images -- DIR N 224
set -e
cd "$(dirname "$0")/../../.."
IMG=${IMG:-/tmp/scale}; OUT=${OUT:-docs/results/scale-2026-12-06}
for round in 1 2; do
  for n in 20k 200k; do
    rm -rf "$IMG/run-$n"
    /usr/bin/time -v ./target/release/selfsup --threads 2 pretrain recipes/scale/simclr-resnet18-stream.toml \
      --set data.train="$IMG/img$n" --set train.max_steps=12 --no-eval --quiet --run-dir "$IMG/run-$n" \
      > "$OUT/train-$n-round$round.log" 2>&1
    cp "$IMG/run-$n/metrics.jsonl" "$OUT/metrics-$n-round$round.jsonl"
  done
done
for n in 20k 200k; do
  /usr/bin/time -v ./target/release/selfsup --threads 2 bench pipeline --pipeline-recipe recipes/scale/simclr-resnet18-stream.toml \
    --set data.train="$IMG/img$n" --steps 4 --rounds 1 --no-reference > "$OUT/pipeline-$n.log" 2>&1
done
# The 200k folder packed into 20 tar shards of 10k images (`selfsup data pack`), trained and piped the same way.
./target/release/selfsup data pack "$IMG/img200k" "$IMG/shards200k" --per-shard 10000
rm -rf "$IMG/run-shards"
/usr/bin/time -v ./target/release/selfsup --threads 2 pretrain recipes/scale/simclr-resnet18-stream.toml \
  --set data.format=image_shards --set data.train="$IMG/shards200k" --set train.max_steps=12 --no-eval --quiet \
  --run-dir "$IMG/run-shards" > "$OUT/train-shards200k.log" 2>&1
cp "$IMG/run-shards/metrics.jsonl" "$OUT/metrics-shards200k.jsonl"
/usr/bin/time -v ./target/release/selfsup --threads 2 bench pipeline --pipeline-recipe recipes/scale/simclr-resnet18-stream.toml \
  --set data.format=image_shards --set data.train="$IMG/shards200k" --steps 4 --rounds 1 --no-reference > "$OUT/pipeline-shards200k.log" 2>&1
