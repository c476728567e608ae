"""Training throughput: samples/s, peak memory and (on GPUs) model FLOPs utilisation.

    python benchmarks/training.py                      # the tiny config on this machine (CPU)
    python benchmarks/training.py --arch sd2-size      # SD-v2's real UNet + VAE shapes, random
                                                       # weights, 480x640, bf16 + grad checkpointing

One measured step is exactly the trainer's micro-step (``marigold_loss``: VAE encoding of image and
depth, annealed multi-resolution noise, UNet forward and backward) plus the Adam update. FLOPs
are counted once with ``torch.utils.flop_counter`` on the same step (matmuls and convolutions,
forward and backward, without the forward that gradient checkpointing recomputes: model FLOPs);
MFU = model FLOPs per second / the device's peak dense bf16 FLOPs
(``--peak-tflops``, known for H100/H200/A100). Prints one JSON line; ``--out`` appends it to a file.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

import numpy as np
import torch

from marigold_bench.model.convert import expand_conv_in, freeze
from marigold_bench.train.trainer import marigold_loss

#: peak dense bf16 tensor FLOPs (TFLOP/s) of known accelerators
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.2}

def build(arch: str, device):
    """UNet (8 input channels, trainable), frozen VAE, DDPM scheduler and empty-prompt embedding."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from marigold_bench.model.sd2_configs import (SD2_SCHEDULER_CONFIG, SD2_TEXT_ENCODER_CONFIG, SD2_UNET_CONFIG,
                                                  SD2_VAE_CONFIG)
    from marigold_bench.model.tiny import TINY_TEXT_DIM, tiny_unet_config, tiny_vae_config
    from marigold_bench.train.export import training_scheduler

    torch.manual_seed(0)
    with torch.device(device):  # initialise in place (seconds for SD-v2's 866M parameters on a GPU)
        if arch == "tiny":
            unet, vae = UNet2DConditionModel(**tiny_unet_config(4)), AutoencoderKL(**tiny_vae_config())
            text_dim = TINY_TEXT_DIM
        else:
            unet = UNet2DConditionModel(**{**SD2_UNET_CONFIG, "in_channels": 4})
            vae, text_dim = AutoencoderKL(**SD2_VAE_CONFIG), SD2_TEXT_ENCODER_CONFIG["hidden_size"]
    expand_conv_in(unet)
    scheduler = training_scheduler(SD2_SCHEDULER_CONFIG, "trailing", zero_snr=True)
    embedding = torch.randn(1, 2, text_dim, device=device)  # the empty prompt, [1, 2, D]
    return unet.to(device).train(), freeze(vae).to(device), scheduler, embedding


def synthetic_batch(batch: int, height: int, width: int) -> dict:
    """A micro-batch as train/data.py makes it, from the procedural scenes (resized to fit)."""
    from marigold_bench.data.synthetic import render_scene
    from marigold_bench.train.data import augment

    rgbs, depths, valids = [], [], []
    for i in range(batch):
        rgb, depth, valid = render_scene(i)
        rgb, depth, valid = augment({"rgb": rgb, "depth": depth, "valid": valid},
                                    np.random.default_rng(i), (height, width), 0.5)
        rgbs.append(torch.from_numpy(rgb.copy())), depths.append(torch.from_numpy(depth.copy()))
        valids.append(torch.from_numpy(valid.copy()))
    return {"rgb": torch.stack(rgbs).permute(0, 3, 1, 2), "depth": torch.stack(depths)[:, None],
            "valid": torch.stack(valids)[:, None]}


def peak_memory_gib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak resident set, KiB on Linux
    return kib / 2**20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "sd2-size"), default="tiny")
    p.add_argument("--batch", type=int, default=None, help="micro-batch (tiny: 8, sd2-size: 2)")
    p.add_argument("--resolution", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="image size (tiny: 72 96, sd2-size: 480 640)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                   help="autocast dtype of the UNet (tiny: fp32, sd2-size: bf16)")
    p.add_argument("--no-checkpointing", action="store_true", help="sd2-size: disable gradient checkpointing")
    p.add_argument("--steps", type=int, default=10, help="measured steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak dense TFLOP/s for MFU")
    p.add_argument("--out", default=None, help="append the JSON result to this file")
    args = p.parse_args(argv)

    sd2 = args.arch == "sd2-size"
    batch = args.batch or (2 if sd2 else 8)
    height, width = args.resolution or ((480, 640) if sd2 else (72, 96))
    precision = args.precision or ("bf16" if sd2 else "fp32")
    checkpointing = sd2 and not args.no_checkpointing
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    unet, vae, scheduler, embedding = build(args.arch, device)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(device.type, enabled=False)

    optimizer = torch.optim.Adam(unet.parameters(), lr=3e-5)
    data = synthetic_batch(batch, height, width)

    activation_peak = []

    def step(i: int, record: bool = False):
        loss = marigold_loss(unet, vae, scheduler, embedding, data, torch.Generator().manual_seed(i),
                             "annealed", 0.9, autocast)
        loss.backward()
        if record:  # peak of forward + backward, before Adam's temporaries
            activation_peak.append(torch.cuda.max_memory_allocated(device) / 2**30)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for i in range(args.warmup):
        step(i)
    sync()
    from torch.utils.flop_counter import FlopCounterMode

    if checkpointing:  # count model FLOPs: the recomputed forward of checkpointing is not useful work
        unet.disable_gradient_checkpointing()
    with FlopCounterMode(display=False) as counter:
        step(0)
    flops_per_step = counter.get_total_flops()
    if checkpointing:
        unet.enable_gradient_checkpointing()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step(0, record=True)  # one more step, recording the forward + backward peak
    sync()
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(i)
    sync()
    seconds = (time.perf_counter() - t0) / args.steps

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    achieved = flops_per_step / seconds / 1e12
    result = {
        "arch": args.arch, "device": name, "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "batch": batch, "resolution": [height, width], "precision": precision,
        "gradient_checkpointing": checkpointing, "unet_params_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 2),
        "step_s": round(seconds, 4), "samples_per_s": round(batch / seconds, 3),
        "peak_memory_GiB": round(peak_memory_gib(device), 3),
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "process peak RSS",
        "peak_fwd_bwd_GiB": round(activation_peak[-1], 3) if activation_peak else None,
        "tflops_per_step": round(flops_per_step / 1e12, 4), "achieved_tflops": round(achieved, 3),
        "mfu": round(achieved / peak, 4) if peak else None, "peak_tflops": peak,
        "loss": loss.item(), "torch": torch.__version__,
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
