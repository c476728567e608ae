"""Inference speed: our MarigoldPredictor against diffusers' MarigoldDepthPipeline, in one process.

    python benchmarks/inference.py                                 # tiny model, CPU-friendly
    python benchmarks/inference.py --model sd2-size --size 480x640 --steps 1 --ensemble 10 \\
        --precision fp16 --device cuda                            # SD-v2-size random weights

Three measurements, each on the same modules, image size, steps, N, precision and batch size:

1. ``predict``: K images, N members each, through the pipeline (one call with the list of images,
   its own ensembling) and through ours (``predict`` + ``merge``); wall time per image.
2. ``ensemble``: diffusers' ``ensemble_depth`` against ours at N=10 on real members from (1).
3. ``n-sweep``: results for N = 1..10 from one N=10 prediction (members reused, re-merged)
   against ten separate runs, one per N.

Every timing is the median of ``--repeats`` runs after one warm-up run. Prints a table and one
JSON line (``--json FILE`` appends it to a file).
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

from marigold_bench.inference.ensemble import ensemble_depth
from marigold_bench.inference.predictor import PRECISIONS, MarigoldPredictor, resolve_device


def parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    return int(parts[0]), int(parts[1])


def build_pipeline(kind: str, device, dtype):
    if kind == "tiny":
        from marigold_bench.model.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=0)
        if dtype != torch.float32:
            pipe = pipe.to(dtype=dtype)
        return pipe.to(device)
    from marigold_bench.model.sd2_configs import build_sd2_size_pipeline

    return build_sd2_size_pipeline(device=device, dtype=dtype)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fns, device, repeats: int) -> list[tuple[float, object]]:
    """Median wall time of each of ``fns`` over ``repeats`` runs after a warm-up, and its last result.

    The functions take turns within each repeat, so that a change of machine load (shared CI
    runners, other users) hits all of them alike instead of biasing whichever ran last.
    """
    results = [fn() for fn in fns]
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            sync(device)
            start = time.perf_counter()
            results[i] = fn()
            sync(device)
            times[i].append(time.perf_counter() - start)
    return [(statistics.median(t), r) for t, r in zip(times, results)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "sd2-size"), default="tiny")
    parser.add_argument("--size", default="64x64", help="image HxW (or one number), processed natively")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--ensemble", type=int, default=10, help="N of the predict measurement")
    parser.add_argument("--images", type=int, default=2, help="images per predict measurement")
    parser.add_argument("--batch-size", type=int, default=0, help="0: what our auto picks; used for both")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: predict,ensemble,sweep")
    parser.add_argument("--json", default=None, help="append the JSON result line to this file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    device = resolve_device(args.device)
    dtype = PRECISIONS[args.precision]
    height, width = parse_size(args.size)
    n = args.ensemble

    print(f"building {args.model} pipeline on {device} ({args.precision}) ...", file=sys.stderr)
    pipe = build_pipeline(args.model, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MarigoldPredictor.from_pipeline(pipe, model=args.model, steps=args.steps, processing_res=0,
                                               ensemble=n, batch_size=args.batch_size, precision=args.precision,
                                               device=str(device))
    latent_hw = ours.latent_size(height, width)
    batch = ours._unet_batch(latent_hw)
    ours.batch_size = batch          # the same, explicit batch size on both sides
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(args.images)]

    record = dict(model=args.model, size=[height, width], steps=args.steps, ensemble=n, images=args.images,
                  batch_size=batch, precision=args.precision, device=str(device),
                  device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                  threads=torch.get_num_threads(), torch=torch.__version__)
    rows = []

    def run_pipeline(members: int):
        from PIL import Image

        # A fixed generator: the same members every call, so that diffusers' ensembling (whose
        # cost varies with the members through its line searches) costs the same every repeat.
        out = pipe([Image.fromarray(im) for im in images], num_inference_steps=args.steps, ensemble_size=members,
                   processing_resolution=0, batch_size=batch, output_uncertainty=members > 1,
                   generator=torch.Generator(device).manual_seed(0))
        return out.prediction

    def run_ours(members: int):
        jobs = [(f"img{i}", im, list(range(members))) for i, im in enumerate(images)]
        raw = ours.predict(jobs)
        return [ours.merge(r, im.shape[:2]) for r, im in zip(raw, images)], raw

    raw_members = None
    if "predict" not in skip:
        jobs = [(f"img{i}", im, list(range(n))) for i, im in enumerate(images)]
        (t_pipe, _), (t_ours, (_, raw_members)), (t_ours_predict, _) = timed(
            [lambda: run_pipeline(n), lambda: run_ours(n), lambda: ours.predict(jobs)], device, args.repeats)
        k = len(images)
        record["predict"] = dict(diffusers_s_per_image=t_pipe / k, ours_s_per_image=t_ours / k,
                                 ours_predict_only_s_per_image=t_ours_predict / k, speedup=t_pipe / t_ours)
        rows.append((f"predict N={n}, {args.steps} steps (s/image)", t_pipe / k, t_ours / k))
        rows.append(("  of which ours: model only", None, t_ours_predict / k))

    if "ensemble" not in skip:
        if raw_members is None:
            raw_members = ours.predict([("img0", images[0], list(range(10)))])
        members = raw_members[0]
        if members.shape[0] < 10:
            members = ours.predict([("img0", images[0], list(range(10)))])[0]
        members = members[:10]
        from diffusers import MarigoldDepthPipeline

        as_tensor = torch.from_numpy(members)[:, None]
        (t_theirs, (ref, _)), (t_mine, (mine, _)) = timed(
            [lambda: MarigoldDepthPipeline.ensemble_depth(as_tensor, output_uncertainty=True),
             lambda: ensemble_depth(members)], torch.device("cpu"), args.repeats)
        record["ensembling"] = dict(members=10, size=list(members.shape[1:]), diffusers_s=t_theirs, ours_s=t_mine,
                                  speedup=t_theirs / t_mine,
                                  max_abs_diff=float(np.abs(mine - ref[0, 0].numpy()).max()))
        rows.append((f"ensemble_depth N=10 at {members.shape[1]}x{members.shape[2]} (s)", t_theirs, t_mine))

    if "sweep" not in skip:
        image = images[0]

        def reuse():
            (members,) = ours.predict([("sweep", image, list(range(10)))])
            return [ours.merge(members[:m], image.shape[:2]) for m in range(1, 11)]

        def separate():
            return [ours.merge(ours.predict([("sweep", image, list(range(m)))])[0], image.shape[:2])
                    for m in range(1, 11)]

        (t_reuse, reused), (t_sep, fresh) = timed([reuse, separate], device, args.repeats)
        diff = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(reused, fresh))
        record["n_sweep"] = dict(reuse_s=t_reuse, separate_s=t_sep, speedup=t_sep / t_reuse, max_abs_diff=diff)
        rows.append(("N-sweep 1..10, one image (s)", t_sep, t_reuse))

    print(f"\n{args.model} {height}x{width}, {args.steps} steps, N={n}, batch {batch}, {args.precision} on "
          f"{record['device_name'] or device} ({record['threads']} threads)")
    print(f"{'measurement':<44}{'diffusers/separate':>20}{'ours':>12}{'ratio':>9}")
    for name, theirs, mine in rows:
        ratio = f"{theirs / mine:8.1f}x" if theirs else ""
        theirs_text = f"{theirs:.4f}" if theirs is not None else ""
        print(f"{name:<44}{theirs_text:>20}{mine:>12.4f}{ratio:>9}")
    line = json.dumps(record)
    print(line)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
