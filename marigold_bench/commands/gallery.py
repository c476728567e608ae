"""``marigold-bench gallery``: a finished run's best, median and worst samples in one figure.

Each row is one sample: the input, the ground truth, the prediction aligned as the run scored it,
and its absolute relative error (:func:`marigold_bench.report.plots.depth_gallery`). Nothing is
predicted: the run's ``predictions.h5`` and the benchmark's ground truth are read back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from marigold_bench.errors import BenchError

#: Extensions the figure is written with; ``--out`` may name either, or none.
_EXTENSIONS = (".png", ".pdf")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``gallery`` on the CLI's sub-command parsers."""
    p = subparsers.add_parser(
        "gallery", help="figure of a run's best, median and worst samples",
        description="Draws input, ground truth, aligned prediction and AbsRel error for K samples of a "
                    "finished run, spread evenly over its AbsRel ranking (best first, worst last), as a "
                    "PNG and a PDF. Reads the run's predictions.h5; nothing is predicted.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `marigold-bench run`")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="figure path (.png or .pdf; both are written; default RUN_DIR/gallery.png)")
    p.add_argument("--n", type=int, default=3, metavar="K", help="samples to show (default 3: best, median, worst)")
    p.add_argument("--samples", default=None, metavar="ID,...", help="show these sample ids instead")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where the benchmark's data lies (default: the root the run recorded)")
    p.set_defaults(func=run)
    return p


def out_base(run_dir: Path, out: str | None) -> Path:
    """The figure's path without extension: ``--out`` less a .png/.pdf ending, or RUN_DIR/gallery."""
    if out is None:
        return run_dir / "gallery"
    path = Path(out)
    return path.with_suffix("") if path.suffix.lower() in _EXTENSIONS else path


def _refuse_other_tasks(run_dir: Path) -> None:
    """The gallery draws depth (input, prediction, ground truth, error): a run of another task
    is refused in its own words, before its data is opened."""
    import json

    try:
        task = json.loads((run_dir / "summary.json").read_text(encoding="utf-8")).get("task", "depth")
    except (OSError, ValueError):
        return  # the reader below names what is wrong with the file
    if task != "depth":
        raise BenchError(f"{run_dir} is a {task} run; the gallery draws depth runs only "
                         "(`marigold-bench predict` writes a normals model's pictures)")


def check_figure_paths(base: Path, what: str) -> None:
    """Refuse, before any prediction is read, a figure that cannot be written: either file
    (``.png``, ``.pdf``) a folder or read-only, or their folder under a file or unwritable (a
    read-only run directory, for the default)."""
    from marigold_bench.eval.outdir import check_writable_file

    if base.is_dir():  # `--out figs` meant into figs, not figs.png beside it
        raise BenchError(f"{what} {base} is a folder; give a file name such as {base / 'gallery.png'}")
    for ext in _EXTENSIONS:
        check_writable_file(f"{base}{ext}", what)


def run(args: argparse.Namespace) -> int:
    """Run ``gallery``: write the figure and say where."""
    from marigold_bench.report.plots import depth_gallery

    run_dir = Path(args.run_dir)
    if not (run_dir / "summary.json").is_file():
        raise BenchError(f"{run_dir}: no summary.json; give a directory that `marigold-bench run` finished")
    if args.n < 1:
        raise BenchError(f"--n must be >= 1, got {args.n}")
    _refuse_other_tasks(run_dir)
    base = out_base(run_dir, args.out)
    check_figure_paths(base, "--out" if args.out else "the default --out")
    samples = [s.strip() for s in args.samples.split(",") if s.strip()] if args.samples else None
    paths = depth_gallery(str(run_dir), str(base), sample_ids=samples, data_root=args.data_root, k=args.n)
    print(f"wrote {' and '.join(str(p) for p in paths)}")
    return 0


__all__ = ["add_parser", "run", "out_base"]
