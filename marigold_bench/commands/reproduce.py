"""``marigold-bench reproduce``: rerun published numbers that this machine can rerun, and judge them.

Each paper-target cell (`marigold_bench.report.reproduce`) whose weights are in the local
Hugging Face cache and whose data is under ``--data-root``/``$MARIGOLD_DATA`` is run with
``marigold-bench run`` (cells of one model, benchmark and settings share one run directory, so
a rerun resumes and finished runs are reused); the others are reported as "not run" with the
command that would fetch what is missing. Exit 0 when no cell that ran failed, 1 when one did
(CI reads it like ``regress``), 2 on bad input.
"""

from __future__ import annotations

import json
import os
import re

from marigold_bench.errors import BenchError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="rerun the paper-target cells this machine has weights and data for, and judge them",
        description="Runs each cell's `marigold-bench run` (resumable) where its checkpoint is in the local "
                    "Hugging Face cache and its benchmark data is present; prints published value, ours, delta "
                    "and pass/fail, and writes report.md and report.json under --out. Cells that cannot run here "
                    "are 'not run' with the command that fetches what they lack.")
    p.add_argument("--cells", nargs="*", default=None, metavar="PATTERN",
                   help="cell ids or shell patterns (e.g. 'marigold-v1-0-50x10/*'); default: every cell")
    p.add_argument("--cells-file", default=None, help="a cells CSV of your own (default: the bundled one)")
    p.add_argument("--data-root", default=None, help="base folder of the benchmark data (default: $MARIGOLD_DATA)")
    p.add_argument("--out", default=os.path.join("runs", "reproduce"), help="report and run directories")
    p.add_argument("--list", action="store_true", help="list the cells with their sources and stop")
    p.set_defaults(func=run)


def _slug(group) -> str:
    c = group.first
    steps = "default" if c.steps is None else c.steps   # a model without a sampler has no step count
    text = "_".join(str(x) for x in (c.benchmark, c.model, c.protocol, f"steps{steps}", f"N{c.ensemble}",
                                      *c.extra_args))
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def _missing_weights(model: str) -> str | None:
    from marigold_bench.inference.registry import cached_path, lookup
    from marigold_bench.model.hub import download_command
    from marigold_bench.report.reproduce import BUNDLED_MODELS

    if model in BUNDLED_MODELS:
        return None
    entry = lookup(model)
    if entry is not None and cached_path(entry) is None:
        return f"weights not in the local Hugging Face cache: `{download_command(entry.hub_id)}`"
    return None


def _missing_data(benchmark: str, data_root: str | None, task: str = "depth") -> str | None:
    from marigold_bench.data import load_dataset

    try:
        load_dataset(benchmark, data_root, task=task)
    except BenchError as exc:
        first = str(exc).splitlines()[0]
        return f"data not here ({first}); {_how_to_fetch(benchmark, task)}"
    return None


def _how_to_fetch(benchmark: str, task: str) -> str:
    """The command that fetches a benchmark's data, or where its layout is described when the
    suite cannot download it (the normals set, MoGe's pack, DA-2K, the metric benchmarks)."""
    from marigold_bench.data.registry import get_benchmark

    spec = get_benchmark(benchmark, task=task)
    if spec.archive is not None:
        return f"fetch it with `marigold-bench data download --dataset {spec.name} --data-root DIR`"
    doc = spec.layout_doc or "`marigold-bench benchmarks` (its source) and docs/commands.md"
    return (f"the suite cannot download {spec.name}: put its files under DIR/{spec.folder or spec.name}/ "
            f"as {doc} describes")


def _run_args(argv: list[str]):
    """The parsed arguments of ``marigold-bench run ARGV`` (the run command's own parser)."""
    import argparse

    from marigold_bench.commands import run as run_command

    parser = argparse.ArgumentParser(prog="marigold-bench")
    run_command.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run(args) -> int:
    from marigold_bench.inference.registry import KNOWN_MODELS
    from marigold_bench.data import DATASETS
    from marigold_bench.eval.outdir import check_writable
    from marigold_bench.report.reproduce import (ERROR, FAIL, NOT_RUN, Outcome, group_cells, judge, load_cells,
                                                 render, select)
    from marigold_bench.report.rundir import finished_summary

    from marigold_bench.output_spaces import is_normals

    known = {name: "normals" if is_normals(e.output_space) else "depth" for name, e in KNOWN_MODELS.items()}
    cells = select(load_cells(args.cells_file, known_models=known, known_benchmarks=set(DATASETS)), args.cells)
    if args.list:
        for c in cells:
            print(f"{c.cell}: {c.shown} ± {c.tolerance:g} ({c.source}, table {c.table or '?'}"
                  f"{', p. ' + c.page if c.page else ''}; {c.confidence})")
        return 0
    check_writable(args.out)  # before the first cell runs: its run directory and the report go there
    data_root = args.data_root or os.environ.get("MARIGOLD_DATA")
    outcomes = []
    for group in group_cells(cells):
        first = group.first
        # both, so that one look at the report says everything a machine lacks
        reason = "; ".join(r for r in (_missing_weights(first.model),
                                       _missing_data(first.benchmark, data_root, first.task)) if r)
        if reason:
            outcomes += [Outcome(c, NOT_RUN, message=reason) for c in group.cells]
            continue
        run_dir = os.path.join(args.out, _slug(group))
        argv = ["run", *group.run_args(), "--out", run_dir] + (["--data-root", data_root] if data_root else [])
        print(f"reproduce: marigold-bench {' '.join(argv)}", flush=True)
        run_args = _run_args(argv)
        try:
            run_args.func(run_args)
            summary, failure = finished_summary(run_dir), "the run left no finished summary"
        except BenchError as exc:  # this group's run failed; the other cells still run
            summary, failure = None, str(exc).splitlines()[0]
        if summary is None:
            outcomes += [Outcome(c, ERROR, message=f"{failure}; see {run_dir}", run_dir=run_dir)
                         for c in group.cells]
            continue
        outcomes += [judge(c, summary, run_dir) for c in group.cells]
    report = render(outcomes)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
        f.write(report)
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
        json.dump([{"cell": o.cell.cell, "status": o.status, "published": o.cell.published, "value": o.value,
                    "delta": o.delta, "tolerance": o.cell.tolerance, "message": o.message, "run_dir": o.run_dir,
                    "source": o.cell.source, "table": o.cell.table, "page": o.cell.page,
                    "confidence": o.cell.confidence} for o in outcomes], f, indent=2)
    print(report, end="")
    print(f"report written to {os.path.join(args.out, 'report.md')}")
    return 1 if any(o.status in (FAIL, ERROR) for o in outcomes) else 0
