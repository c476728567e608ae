"""``marigold-bench table``: a paper-style table (Markdown, LaTeX, CSV) from run directories.

Rows say how they were scored (output space, alignment); see :mod:`marigold_bench.report.tables`.
"""

from __future__ import annotations

import os
import sys

from marigold_bench.errors import BenchError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "table", help="paper-style table from run directories",
        description="Rows are model settings, column groups are datasets (AbsRel and δ1 ×100 by "
                    "default); runs with equal settings on different datasets share a row, the best "
                    "value per column among rows scored alike is bold, and a run with failed or skipped samples shows (n/total).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or their summary.json)")
    p.add_argument("--format", choices=("md", "latex", "csv"), default="md")
    p.add_argument("--reference", action="store_true",
                   help="add the published rows of the bundled reference.csv (papers), marked as quoted")
    p.add_argument("--metrics", default="abs_rel,delta1",
                   help="comma-separated metric keys; runs of another task get their own table with that "
                        "task's keys from this list, else its defaults (normals: mean_angle, median_angle, "
                        "pct_11_25, pct_30)")
    add_subset_flag(p)
    p.add_argument("--digits", type=int, default=1,
                   help="decimals of percentages (metres and log errors get two more)")
    p.add_argument("--out", default=None,
                   help="write the table to this file instead of printing it (its folder is made where missing)")
    p.set_defaults(func=run)


def add_subset_flag(p) -> None:
    """``--diode-subsets``: which DIODE columns a run that records its subsets fills."""
    p.add_argument("--diode-subsets", default="all,indoor,outdoor",
                   help="DIODE columns for runs that record their subsets: any of all, indoor, "
                        "outdoor (default: all three; papers quote either the full set or one half)")


def parse_metrics_and_digits(args) -> list[str]:
    """``--metrics`` as a list of keys, with ``--metrics`` and ``--digits`` checked (the flags of
    every command that prints metrics as papers do: table, leaderboard, export)."""
    metrics = parse_metrics(args.metrics)
    if args.digits < 0:
        raise BenchError("--digits must be >= 0")
    return metrics


def parse_metrics(text: str) -> list[str]:
    """``--metrics`` as a list of known metric keys (table, leaderboard, export, compare): an
    empty list or an unknown key is refused before any run is read or started."""
    from marigold_bench.tasks import METRICS

    metrics = [m.strip() for m in text.split(",") if m.strip()]
    if not metrics:
        raise BenchError("--metrics is empty")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise BenchError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    return metrics


def parse_subsets(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _write(path: str, text: str) -> None:
    """``text`` to ``path``, its folder made where missing (as gallery and regress --update make
    theirs), atomically: a full disk leaves an earlier table as it was."""
    from marigold_bench.eval.outdir import atomic_write

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic_write(path, text)


def run(args) -> int:
    from marigold_bench.report.rundir import load_run
    from marigold_bench.report.tables import build_tables, render

    metrics = parse_metrics_and_digits(args)
    if args.out:
        from marigold_bench.eval.outdir import check_writable_file

        check_writable_file(args.out)  # a folder, under a file, read-only: said before any run is read
    # one table per task (depth, normals): each with the --metrics of its task, else its defaults
    tables = build_tables([load_run(path) for path in args.runs], metrics, reference=args.reference,
                          subsets=parse_subsets(args.diode_subsets))
    for table in tables:
        for note in table.identity_notes:  # also under the table; said here for logs and CI
            print(f"warning: {note}", file=sys.stderr)
    text = "\n".join(render(table, args.format, digits=args.digits).rstrip("\n") + "\n" for table in tables)
    text = text if text.endswith("\n") else text + "\n"  # a shell prompt never joins the last line
    if args.out:
        _write(args.out, text)
        print(f"table written to {args.out}")
    else:
        print(text, end="")
    return 0
