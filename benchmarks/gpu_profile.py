"""Where the time of one 1-step prediction goes, and what each fast path buys, on a GPU.

For one batch of images at the processing size it times the three model calls separately
(VAE encoder, one UNet call, VAE decoder) and the whole ``MarigoldPredictor.predict`` call,
under a sequence of variants applied one after the other to the same modules:

1. ``eager, channels-last``    NHWC tensors and weights (CUDA only)
2. ``eager, NCHW``             plain contiguous tensors, cuDNN's default algorithm choice: what
                               the predictor does
3. ``+ cudnn.benchmark``       cuDNN times its algorithms per shape on the first call
4. ``+ --compile``             torch.compile of the UNet, VAE encoder and VAE decoder
5. ``+ --tiny-vae``            a randomly initialised ``AutoencoderTiny`` as the decoder (changes
                               the numbers; speed only)

After the NCHW variant, diffusers' ``MarigoldDepthPipeline`` runs the same batch on the same
modules (one call, its own pre- and post-processing), and the ratio to our eager call is printed.

Each figure is the median of ``--repeats`` timed calls after one warm-up, in ms per image, with a
device synchronisation around every call. The FLOPs of each call (counted by torch's
FlopCounterMode) give the achieved TFLOP/s beside it. ``--trace FILE`` also writes the top CUDA
kernels of one predict call of the NCHW variant.

    python benchmarks/gpu_profile.py --size 768x768 --batch 4 --precision bf16 --json OUT/profile.jsonl
    python benchmarks/gpu_profile.py --model tiny --device cpu --size 64x64 --batch 2 --precision fp32   # dry run

Compilation takes minutes for the SD-v2-size modules; ``--skip compile`` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from inference import build_pipeline, parse_size  # noqa: E402  (benchmarks/inference.py)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn, device, repeats: int) -> float:
    fn()  # warm-up: kernel selection, allocator, compilation
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def count_tflop(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e12


def set_memory_format(predictor, fmt) -> None:
    predictor.memory_format = fmt
    for module in (predictor.unet, predictor.vae, predictor.decoder):
        if module is not None:
            module.to(memory_format=fmt)


def random_tiny_vae(predictor):
    """An AutoencoderTiny with random weights on the predictor's device and dtype (speed only):
    TAESD's shape for SD-size VAEs (factor 8), one block fewer per halved factor."""
    from diffusers import AutoencoderTiny

    blocks = predictor.vae_scale_factor.bit_length()   # factor 8 -> 4 blocks, 3 upsamplings
    vae = AutoencoderTiny(latent_channels=predictor.latent_channels, encoder_block_out_channels=(64,) * blocks,
                          decoder_block_out_channels=(64,) * blocks, num_encoder_blocks=(1, 3, 3, 3)[:blocks],
                          num_decoder_blocks=(3, 3, 3, 1)[-blocks:])
    return predictor._place(vae)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "sd2-size"), default="sd2-size")
    parser.add_argument("--size", default="768x768", help="processing size HxW (the images are made this size)")
    parser.add_argument("--batch", type=int, default=4, help="images per call (1 step, N=1)")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma list of: compile, tiny-vae, flops")
    parser.add_argument("--json", default=None, help="append one JSON line per variant to this file")
    parser.add_argument("--trace", default=None, help="write the top CUDA kernels of one predict call here")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    from marigold_bench.inference.predictor import PRECISIONS, MarigoldPredictor

    device = torch.device(args.device)
    dtype = PRECISIONS[args.precision]
    h, w = parse_size(args.size)
    pipe = build_pipeline(args.model, device, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = MarigoldPredictor.from_pipeline(pipe, model=args.model, steps=1, ensemble=1,
                                                    processing_res=max(h, w), batch_size=args.batch,
                                                    precision=args.precision, device=args.device)
    rng = np.random.default_rng(0)
    jobs = [(f"img{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8), [0]) for i in range(args.batch)]
    b = args.batch
    lh, lw = predictor.latent_size(h, w)
    image = torch.rand(b, 3, lh * predictor.vae_scale_factor, lw * predictor.vae_scale_factor,
                       device=device, dtype=dtype) * 2 - 1
    latent = torch.randn(b, predictor.latent_channels, lh, lw, device=device, dtype=dtype)

    def calls():
        fmt = predictor.memory_format
        x = image.contiguous(memory_format=fmt)
        both = torch.cat([latent, latent], 1).contiguous(memory_format=fmt)
        text = predictor._text(b)
        t = predictor.scheduler.timesteps[0]
        return {
            "encode": lambda: predictor._encode(x),
            "unet": lambda: predictor.unet(both, t, encoder_hidden_states=text, return_dict=False),
            "decode": lambda: predictor._decode(latent),
            "predict": lambda: predictor.predict(jobs),
        }

    flops = {}
    if "flops" not in skip:
        with torch.inference_mode():
            for name, fn in calls().items():
                if name != "predict":
                    flops[name] = count_tflop(fn) / b
        flops["predict"] = sum(flops.values())

    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "diffusers": __import__("diffusers").__version__,
           "python": platform.python_version(), "model": args.model, "size": [h, w], "batch": b,
           "precision": args.precision, "repeats": args.repeats}
    print(json.dumps(env), flush=True)
    rows = []

    def measure(label: str, **extra):
        row = {"variant": label, **extra}
        with torch.inference_mode():
            for name, fn in calls().items():
                row[f"{name}_ms"] = median_ms(fn, device, args.repeats) / b
                if name in flops:
                    row[f"{name}_tflops"] = flops[name] / (row[f"{name}_ms"] / 1000.0)
        rows.append(row)
        parts = "  ".join(f"{k[:-3]} {row[k]:8.2f}" for k in ("encode_ms", "unet_ms", "decode_ms", "predict_ms"))
        print(f"{label:32s} ms/image: {parts}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({**env, **row, "tflop_per_image": flops}) + "\n")

    if device.type == "cuda":  # the layout the predictor used to default to on CUDA
        set_memory_format(predictor, torch.channels_last)
        measure("eager, channels-last")
    set_memory_format(predictor, torch.contiguous_format)
    measure("eager, NCHW (the predictor's layout)")

    # The reference in the same process, on the same modules and images: diffusers' pipeline,
    # one call for the whole batch, N=1, 1 step, its own pre- and post-processing included.
    from PIL import Image

    pil = [Image.fromarray(image) for _, image, _ in jobs]
    pipe.set_progress_bar_config(disable=True)

    def run_pipeline():
        return pipe(pil, num_inference_steps=1, ensemble_size=1, processing_resolution=max(h, w),
                    batch_size=b, output_type="np", generator=torch.Generator(device).manual_seed(0)).prediction

    with torch.inference_mode():
        pipeline_ms = median_ms(run_pipeline, device, args.repeats) / b
    ours_ms = rows[-1]["predict_ms"]
    print(f"{'diffusers MarigoldDepthPipeline':32s} ms/image: predict {pipeline_ms:8.2f}  "
          f"(ours eager NCHW {ours_ms:.2f}: {pipeline_ms / ours_ms:.2f}x)", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({**env, "variant": "diffusers MarigoldDepthPipeline", "predict_ms": pipeline_ms,
                                "ratio_vs_ours_eager_nchw": pipeline_ms / ours_ms}) + "\n")

    if args.trace and device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            predictor.predict(jobs)
            sync(device)
        with open(args.trace, "w") as f:
            f.write(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=40))

    torch.backends.cudnn.benchmark = True
    measure("+ cudnn.benchmark")

    if "compile" not in skip:
        t0 = time.perf_counter()
        predictor._compile()
        with torch.inference_mode():
            predictor.predict(jobs)  # pays the compilation of every module at this shape
            sync(device)
        measure("+ compile (unet, vae enc+dec)", compile_s=time.perf_counter() - t0)

    if "tiny-vae" not in skip:
        predictor.decoder = random_tiny_vae(predictor)
        predictor.decoder.to(memory_format=predictor.memory_format)
        if "flops" not in skip:
            with torch.inference_mode():
                flops["decode"] = count_tflop(lambda: predictor._decode(latent)) / b
            flops["predict"] = flops["encode"] + flops["unet"] + flops["decode"]
        label = "+ tiny VAE decoder"
        if "compile" not in skip:
            predictor.decoder.decoder.compile()
            label += " (compiled)"
        measure(label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
