"""Transformers depth models: our adapter against ``transformers.pipeline("depth-estimation")``.

    python benchmarks/models.py                          # small random DPT and Depth Anything, CPU
    python benchmarks/models.py --full-size --precision fp16 --device cuda --images 32 --batch-size 16
                                                         # DPT-large and Depth Anything v2-L sizes

Both sides run the same saved checkpoint folder (random weights built offline from a config,
saved with its image processor, loaded back by each side from disk), on the same images, device,
precision and thread count, in one process, so the ratio is the number to read:

* ``pipeline``: ``pipeline("depth-estimation", model=folder)`` called on the list of images, as
  its documentation shows (one image per forward pass; ``--pipeline-batch`` also times it with
  ``batch_size=B``);
* ``ours``: `TransformersDepthPredictor.predict` on the same list (images of one processed
  size share a forward pass, ``--batch-size`` at a time) followed by ``merge`` to the input size,
  i.e. the same maps ``pipeline`` returns as ``predicted_depth``.

The maps are compared too (worst difference relative to the pipeline's range), so a faster
path that computed something else would show. The two sides run in turn, ``--repeats`` rounds
after one warm-up each; times are medians, the speed-up is the median of the per-round ratios
(robust to a shared machine's load drifting during the run). Prints a table and one JSON line (``--json FILE`` appends it).

Configurations (random weights; the sizes are what matters for speed):

* default, ``dpt-small`` and ``depth-anything-small``: "small but not tiny" (a 6-layer ViT of
  width 192 / 256 at 384 / 518 input as the real processors resize), a few seconds per batch on a
  laptop CPU;
* ``--full-size``: ``dpt-large`` (``Intel/dpt-large``'s config: ViT-L/16 at 384x384) and
  ``depth-anything-v2-large`` (``depth-anything/Depth-Anything-V2-Large-hf``: DINOv2 ViT-L/14 at
  518, aspect ratio kept), meant for a GPU in fp16.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def dinov2(hidden: int, layers: int, heads: int, out_indices: list[int]):
    from transformers import Dinov2Config

    return Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, mlp_ratio=4,
                        image_size=518, patch_size=14, out_indices=out_indices, reshape_hidden_states=False,
                        apply_layernorm=True)


def build(kind: str):
    """(model, image processor) of a named configuration, random weights."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTConfig, DPTForDepthEstimation
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    # DPT-large's processor: a fixed 384x384 input, bicubic, mean/std 0.5
    dpt_processor = dict(size={"height": 384, "width": 384}, keep_aspect_ratio=False, ensure_multiple_of=1,
                         resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    # Depth Anything v2's: 518 on the short side, aspect ratio kept, multiple of 14
    da_processor = dict(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                        resample=3, do_pad=False, **IMAGENET)
    if kind == "dpt-large":
        # Intel/dpt-large's config.json: ViT-L/16 at 384, taps after blocks 6, 12, 18, 24
        config = DPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           image_size=384, patch_size=16, backbone_out_indices=[5, 11, 17, 23],
                           neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256, readout_type="project")
        model, processor = DPTForDepthEstimation(config), DPTImageProcessorPil(**dpt_processor)
    elif kind == "dpt-small":
        config = DPTConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
                           image_size=384, patch_size=16, backbone_out_indices=[1, 3, 4, 5],
                           neck_hidden_sizes=[48, 96, 192, 192], fusion_hidden_size=64)
        model, processor = DPTForDepthEstimation(config), DPTImageProcessorPil(**dpt_processor)
    elif kind == "depth-anything-v2-large":
        # depth-anything/Depth-Anything-V2-Large-hf's config.json: DINOv2 ViT-L/14, DPT head of width 256
        config = DepthAnythingConfig(backbone_config=dinov2(1024, 24, 16, [5, 12, 18, 24]), patch_size=14,
                                     reassemble_hidden_size=1024, neck_hidden_sizes=[256, 512, 1024, 1024],
                                     fusion_hidden_size=256, head_hidden_size=32)
        model, processor = DepthAnythingForDepthEstimation(config), DPTImageProcessorPil(**da_processor)
    elif kind == "depth-anything-small":
        config = DepthAnythingConfig(backbone_config=dinov2(256, 6, 4, [2, 3, 5, 6]), patch_size=14,
                                     reassemble_hidden_size=256, neck_hidden_sizes=[32, 64, 128, 256],
                                     fusion_hidden_size=32, head_hidden_size=16)
        model, processor = DepthAnythingForDepthEstimation(config), DPTImageProcessorPil(**da_processor)
    else:
        raise SystemExit(f"unknown configuration {kind!r}")
    vary(model)
    return model.eval(), processor


@torch.no_grad()
def vary(model) -> None:
    """He-initialise the convolutions and lift the last bias: a random head's ReLU otherwise
    outputs ~0 everywhere, and the agreement check would compare zeros."""
    generator = torch.Generator().manual_seed(0)
    last = None
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                * (2.0 / module.weight[0].numel()) ** 0.5)
            if module.bias is not None:
                module.bias.zero_()
            last = module
    if last is not None and last.bias is not None:
        last.bias.fill_(0.5)


