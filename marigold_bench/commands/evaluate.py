"""``marigold-bench evaluate``: score predictions made by any model under the same protocol."""

from __future__ import annotations

from marigold_bench.commands.common import summary_table
from marigold_bench.commands.run import add_dataset_flags, open_dataset, scoring_for


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score existing predictions (.npy/.png per id, or .h5)")
    add_dataset_flags(p)
    p.add_argument("--predictions", required=True, help="folder of <id>.npy/<id>.png or an .h5 file")
    p.add_argument("--out", default=None, help="where per_sample.csv and summary.json go "
                   "(default: <predictions>_eval)")
    p.set_defaults(func=run)


def run(args) -> int:
    from marigold_bench.eval.evaluator import evaluate_source
    from marigold_bench.eval.predictions import PredictionSource

    dataset = open_dataset(args)
    scoring = scoring_for(args, dataset)  # --output-space, default depth_affine_invariant
    source = PredictionSource(args.predictions)
    out = args.out or args.predictions.rstrip("/").removesuffix(".h5") + "_eval"
    try:
        summary = evaluate_source(dataset, source, out, skip_missing=args.skip_missing,
                                  score_device=args.score_device, scoring=scoring)
    finally:
        source.close()
    print(summary_table(summary))
    print(f"results: {out}")
    return 0
