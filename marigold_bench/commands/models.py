"""``marigold-bench models``: the known public checkpoints, and which are in the local cache.

Lists `marigold_bench.inference.registry` (``resources/models.csv``): short name, family,
output space, recommended steps and resolution, recipe, hub id and whether its files are in the
local Hugging Face cache. Any listed name works as ``--model``; nothing is downloaded, the
listing says how to fetch a missing one.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``models`` on the CLI's sub-command parsers."""
    parser = subparsers.add_parser(
        "models", help="list known public depth checkpoints and which are in the local cache",
        description="List the registry of known public depth checkpoints (usable as --model NAME) and say "
                    "which are in the local Hugging Face cache. Never downloads.")
    parser.add_argument("--cached", action="store_true", help="only the checkpoints in the local cache")
    parser.add_argument("--family", default=None, metavar="NAME",
                        help="only this model family (the family column; a plugin may add families)")
    parser.add_argument("--format", choices=("md", "csv"), default="md", help="table format (default: md)")
    parser.add_argument("--papers", action="store_true", help="add each checkpoint's paper")
    parser.set_defaults(func=run)
    return parser


def rows(cached_only: bool = False, family: str | None = None) -> list[dict]:
    """One dict per registry entry (filtered), with ``cached`` (bool) and ``path`` (or None)."""
    from ..inference.registry import KNOWN_MODELS, cached_path

    out = []
    for entry in KNOWN_MODELS.values():
        if family is not None and entry.family != family:
            continue
        path = cached_path(entry)
        if cached_only and path is None:
            continue
        out.append({"name": entry.name, "family": entry.family, "output_space": entry.output_space,
                    "steps": entry.steps, "processing_res": entry.processing_res, "ensemble": entry.ensemble, "recipe": entry.recipe,
                    "hub_id": entry.hub_id, "cached": path is not None, "path": None if path is None else str(path),
                    "paper": entry.paper})
    return out


def run(args: argparse.Namespace) -> int:
    """Print the table; returns 0."""
    import csv
    import io

    from tabulate import tabulate

    from ..model.hub import download_command, hf_cache_dir

    from ..inference.families import all_families, get_family

    if args.family is not None:
        get_family(args.family)   # an unknown family is an error listing the known ones
    table = rows(args.cached, args.family)
    columns = ["name", "family", "output_space", "steps", "processing_res", "ensemble", "recipe", "hub_id", "cached"]
    if args.papers:
        columns.append("paper")
    if args.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns + ["path"], extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        print(buffer.getvalue(), end="")
        return 0
    body = [[("yes" if r[c] else "no") if c == "cached" else ("" if r[c] is None else r[c]) for c in columns]
            for r in table]
    print(tabulate(body, headers=columns, tablefmt="github"))
    n_cached = sum(r["cached"] for r in table)
    print("\nmodel families: " + "; ".join(f"{f.name} ({f.origin}): {f.description}" for f in all_families()))
    print(f"\n{n_cached} of {len(table)} in the local cache ({hf_cache_dir()}). Use a name as --model NAME; "
          f"fetch a missing one on a machine with internet: {download_command('<hub_id>')}")
    return 0


__all__ = ["add_parser", "run", "rows"]
