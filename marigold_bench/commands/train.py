"""``marigold-bench train --config FILE [--resume DIR]``: the training module's command."""

from __future__ import annotations

import math


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a Marigold depth model (SD-v2 fine-tuning, or the tiny CPU recipe)",
        description="Train according to a YAML config (see configs/tiny.yaml and configs/marigold-sd2.yaml). "
                    "Checkpoints, metrics.csv and validation runs go to the config's output_dir; the "
                    "result is exported as a diffusers MarigoldDepthPipeline.")
    p.add_argument("--config", required=True, help="training config (YAML)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="run folder (its latest checkpoint) or checkpoint folder to continue from; "
                        "the config must match the one it was made with")
    p.set_defaults(func=run)


def run(args) -> int:
    from marigold_bench.train.config import load_config
    from marigold_bench.train.trainer import train

    cfg = load_config(args.config)
    command = f"marigold-bench train --config {args.config}" + (f" --resume {args.resume}" if args.resume else "")
    result = train(cfg, resume=args.resume, command=command)
    best = result["best"]
    print(f"trained {result['steps']} steps in {result['wall_s'] / 60:.1f} min; output: {result['output_dir']}")
    if best["step"] is not None and math.isfinite(best["abs_rel"]):
        print(f"best validation AbsRel {best['abs_rel']:.4f} at step {best['step']}")
    if result.get("export_dir"):
        print(f"exported MarigoldDepthPipeline: {result['export_dir']}")
    return 0
