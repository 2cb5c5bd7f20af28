#!/usr/bin/env bash
# One device call: GPU facts, the throughput benchmark, the sandboxed CUDA path. Results in $OUT.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 FAIRNAD_CACHE=/tmp/fairnad-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import torch; print(torch.__version__)" | tee -a $OUT/gpu.txt
for bs in 256 512; do
  python3 benchmarks/train_throughput.py --device cuda --batch-size $bs --steps 300 --json | tee $OUT/throughput_bs$bs.json
done
for m in mobilenetv2 convnext-small; do
  python3 benchmarks/train_throughput.py --device cuda --model $m --batch-size 256 --steps 200 --json | tee $OUT/throughput_$m.json
done
python3 scripts/device/cuda_checks.py $OUT 2>&1 | tee $OUT/cuda_checks.log
