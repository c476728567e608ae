"""``marigold-bench evaluate``: score predictions made by any model under the same protocol."""

from __future__ import annotations

import sys

from marigold_bench.commands.common import summary_table
from marigold_bench.commands.run import (add_dataset_flags, add_task_flags, check_scoring_names, open_dataset,
                                         refuse_empty, scoring_for)
from marigold_bench.errors import BenchError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score existing predictions (.npy/.png per id, or .h5)")
    add_dataset_flags(p)
    add_task_flags(p, "opengl, as Marigold and diffusers")
    p.add_argument("--predictions", required=True,
                   help="folder of <id>.npy/<id>.png or an .h5 file; normals: <id>.npy, 3xHxW or HxWx3 "
                        "(the official layout <scene>/<rgb stem>.npy is an id's path), or <id>.png in the "
                        "8-bit normals colouring, decoded as v / 255 * 2 - 1 (quantised; the summary says so)")
    p.add_argument("--out", default=None, help="where per_sample.csv and summary.json go "
                   "(default: <predictions>_eval)")
    p.set_defaults(func=run)


def run(args) -> int:
    from marigold_bench.eval.loop import evaluate_source
    from marigold_bench.eval.outdir import check_out
    from marigold_bench.eval.predictions import PredictionSource

    out = args.out or args.predictions.rstrip("/").removesuffix(".h5") + "_eval"
    check_out("evaluate", out)  # a file, unwritable, or a run's own folder: refused first
    task = args.task or "depth"
    check_scoring_names(args, task)
    dataset = open_dataset(args, task)
    # depth: --output-space, default depth_affine_invariant; normals: --frame, default opengl
    scoring = scoring_for(args, dataset, frame="opengl")
    source = PredictionSource(args.predictions, task)
    try:
        source.check_samples(dataset)
    except BenchError:
        source.close()
        raise
    if not any(source.has(sample_id) for sample_id in dataset.ids):
        source.close()
        # a wrong folder or naming scores nothing: say where we looked instead of NaN means
        raise BenchError(f"no prediction found for any of the {len(dataset.ids)} {args.dataset} samples "
                         f"in {args.predictions} (for the first, looked for {source.where(dataset.ids[0])})")
    try:
        summary = evaluate_source(dataset, source, out, skip_missing=args.skip_missing,
                                  score_device=args.score_device, scoring=scoring)
    finally:
        source.close()
    print(summary_table(summary))
    if summary["settings"].get("quantised"):  # also in summary.json; said here for logs
        print(f"warning: {summary['settings']['quantised']}", file=sys.stderr)
    print(f"results: {out}")
    refuse_empty(summary, out)
    return 0
