"""A leaderboard: every model on every benchmark under one protocol, then one table.

Layout of a leaderboard folder (``marigold-bench leaderboard --out OUT``, default
``runs/leaderboard``)::

    OUT/<model>/<dataset>-<request hash>/   one normal run directory per (model, dataset)
    OUT/leaderboard.json                    what was asked, and per cell: done, reused or failed (why)
    OUT/leaderboard.md / .tex / .csv / .html  the table in each format

A cell counts as finished when its run directory holds ``per_sample.csv`` and a
``summary.json`` whose ``leaderboard`` block records the same request (every ``run`` flag that
can change a number, the model and the dataset) and the dataset's sample count. Finished cells
are read back without building a predictor, so a second launch is near-instant; a cell that
is not finished is run by ``marigold-bench leaderboard`` (:mod:`marigold_bench.commands.leaderboard`)
through the run loop, whose cache resumes it where an interrupted launch stopped. The request
hash in the folder name keeps runs made with other flags apart instead of clashing with their
caches.

A model that cannot be loaded or crashes is recorded (``leaderboard.json`` and a marked table
row, ``failed: <message>``) and the other cells go on; a failed cell is tried again on the next
launch.

This module only names, finds and reads cells and makes the table: it runs no model (the
command does), so building the table needs no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass

from marigold_bench.errors import BenchError
from marigold_bench.eval.rundir import finished_summary, load_run
from marigold_bench.report.tables import (DEFAULT_METRICS, DIODE_SUBSETS, Failure, Table, build_table,
                                          metrics_for_task, render, short_model)
from marigold_bench.tasks import task_of_metrics

#: flags that only say where or how fast a run goes: changing them reuses finished cells
MACHINE_ONLY_FLAGS = ("device", "batch_size", "workers", "images_per_batch", "score_device", "data_root")

#: the file names of the four renderings, by ``--format``
OUTPUT_FILES = {"md": "leaderboard.md", "latex": "leaderboard.tex", "csv": "leaderboard.csv",
                "html": "leaderboard.html"}

DONE, REUSED, FAILED = "done", "reused", "failed"

#: the heading of each task's table when a leaderboard has several
TASK_TITLES = {"depth": "Depth", "normals": "Surface normals"}


@dataclass
class Cell:
    """One (model, dataset) of a leaderboard and what became of it.

    Attributes:
        model: the model as given in ``--models``.
        dataset: the benchmark name.
        run_dir: its run directory.
        status: ``done`` (run now), ``reused`` (finished before) or ``failed``.
        message: why it failed (empty otherwise).
    """

    model: str
    dataset: str
    run_dir: str
    status: str = ""
    message: str = ""


def parse_names(text: str, what: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``; an empty list or a name given twice is a BenchError."""
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not names:
        raise BenchError(f"--{what} is empty; give a comma-separated list")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BenchError(f"--{what}: {', '.join(twice)} given twice")
    return names


def model_slug(model: str) -> str:
    """A folder name for a model: a registry name as it is, a path or hub id by its last part,
    ``baseline:ramp`` -> ``baseline-ramp``."""
    text = os.path.basename(os.path.normpath(model)) if ("/" in model or os.sep in model) else model
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "model"


def model_slugs(models: list[str]) -> dict[str, str]:
    """Folder names of all models; two models with one name get their own hash suffix."""
    slugs = {m: model_slug(m) for m in models}
    for model, slug in slugs.items():
        if list(slugs.values()).count(slug) > 1:
            slugs[model] = f"{slug}-{_digest(model)[:6]}"
    return slugs


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def request_of(flags: dict) -> dict:
    """The part of a cell's flags that can change its numbers (machine-only flags dropped),
    JSON-normalised so it compares equal to what ``summary.json`` gives back."""
    kept = {k: v for k, v in flags.items() if k not in MACHINE_ONLY_FLAGS and not callable(v)}
    return json.loads(json.dumps(kept, sort_keys=True, default=str))


def cell_dir(out: str, slug: str, dataset: str, request: dict) -> str:
    """``OUT/<model>/<dataset>-<first 8 hex of the request's sha256>``."""
    return os.path.join(out, slug, f"{dataset}-{_digest(request)[:8]}")


