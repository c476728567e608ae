#!/usr/bin/env bash
# One prepared run of the GPU measurements of benchmarks/README.md, for a lent GPU machine.
#   bash benchmarks/gpu_check.sh OUT_DIR            # SD-v2-size random weights on cuda
#   MODEL=tiny DEVICE=cpu SIZE=64x64 PRECISIONS=fp32 SKIP_COMPILE=1 bash benchmarks/gpu_check.sh /tmp/dry   # dry run
# Results: OUT_DIR/{env.txt,profile.jsonl,kernels.txt,evaluation.json,inference.jsonl}; every step
# has its own time limit and writes as it goes, so a cut-off run still leaves what it measured.
# The training measurement is benchmarks/training.py (see benchmarks/TRAINING.md).
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
# 1. where 1 step N=1 spends its time, eager variants (fp16 and bf16), with a kernel table
for prec in $PRECISIONS; do
  timeout ${T_PROFILE:-120} python3 benchmarks/gpu_profile.py --model "$MODEL" --device "$DEVICE" --size "$SIZE" \
      --batch 8 --precision "$prec" --skip compile --trace "$out/kernels-$prec.txt" --json "$out/profile.jsonl"
done
# 2. evaluation throughput split into load / inference / merge / align+metrics, NYU estimate,
#    protocol cost at NYU / KITTI / ETH3D size scored on the GPU
timeout ${T_EVAL:-200} python3 benchmarks/evaluation.py --model "$MODEL" --device "$DEVICE" --precision bf16 \
    --size "$SIZE",480x640 --steps 1,4 --ensemble 1,10 --samples ${EVAL_SAMPLES:-8} --protocol \
    --repeats 3 --infer-repeats 3 --json "$out/evaluation.json"
# 3. the compiled variants (minutes of compilation), bf16
[ -n "${SKIP_COMPILE:-}" ] || timeout ${T_COMPILE:-300} python3 benchmarks/gpu_profile.py --model "$MODEL" \
    --device "$DEVICE" --size "$SIZE" --batch 8 --precision bf16 --skip flops --repeats 3 --json "$out/profile.jsonl"