def images(count: int, height: int, width: int) -> list[np.ndarray]:
    """Smooth random RGB images (a coarse random grid, bicubically enlarged), seeded."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        coarse = rng.integers(0, 256, size=(max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
        out.append(np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC)))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_pair(first, second, device, repeats: int):
    """Median seconds of ``first`` and of ``second``, and the median of their per-round ratio,
    over ``repeats`` rounds after one warm-up of each, run in turn (first, second, first, ...):
    on a shared machine the load drifts, and alternating puts both sides under the same drift."""
    results = [first(), second()]
    sync(device)
    times = ([], [])
    for _ in range(repeats):
        for k, fn in enumerate((first, second)):
            t0 = time.perf_counter()
            results[k] = fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    ratio = statistics.median(a / b for a, b in zip(*times))
    return statistics.median(times[0]), statistics.median(times[1]), ratio, results


def bench_one(kind: str, args, rgbs: list[np.ndarray], folder: Path) -> dict:
    from PIL import Image
    from transformers import pipeline

    from marigold_bench.inference.predictor import PRECISIONS, resolve_device
    from marigold_bench.inference.transformers_depth import TransformersDepthPredictor

    model, processor = build(kind)
    params = sum(p.numel() for p in model.parameters())
    path = folder / kind
    model.save_pretrained(path)
    processor.save_pretrained(path)
    del model

    device = resolve_device(args.device)
    dtype = PRECISIONS[args.precision]
    ours = TransformersDepthPredictor.from_pretrained(str(path), batch_size=args.batch_size, precision=args.precision,
                                                      device=args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = pipeline("depth-estimation", model=str(path), device=device, dtype=dtype)
    pil = [Image.fromarray(x) for x in rgbs]
    jobs = [(f"img{i}", x, [0]) for i, x in enumerate(rgbs)]

    def run_ours():
        members = ours.predict(jobs)
        return [ours.merge(m, x.shape[:2])[0] for m, x in zip(members, rgbs)]

    def run_pipeline(batch_size=None):
        with torch.inference_mode():
            kwargs = {} if batch_size is None else {"batch_size": batch_size}
            return [o["predicted_depth"].float().cpu().numpy() for o in pipe(pil, **kwargs)]

    t_pipe, t_ours, ratio, (ref, mine) = timed_pair(run_pipeline, run_ours, device, args.repeats)
    span = max(float(r.max() - r.min()) for r in ref) or 1.0
    worst = max(float(np.abs(np.squeeze(r) - m).max()) for r, m in zip(ref, mine)) / span
    result = {"config": kind, "params_m": round(params / 1e6, 2), "images": len(rgbs),
              "image_size": f"{rgbs[0].shape[0]}x{rgbs[0].shape[1]}", "batch_size": ours._batch(),
              "pipeline_s_per_image": t_pipe / len(rgbs), "ours_s_per_image": t_ours / len(rgbs),
              "speedup": ratio, "worst_diff_rel_range": worst}
    if args.pipeline_batch:
        t_pipe_b, t_ours_b, ratio_b, _ = timed_pair(lambda: run_pipeline(ours._batch()), run_ours, device, args.repeats)
        result["pipeline_batched_s_per_image"] = t_pipe_b / len(rgbs)
        result["speedup_vs_batched_pipeline"] = ratio_b
    del ours, pipe
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def environment(device: str) -> dict:
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
           "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=None,
                   help="comma-separated: dpt-small, depth-anything-small, dpt-large, depth-anything-v2-large "
                        "(default: the two small ones; with --full-size the two large ones)")
    p.add_argument("--full-size", action="store_true", help="DPT-large and Depth Anything v2-L sizes (for a GPU)")
    p.add_argument("--images", type=int, default=8, help="images per timed run")
    p.add_argument("--size", default="480x640", help="input image size HxW (NYU: 480x640)")
    p.add_argument("--batch-size", type=int, default=0, help="our images per forward pass (0 = the adapter's auto)")
    p.add_argument("--pipeline-batch", action="store_true",
                   help="also time the pipeline with batch_size = our batch size")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="append the JSON line to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kinds = (args.configs.split(",") if args.configs else
             ["dpt-large", "depth-anything-v2-large"] if args.full_size else ["dpt-small", "depth-anything-small"])
    height, width = (int(v) for v in args.size.lower().split("x"))
    rgbs = images(args.images, height, width)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            results.append(bench_one(kind, args, rgbs, Path(tmp)))
            r = results[-1]
            print(f"{r['config']:<26} {r['params_m']:>7.1f}M  pipeline {r['pipeline_s_per_image'] * 1e3:8.1f} ms/img  "
                  f"ours {r['ours_s_per_image'] * 1e3:8.1f} ms/img (batch {r['batch_size']})  "
                  f"x{r['speedup']:.2f}  worst diff {r['worst_diff_rel_range']:.1e} of range"
                  + (f"  | pipeline batch_size={r['batch_size']}: {r['pipeline_batched_s_per_image'] * 1e3:.1f} ms/img, "
                     f"ours x{r['speedup_vs_batched_pipeline']:.2f}" if "pipeline_batched_s_per_image" in r else ""),
                  flush=True)
    record = {"benchmark": "models", "argv": sys.argv[1:] if argv is None else list(argv),
              "precision": args.precision, "repeats": args.repeats, "environment": environment(args.device),
              "results": results}
    line = json.dumps(record)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
