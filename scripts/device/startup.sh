#!/usr/bin/env bash
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
for m in resnet20 mobilenetv2 convnext-small; do
  for cl in 1 0; do
    for amp in 1 0; do python3 scripts/device/startup_probe.py $m 0 1 $cl $amp; done
  done
done 2>&1 | tee $OUT/startup.txt
python3 -c "import torch; torch.backends.cuda.matmul.allow_tf32=True" >/dev/null
