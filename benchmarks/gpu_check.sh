#!/usr/bin/env bash
# One prepared run of the GPU measurements of benchmarks/README.md, for a lent GPU machine.
#   bash benchmarks/gpu_check.sh OUT_DIR            # SD-v2-size random weights on cuda, ~6 minutes on an H100
#   MODEL=tiny DEVICE=cpu SIZE=64x64 PRECISIONS=fp32 SKIP_COMPILE=1 EVAL_SAMPLES=2 bash benchmarks/gpu_check.sh /tmp/dry   # a dry run on the CPU; python3 on PATH must have the suite installed
# Results: OUT_DIR/{env.txt,profile.jsonl,kernels-*.txt,evaluation-*.json}. Steps run in order of
# importance, each under its own time limit (T_* seconds), writing as it goes, so a run cut off by
# the device budget still leaves what it measured. Raw outputs of earlier runs: benchmarks/results/.
# The training measurement is benchmarks/training.py (see benchmarks/TRAINING.md).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
MODEL=${MODEL:-sd2-size}; DEVICE=${DEVICE:-cuda}; SIZE=${SIZE:-768x768}; PRECISIONS=${PRECISIONS:-bf16 fp16}
SAMPLES=${EVAL_SAMPLES:-16}
export PYTHONUNBUFFERED=1
{
  python3 -c "import torch, diffusers, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
} > "$out/env.txt" 2>&1
cat "$out/env.txt"
first=${PRECISIONS%% *}
# 0. the CUDA-only tests against the host: GPU scoring, ensembling and merge, uint8 conversion, and
#    the 0.4 paths (normals merge, inference and scoring; point-map and moge-lifted scoring)
timeout ${T_TESTS:-200} python3 -m pytest -q -p no:cacheprovider tests/test_device_scoring.py \
    tests/test_ensemble.py tests/test_inference.py tests/test_cuda_paths.py -k "cuda or gpu" 2>&1 \
    | tail -15 | tee "$out/cuda-tests.txt"
# 1. where 1 step N=1 spends its time, eager variants, with a kernel table
timeout ${T_PROFILE:-100} python3 benchmarks/gpu_profile.py --model "$MODEL" --device "$DEVICE" --size "$SIZE" \
    --batch 8 --precision "$first" --skip compile --trace "$out/kernels-$first.txt" --json "$out/profile.jsonl"
# 2. evaluation throughput split into load / inference / merge / align+metrics, the NYU estimate,
#    and the protocol cost at NYU / KITTI / ETH3D size (scoring and ensembling on the GPU)
timeout ${T_EVAL:-200} python3 benchmarks/evaluation.py --model "$MODEL" --device "$DEVICE" --precision "$first" \
    --size "$SIZE",480x640 --steps 1,4 --ensemble 1,10 --samples "$SAMPLES" --protocol \
    --repeats 3 --infer-repeats 2 --json "$out/evaluation-$first.json"
# 3. the other precisions: 1 step N=1 and 4 steps N=10 at the main size, and their profile
for prec in ${PRECISIONS#"$first"}; do
  timeout ${T_EVAL_OTHER:-120} python3 benchmarks/evaluation.py --model "$MODEL" --device "$DEVICE" \
      --precision "$prec" --size "$SIZE" --steps 1,4 --ensemble 1,10 --samples "$SAMPLES" \
      --json "$out/evaluation-$prec.json"
  timeout ${T_PROFILE:-100} python3 benchmarks/gpu_profile.py --model "$MODEL" --device "$DEVICE" --size "$SIZE" \
      --batch 8 --precision "$prec" --skip compile,tiny-vae --json "$out/profile.jsonl"
done
# 4. the compiled variants (about two minutes of compilation on an H100)
[ -n "${SKIP_COMPILE:-}" ] || timeout ${T_COMPILE:-240} python3 benchmarks/gpu_profile.py --model "$MODEL" \
    --device "$DEVICE" --size "$SIZE" --batch 8 --precision "$first" --skip flops --repeats 3 --json "$out/profile.jsonl"
