"""Normals inference speed: our MarigoldNormalsPredictor against diffusers' MarigoldNormalsPipeline,
in one process, and the cost of scoring one NYU-size normals frame.

    python benchmarks/normals_inference.py --threads 1 --repeats 5     # bundled tiny-normals, CPU

Measurements, each on the same modules (the pipeline's, shared with our predictor), image size,
steps, N and batch size:

1. ``predict``: K images, N members each, ensembling ``closest`` with uncertainty: the pipeline
   (one call with the list of images) against ours (``predict`` + ``merge`` per image).
2. ``n-sweep``: results for N = 1..10 from one N=10 prediction (members reused, re-merged)
   against ten separate runs, one per N.
3. ``ensemble``: diffusers' ``ensemble_normals`` against ours at N=10 on the same members.
4. ``scoring``: `marigold_bench.eval.normals.per_image_metrics` on a 480x640 frame (NYUv2's).

Every timing is the median of ``--repeats`` runs after one warm-up; the sides take turns within a
repeat. Prints a table and one JSON line (``--json FILE`` appends it to a file).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import parse_size, timed  # noqa: E402  (the depth benchmark's helpers)

from marigold_bench.inference.normals import MarigoldNormalsPredictor  # noqa: E402
from marigold_bench.inference.normals_ensemble import ensemble_normals  # noqa: E402
from marigold_bench.inference.predictor import resolve_device  # noqa: E402

BUNDLED = Path(__file__).resolve().parents[1] / "marigold_bench" / "checkpoints" / "tiny-normals"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED), help="a normals checkpoint folder (default: tiny-normals)")
    parser.add_argument("--size", default="64x64", help="image HxW (or one number), processed natively")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--ensemble", type=int, default=10)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=0, help="0: what our auto picks; used for both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: predict,sweep,ensemble,scoring")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from diffusers import MarigoldNormalsPipeline
    from PIL import Image

    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    device = resolve_device(args.device)
    height, width = parse_size(args.size)
    n = args.ensemble
    pipe = MarigoldNormalsPipeline.from_pretrained(args.model).to(device)
    pipe.set_progress_bar_config(disable=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MarigoldNormalsPredictor.from_pipeline(pipe, model=args.model, steps=args.steps, processing_res=0,
                                                      ensemble=n, batch_size=args.batch_size, device=str(device))
    batch = ours._unet_batch(ours.latent_size(height, width))
    ours.batch_size = batch
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(args.images)]
    record = dict(model=Path(args.model).name, size=[height, width], steps=args.steps, ensemble=n,
                  images=args.images, batch_size=batch, device=str(device), device_name=platform.processor(),
                  threads=torch.get_num_threads(), torch=torch.__version__)
    rows = []

    def run_pipeline(members: int, image_list=images):
        return pipe([Image.fromarray(im) for im in image_list], num_inference_steps=args.steps,
                    ensemble_size=members, processing_resolution=0, batch_size=batch,
                    output_uncertainty=members > 1, generator=torch.Generator(device).manual_seed(0)).prediction

    def run_ours(members: int, image_list=images):
        raw = ours.predict([(f"img{i}", im, list(range(members))) for i, im in enumerate(image_list)])
        return [ours.merge(r, im.shape[:2]) for r, im in zip(raw, image_list)]

    if "predict" not in skip:
        (t_pipe, _), (t_ours, _) = timed([lambda: run_pipeline(n), lambda: run_ours(n)], device, args.repeats)
        k = len(images)
        record["predict"] = dict(diffusers_s_per_image=t_pipe / k, ours_s_per_image=t_ours / k, speedup=t_pipe / t_ours)
        rows.append((f"predict N={n}, {args.steps} steps (s/image)", t_pipe / k, t_ours / k))

    if "sweep" not in skip:
        image = images[:1]

        def reuse():
            (members,) = ours.predict([("sweep", image[0], list(range(10)))])
            return [ours.merge(members[:m], image[0].shape[:2]) for m in range(1, 11)]

        def separate_pipeline():
            return [run_pipeline(m, image) for m in range(1, 11)]

        (t_sep, _), (t_reuse, _) = timed([separate_pipeline, reuse], device, args.repeats)
        record["n_sweep"] = dict(diffusers_separate_s=t_sep, ours_reuse_s=t_reuse, speedup=t_sep / t_reuse)
        rows.append(("N-sweep 1..10, one image (s)", t_sep, t_reuse))

    if "ensemble" not in skip:
        (members,) = ours.predict([("img0", images[0], list(range(10)))])
        tensor = torch.from_numpy(members)
        (t_theirs, (ref, _)), (t_mine, (mine, _)) = timed(
            [lambda: MarigoldNormalsPipeline.ensemble_normals(tensor.clone(), True, reduction="closest"),
             lambda: ensemble_normals(tensor, "closest")], torch.device("cpu"), args.repeats)
        record["ensembling"] = dict(members=10, diffusers_s=t_theirs, ours_s=t_mine, speedup=t_theirs / t_mine,
                                    max_abs_diff=float((mine - ref[0]).abs().max()))
        rows.append((f"ensemble_normals N=10 at {height}x{width} (s)", t_theirs, t_mine))

    if "scoring" not in skip:
        from marigold_bench.eval.normals import per_image_metrics

        def unit(a):
            return a / np.linalg.norm(a, axis=0, keepdims=True)

        frame = np.random.default_rng(1)
        pred = unit(frame.normal(size=(3, 480, 640)).astype(np.float32))
        gt = unit(pred + 0.2 * frame.normal(size=(3, 480, 640)).astype(np.float32))
        gt[:, :40] = 0   # a band without ground truth, as NYU's border
        ((t_score, _),) = timed([lambda: per_image_metrics(pred, gt)], torch.device("cpu"), args.repeats)
        record["scoring_480x640_s"] = t_score
        rows.append(("per_image_metrics, one 480x640 frame (s)", None, t_score))

    print(f"\n{record['model']} {height}x{width}, {args.steps} steps, N={n}, batch {batch}, fp32 on "
          f"{record['device_name'] or device} ({record['threads']} threads)")
    print(f"{'measurement':<46}{'diffusers':>12}{'ours':>12}{'ratio':>9}")
    for name, theirs, mine in rows:
        ratio = f"{theirs / mine:8.2f}x" if theirs else ""
        print(f"{name:<46}{'' if theirs is None else f'{theirs:.4f}':>12}{mine:>12.4f}{ratio:>9}")
    line = json.dumps(record)
    print(line)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
