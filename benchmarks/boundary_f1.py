"""What boundary F1 and MoGe's protocol cost on one frame, beside the rest of its scoring.

Issue 12 asks that boundary F1 never take more than the rest of a frame's scoring at ETH3D's
size. This times, in one process and in turns, on one synthetic frame with a smooth depth field
and sharp steps (so both maps have edges):

* **marigold scoring**: `align_and_score` under ``--protocol marigold`` (fit, clip, ten metrics);
* **moge scoring**: the same under ``--protocol moge`` without boundary F1;
* **boundary F1** at radius 1, 2 and 3 on the aligned map (`marigold_bench.eval.boundary`).

Each figure is the median of ``--repeats`` calls; ratios are against marigold scoring of the
same frame in the same process.

    python benchmarks/boundary_f1.py                      # ETH3D size, 4032x6048
    python benchmarks/boundary_f1.py --size 480x640 --json out.jsonl
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from marigold_bench.data.protocol import get_protocol
from marigold_bench.eval.boundary import boundary_f1
from marigold_bench.eval.protocols import resolve_scoring
from marigold_bench.eval.scoring import align_and_score


def frame(height: int, width: int, seed: int = 0):
    """Ground truth with two depth steps, a noisy affine prediction of it, ~10 % invalid."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 2.0 + 3.0 * rows / height
    depth[:, width // 3:] += 4.0
    depth[height // 2:, 2 * width // 3:] -= 1.5
    pred = (0.3 * depth + 0.1 + rng.normal(0, 0.02, depth.shape)).astype(np.float32)
    valid = rng.random(depth.shape) > 0.1
    return pred, depth.astype(np.float32), valid


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="4032x6048", help="HxW of the frame (default: ETH3D's)")
    parser.add_argument("--dataset", default="eth3d", help="benchmark whose range and fit resolution apply")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="append the result as one JSON line")
    args = parser.parse_args()

    height, width = (int(s) for s in args.size.lower().split("x"))
    pred, depth, valid = frame(height, width)
    dataset = get_protocol(args.dataset)
    marigold = resolve_scoring(dataset, "marigold")
    moge = resolve_scoring(dataset, "moge", boundary_f1=0)
    record = align_and_score("frame", pred, depth, valid, marigold)
    aligned = pred * record["scale"] + record["shift"]

    result = {"size": args.size, "dataset": args.dataset, "repeats": args.repeats,
              "python": platform.python_version(), "machine": platform.machine()}
    result["marigold_scoring_s"] = median_time(lambda: align_and_score("f", pred, depth, valid, marigold), args.repeats)
    result["moge_scoring_s"] = median_time(lambda: align_and_score("f", pred, depth, valid, moge), args.repeats)
    for radius in (1, 2, 3):
        result[f"boundary_f1_r{radius}_s"] = median_time(lambda: boundary_f1(aligned, depth, valid, radius),
                                                         args.repeats)
    base = result["marigold_scoring_s"]
    for key in ("moge_scoring_s", "boundary_f1_r1_s", "boundary_f1_r2_s", "boundary_f1_r3_s"):
        result[key.removesuffix("_s") + "_ratio"] = result[key] / base
    for key, value in result.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
