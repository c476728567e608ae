"""``marigold-bench run``: predict with a model, cache, align, score and write a run directory."""

from __future__ import annotations

import os

from marigold_bench.commands.common import add_inference_flags, build_predictor, default_run_dir, summary_table
from marigold_bench.data import DATASETS, get_protocol, load_dataset
from marigold_bench.errors import BenchError
from marigold_bench.eval.outdir import check_run_dir
from marigold_bench.eval.protocols import ALIGNMENTS, EVALUATION_PROTOCOLS, get_evaluation_protocol, resolve_scoring
from marigold_bench.output_spaces import DEPTH_AFFINE, OUTPUT_SPACES


def add_dataset_flags(p) -> None:
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-root", default=None, help="official download base folder, the "
                   "benchmark's folder or its .tar (default: $MARIGOLD_DATA)")
    p.add_argument("--split", default=None, help="split name or split file (default: the test split)")
    p.add_argument("--max-samples", type=int, default=None, help="only the first N samples")
    p.add_argument("--skip-missing", action="store_true",
                   help="record samples with missing/corrupt files as skipped instead of stopping")
    p.add_argument("--fit-space", choices=("depth", "disparity"), default=None,
                   help="override the space the prediction is fitted in (default: disparity for "
                        "disparity output, else depth)")
    add_scoring_flags(p)
    p.add_argument("--score-device", default="auto",
                   help="where alignment and metrics run: auto (run: the model's CUDA GPU if it has "
                        "one, else the CPU; evaluate: the CPU), cpu, cuda or cuda:N; the numbers agree "
                        "to float64 round-off")


def add_scoring_flags(p, protocol_help: str | None = None) -> None:
    """--protocol, --alignment, --output-space and --boundary-f1 (see eval/protocols.py)."""
    p.add_argument("--protocol", default="marigold", metavar="P",
                   help=protocol_help or f"evaluation protocol: {', '.join(EVALUATION_PROTOCOLS)} "
                        "(see `marigold-bench protocols`)")
    p.add_argument("--alignment", default=None, metavar="A",
                   help=f"{' | '.join(ALIGNMENTS)} (default: what the protocol does for the output space)")
    p.add_argument("--output-space", default=None, choices=OUTPUT_SPACES, metavar="S",
                   help=f"what the predictions mean: {' | '.join(OUTPUT_SPACES)} (default: what the "
                        "model declares; evaluate: depth_affine_invariant)")
    p.add_argument("--boundary-f1", type=int, default=None, metavar="R",
                   help="add a boundary-F1 column of radius R (1, 2 or 3; 0: none; default: the "
                        "protocol's choice, moge: 1 where the ground truth is sharp)")


def scoring_for(args, dataset, output_space: str | None = None):
    """The resolved scoring of the flags for ``dataset``; ``output_space`` is the model's
    declared one (``--output-space`` overrides it, and the override is recorded)."""
    return resolve_scoring(dataset.protocol, args.protocol,
                           output_space=args.output_space or output_space or DEPTH_AFFINE,
                           alignment=args.alignment, fit_space=args.fit_space,
                           boundary_f1=args.boundary_f1,
                           declared_output_space=output_space if args.output_space else None)


def declared_output_space(predictor) -> str | None:
    """What a predictor's model declares before any ``--output-space`` override (a transformers
    predictor built with the override records its own declaration separately)."""
    settings = predictor.settings
    return (settings.get("declared_output_space") or getattr(predictor, "output_space", None)
            or settings.get("output_space"))


def check_scoring_names(args) -> None:
    """Refuse an unknown --protocol or --alignment (listing the known ones) early."""
    get_evaluation_protocol(args.protocol)
    if args.alignment is not None and args.alignment not in ALIGNMENTS:
        raise BenchError(f"unknown alignment {args.alignment!r}; known alignments: {', '.join(ALIGNMENTS)}")


def open_dataset(args):
    if args.max_samples is not None and args.max_samples < 1:  # before any data is opened
        raise BenchError(f"--max-samples {args.max_samples}: give a number of samples, at least 1")
    protocol = get_protocol(args.dataset)
    if args.fit_space:
        protocol = protocol.replace(fit_space=args.fit_space)
    return load_dataset(args.dataset, args.data_root, args.split, protocol=protocol).subset(args.max_samples)


def refuse_empty(summary: dict, out: str) -> None:
    """A run or evaluation that scored no sample is not a success (its means are NaN): exit 2,
    with per_sample.csv, which says why each sample was not scored, left in ``out``."""
    if summary.get("n", 0) == 0:
        counts = ", ".join(f"{summary.get(k, 0)} {what}" for k, what in
                           (("n_failed", "failed"), ("n_skipped", "skipped"), ("n_no_valid", "without a valid pixel")))
        raise BenchError(f"no sample was scored ({counts}); see {os.path.join(out, 'per_sample.csv')}")


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
    p.add_argument("--uncertainty", action="store_true",
                   help="also score the ensemble spread by sparsification (AUSE, AURG; needs --ensemble 2 or "
                        "more): uncertainty.csv, summary.json's uncertainty entry, sparsification.png")
    p.set_defaults(func=run)


def run(args) -> int:
    from marigold_bench.eval.loop import run_predictor

    dataset = open_dataset(args)
    check_run_dir(args.out, dataset)  # a file, unwritable, another command's or a fuller run's folder
    check_scoring_names(args)  # before a model is loaded
    if getattr(args, "uncertainty", False) and args.ensemble < 2:
        raise BenchError(f"--uncertainty needs an ensemble: --ensemble {args.ensemble} gives one member per "
                         "image, so there is no spread to rank pixels by (use --ensemble 2 or more)")
    predictor = build_predictor(args, processing_res=dataset.protocol.processing_res)
    scoring = scoring_for(args, dataset, declared_output_space(predictor))
    out = args.out or default_run_dir(args.dataset, predictor.settings)
    summary = run_predictor(dataset, predictor, out, skip_missing=args.skip_missing,
                            images_per_batch=args.images_per_batch, workers=args.workers,
                            score_device=args.score_device, scoring=scoring)
    if int(os.environ.get("RANK", "0")) == 0:  # one table per launch, not one per process
        print(summary_table(summary))
        print(f"run directory: {out}")
    refuse_empty(summary, out)
    if getattr(args, "uncertainty", False) and int(os.environ.get("RANK", "0")) == 0:
        from marigold_bench.commands.rescore import score_uncertainty
        from marigold_bench.eval.rescore import open_run

        cached = open_run(out, args.data_root, args.split)
        try:
            score_uncertainty(cached, scoring, out)
        finally:
            cached.close()
    return 0
