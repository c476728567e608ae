#!/usr/bin/env bash
# One prepared run of the GPU measurements of benchmarks/README.md, for a lent GPU machine.
#   bash benchmarks/gpu_check.sh OUT_DIR            # SD-v2-size random weights on cuda
#   MODEL=tiny DEVICE=cpu SIZE=64x64 PRECISIONS=fp32 bash benchmarks/gpu_check.sh /tmp/dry   # dry run
# Results: OUT_DIR/{env.txt,inference.jsonl,evaluation.json}. The training measurement is
# benchmarks/training.py (see benchmarks/TRAINING.md).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
MODEL=${MODEL:-sd2-size}; DEVICE=${DEVICE:-cuda}; SIZE=${SIZE:-768x768}; PRECISIONS=${PRECISIONS:-bf16 fp16}
export PYTHONUNBUFFERED=1
{
  python3 -c "import torch, diffusers, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
} > "$out/env.txt" 2>&1
cat "$out/env.txt"
for prec in $PRECISIONS; do
  # 1 step x N=1 (the v1-1 recipe), 4 images per timing
  python3 benchmarks/inference.py --model "$MODEL" --size "$SIZE" --steps 1 --ensemble 1 --images 4 \
      --precision "$prec" --device "$DEVICE" --repeats 3 --skip ensemble,sweep --json "$out/inference.jsonl"
done
for prec in $PRECISIONS; do
  # 4 steps x N=10, with the ensembling and N-sweep measurements
  python3 benchmarks/inference.py --model "$MODEL" --size "$SIZE" --steps 4 --ensemble 10 --images 1 \
      --precision "$prec" --device "$DEVICE" --repeats 2 --json "$out/inference.jsonl"
done
python3 benchmarks/evaluation.py --model "$MODEL" --device "$DEVICE" --precision bf16 \
    --size "$SIZE",480x640 --steps 1,4 --ensemble 1,10 --samples ${EVAL_SAMPLES:-8} --protocol --json "$out/evaluation.json"