def is_finished(run_dir: str, request: dict, n_total: int | None = None) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly this request (and sample count)."""
    summary = finished_summary(run_dir)
    if summary is None:
        return False
    recorded = summary.get("leaderboard") or {}
    return (recorded.get("request") == request and summary.get("dataset") == request.get("dataset")
            and (n_total is None or summary.get("n_total") == n_total))


def write_record(out: str, cells: list[Cell], models: list[str], datasets: list[str], flags: dict) -> str:
    """``OUT/leaderboard.json``: the launch's models, datasets, shared flags and every cell."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "leaderboard.json")
    record = {"models": models, "datasets": datasets, "flags": request_of(flags),
              "cells": [asdict(c) for c in cells]}
    with open(path, "w") as f:
        json.dump(record, f, indent=2, default=str)
        f.write("\n")
    return path


def leaderboard_table(cells: list[Cell], metrics=DEFAULT_METRICS, reference: bool | str = False,
                      subsets=DIODE_SUBSETS) -> Table:
    """The table of a leaderboard: finished cells as runs, failed ones as marked rows, an ``n``
    column per dataset."""
    finished = [c for c in cells if c.status in (DONE, REUSED)]
    runs = [load_run(c.run_dir) for c in finished]
    origins = {c.run_dir: c.model for c in finished}
    failures = [Failure(c.model, short_model(c.model), c.dataset, c.message) for c in cells if c.status == FAILED]
    return build_table(runs, metrics, reference=reference, failures=failures, origins=origins,
                       subsets=subsets, show_n=True)


def cell_task(cell: Cell) -> str:
    """The task a cell scores: its benchmark spec's (``nyu-normals`` -> normals); depth for a
    name the registry no longer knows."""
    from marigold_bench.data.registry import UnknownBenchmarkError, get_benchmark

    try:
        return get_benchmark(cell.dataset).task
    except UnknownBenchmarkError:
        return "depth"


def leaderboard_tables(cells: list[Cell], metrics=DEFAULT_METRICS, reference: bool | str = False,
                       subsets=DIODE_SUBSETS) -> list[Table]:
    """One `leaderboard_table` per task the cells score (depth first): depth and normals models
    never share a table. Each takes the ``metrics`` of its task, else its defaults
    (`metrics_for_task`); published rows (depth only) go with the depth table."""
    by_task: dict[str, list[Cell]] = {}
    for cell in cells:
        by_task.setdefault(cell_task(cell), []).append(cell)
    order = sorted(by_task, key=lambda t: (t != "depth", t)) or ["depth"]
    return [leaderboard_table(by_task.get(task, []), metrics_for_task(task, metrics),
                              reference=reference if task == "depth" else False, subsets=subsets)
            for task in order]


def table_task(table: Table) -> str:
    """The task a table's columns measure."""
    return task_of_metrics(table.metrics)


def write_outputs(tables: Table | list[Table], out: str, digits: int = 1, title: str = "Leaderboard",
                  context: str = "") -> dict[str, str]:
    """Write the table(s) as Markdown, LaTeX, CSV and a self-contained HTML page into ``out``;
    returns ``--format`` -> path.

    Several tables (one per task) go one after the other under a heading per task into the
    Markdown, LaTeX and HTML files; CSV, one table per file, keeps the first in
    ``leaderboard.csv`` and writes each other as ``leaderboard-<task>.csv`` (key ``csv:<task>``).
    """
    from marigold_bench.report.leaderboard_html import render_html

    tables = [tables] if isinstance(tables, Table) else list(tables)
    os.makedirs(out, exist_ok=True)
    several = len(tables) > 1

    def joined(fmt, heading):
        parts = [render(t, fmt, digits=digits) for t in tables]
        if several:
            parts = [heading(TASK_TITLES.get(table_task(t), table_task(t))) + text for t, text in zip(tables, parts)]
        return "\n".join(parts)

    texts = {"md": joined("md", lambda h: f"## {h}\n\n"), "latex": joined("latex", lambda h: f"% {h}\n")}
    texts["html"] = render_html(tables if several else tables[0], digits=digits, title=title, context=context,
                                headings=[TASK_TITLES.get(table_task(t), table_task(t)) for t in tables])
    texts["csv"] = render(tables[0], "csv", digits=digits)
    files = dict(OUTPUT_FILES)
    for table in tables[1:]:
        task = table_task(table)
        files[f"csv:{task}"] = f"leaderboard-{task}.csv"
        texts[f"csv:{task}"] = render(table, "csv", digits=digits)
    paths = {}
    for key, name in files.items():
        paths[key] = os.path.join(out, name)
        with open(paths[key], "w", encoding="utf-8") as f:
            f.write(texts[key])
    return paths
