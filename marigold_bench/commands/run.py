"""``marigold-bench run``: predict with a model, cache, align, score and write a run directory."""

from __future__ import annotations

import os

from marigold_bench.commands.common import add_inference_flags, build_predictor, default_run_dir, summary_table
from marigold_bench.data import DATASETS, get_protocol, load_dataset


def add_dataset_flags(p) -> None:
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-root", default=None, help="official download base folder, the "
                   "benchmark's folder or its .tar (default: $MARIGOLD_DATA)")
    p.add_argument("--split", default=None, help="split name or split file (default: the test split)")
    p.add_argument("--max-samples", type=int, default=None, help="only the first N samples")
    p.add_argument("--skip-missing", action="store_true",
                   help="record samples with missing/corrupt files as skipped instead of stopping")
    p.add_argument("--fit-space", choices=("depth", "disparity"), default=None,
                   help="override the protocol's least-squares fit space")
    p.add_argument("--score-device", default="auto",
                   help="where alignment and metrics run: auto (run: the model's CUDA GPU if it has "
                        "one, else the CPU; evaluate: the CPU), cpu, cuda or cuda:N; the numbers agree "
                        "to float64 round-off")


def open_dataset(args):
    protocol = get_protocol(args.dataset)
    if args.fit_space:
        protocol = protocol.replace(fit_space=args.fit_space)
    return load_dataset(args.dataset, args.data_root, args.split, protocol=protocol).subset(args.max_samples)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a model on a benchmark and score it")
    add_dataset_flags(p)
    add_inference_flags(p)
    p.add_argument("--images-per-batch", type=int, default=0,
                   help="images whose members are predicted in one call (0 = auto: 1 on the CPU, "
                        "8 // N on a GPU)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that decode samples while the model runs (0 = in line)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<settings>)")
    p.set_defaults(func=run)


def run(args) -> int:
    from marigold_bench.eval.evaluator import run_predictor

    dataset = open_dataset(args)
    predictor = build_predictor(args, processing_res=dataset.protocol.processing_res)
    out = args.out or default_run_dir(args.dataset, predictor.settings)
    summary = run_predictor(dataset, predictor, out, skip_missing=args.skip_missing,
                            images_per_batch=args.images_per_batch, workers=args.workers,
                            score_device=args.score_device)
    if int(os.environ.get("RANK", "0")) == 0:  # one table per launch, not one per process
        print(summary_table(summary))
        print(f"run directory: {out}")
    return 0
