#!/bin/bash
# Device experiment: MAE and I-JEPA on Fashion-MNIST with the recipes/fmnist-vit ViT, 3 seeds in
# parallel; per seed: pretrain (kNN + linear probe), fine-tune each, and the from-scratch control.
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib
mkdir -p /usr/share/datasets/fashion-mnist && cp .gpu/data/*.gz /usr/share/datasets/fashion-mnist/
B=.gpu/selfsup
EP=${EP:-6}
one() {
  s=$1; L=$OUT/seed$s.log
  for m in mae ijepa; do
    echo "=== $m seed $s pretrain $(date +%s)" >> $L
    $B --device cuda --threads 4 pretrain recipes/fmnist-vit/$m.toml --run-dir /tmp/r-$m-$s --quiet \
      --set seed=$s --set train.epochs=$EP --set train.workers=3 --set eval.raw_baseline=false >> $L 2>&1
    echo "=== $m seed $s finetune $(date +%s)" >> $L
    $B --device cuda --threads 4 eval fine-tune --run /tmp/r-$m-$s --seeds 1 --first-seed $s >> $L 2>&1
  done
  echo "=== scratch seed $s finetune $(date +%s)" >> $L
  $B --device cuda --threads 4 eval fine-tune --run /tmp/r-mae-$s --seeds 1 --first-seed $s --from-scratch >> $L 2>&1
  echo "=== scratch-long seed $s finetune epochs $((EP+3)) $(date +%s)" >> $L
  $B --device cuda --threads 4 eval fine-tune --run /tmp/r-mae-$s --seeds 1 --first-seed $s --from-scratch \
     --set eval.finetune_epochs=$((EP+3)) >> $L 2>&1
  echo "=== done seed $s $(date +%s)" >> $L
}
nvidia-smi --query-gpu=name --format=csv,noheader
for s in 0 1 2; do one $s & done
wait
tail -n 30 $OUT/seed*.log
