#!/bin/bash
# Device check: W1–W4 beside PyTorch on the same GPU, then two recipes on CUDA.
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee $OUT/gpu.txt
TL=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib
python3 -c "import torch;print('torch', torch.__version__)" | tee -a $OUT/gpu.txt
export LD_LIBRARY_PATH=$TL
B=.gpu/selfsup
ldd $B | grep -i 'torch\|not found'
$B --device cuda --threads 16 bench w1 w2 w3 w3sdpa w3explicit w4 --steps ${STEPS:-20} --rounds ${ROUNDS:-2} \
   --python python3 --script .gpu/torch_reference.py --out $OUT/bench-cuda.json 2>&1 | tee $OUT/bench.log
mkdir -p /usr/share/datasets/fashion-mnist && cp .gpu/data/*.gz /usr/share/datasets/fashion-mnist/
for r in quickstart fmnist-vit/mae; do
  n=$(basename $r)
  /usr/bin/time -v $B --device cuda --threads 16 pretrain recipes/$r.toml --run-dir /tmp/run-$n --quiet \
     --set train.workers=12 ${EXTRA} 2>&1 | grep -v '^\s*$' | tee $OUT/recipe-$n.log | tail -25
  cp /tmp/run-$n/manifest.json $OUT/manifest-$n.json 2>/dev/null
  head -c 4000 /tmp/run-$n/metrics.jsonl > $OUT/metrics-$n.jsonl
done
