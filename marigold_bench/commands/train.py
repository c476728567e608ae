"""``marigold-bench train --config FILE [--task depth|normals] [--resume DIR]``: the training module's command."""

from __future__ import annotations

import math


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a Marigold depth model (SD-v2 fine-tuning, or the tiny CPU recipe)",
        description="Train according to a YAML config (see configs/tiny.yaml and configs/marigold-sd2.yaml). "
                    "Checkpoints, metrics.csv and validation runs go to the config's output_dir; the "
                    "result is exported as a diffusers MarigoldDepthPipeline.")
    p.add_argument("--config", required=True, help="training config (YAML)")
    p.add_argument("--task", choices=("depth", "normals"), default=None,
                   help="what to train, overriding the config's task key (default: the config's, else depth); "
                        "normals: Marigold's surface-normals recipe, exported as a MarigoldNormalsPipeline")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="run folder (its latest checkpoint) or checkpoint folder to continue from; "
                        "the config must match the one it was made with")
    p.set_defaults(func=run)


def run(args) -> int:
    from marigold_bench.train.config import load_config
    from marigold_bench.train.trainer import train

    task = getattr(args, "task", None)
    cfg = load_config(args.config, task)
    command = (f"marigold-bench train --config {args.config}" + (f" --task {task}" if task else "")
               + (f" --resume {args.resume}" if args.resume else ""))
    result = train(cfg, resume=args.resume, command=command)
    best = result["best"]
    print(f"trained {result['steps']} steps in {result['wall_s'] / 60:.1f} min; output: {result['output_dir']}")
    if best["step"] is not None and math.isfinite(best.get("abs_rel", math.inf)):
        print(f"best validation AbsRel {best['abs_rel']:.4f} at step {best['step']}")
    if best["step"] is not None and math.isfinite(best.get("mean_angular_error", math.inf)):
        print(f"best validation mean angular error {best['mean_angular_error']:.2f} deg at step {best['step']}")
    if result.get("export_dir"):
        kind = "MarigoldNormalsPipeline" if cfg.task == "normals" else "MarigoldDepthPipeline"
        print(f"exported {kind}: {result['export_dir']}")
    return 0
