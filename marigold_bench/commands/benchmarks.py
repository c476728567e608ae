"""``marigold-bench benchmarks``: every benchmark ``--dataset`` accepts, and where it came from.

Lists the registry (:mod:`marigold_bench.data.registry`): the built-in benchmarks and those that
installed plugins (entry-point group ``marigold_bench.benchmarks``) and ``--include`` spec files
(``$MARIGOLD_BENCH_INCLUDE``) add, with each one's title, task, source layout, splits with their
sample counts, default crop and origin. A plugin that fails to load is a warning naming it.
"""

from __future__ import annotations

import argparse
import json
import math

from marigold_bench.errors import BenchError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``benchmarks`` on the CLI's sub-command parsers."""
    parser = subparsers.add_parser(
        "benchmarks", help="list the benchmarks (--dataset) with their source, splits and origin",
        description="List every benchmark: built-in ones and those that plugins (entry points) and "
                    "included spec files ($MARIGOLD_BENCH_INCLUDE) add. Never downloads.")
    parser.add_argument("--json", action="store_true", help="one JSON object per benchmark, in a list")
    parser.add_argument("--format", choices=("text", "md"), default=None,
                        help="text (a table for the terminal) or md (GitHub Markdown)")
    parser.set_defaults(func=run)
    return parser


def _count(spec, relpath: str) -> int | None:
    # the test split's count is what it must yield (KITTI: lines with ground truth only)
    if relpath == spec.default_split and spec.expected_count is not None:
        return spec.expected_count
    facts = spec.split_files.get(relpath)
    return None if facts is None else facts.lines


def rows() -> list[dict]:
    """One JSON-ready dict per benchmark, in registry order."""
    from marigold_bench.data.registry import all_benchmarks

    out = []
    for spec in all_benchmarks():
        out.append({
            "name": spec.name, "title": spec.title, "task": spec.task,
            "source": ("folder" if spec.needs_root else "generated") if spec.archive is None else "archive",
            "layout": spec.layout, "extra_archives": list(spec.extra_archives),
            "splits": {name: {"file": rel, "samples": _count(spec, rel)} for name, rel in spec.splits.items()},
            "default_split": spec.default_split, "expected_count": spec.expected_count,
            "crops": list(spec.crops), "default_crop": spec.default_crop,
            # JSON has no infinity (ETH3D's upper bound): write it as the string "inf"
            "depth_range": [d if math.isfinite(d) else str(d) for d in (spec.min_depth, spec.max_depth)], "processing_res": spec.processing_res,
            "subsets": list(spec.subsets), "sharp_edges": spec.sharp_edges, "origin": spec.origin,
        })
    return out


def _splits_cell(row: dict) -> str:
    if not row["splits"]:
        return "rendered from seeds" if row["source"] == "generated" else "–"
    return ", ".join(f"{name} ({s['samples']})" if s["samples"] is not None else name
                     for name, s in row["splits"].items())


def describe(fmt: str = "text") -> str:
    """The listing as a table."""
    from tabulate import tabulate

    table = [[r["name"], r["title"], r["task"], r["layout"] or r["source"], _splits_cell(r),
              r["default_crop"], r["origin"]] for r in rows()]
    headers = ["name", "title", "task", "source", "splits (samples)", "default crop", "origin"]
    return tabulate(table, headers=headers, tablefmt="github" if fmt == "md" else "simple") + "\n"


def run(args: argparse.Namespace) -> int:
    """Print the listing; returns 0."""
    if args.json and args.format:
        raise BenchError(f"--json and --format {args.format} ask for two listings; give one")
    if args.json:
        print(json.dumps(rows(), indent=2, default=str))
    else:
        print(describe(args.format or "text"), end="")
    return 0
