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
                                          render, short_model)

#: flags that only say where or how fast a run goes: changing them reuses finished cells
MACHINE_ONLY_FLAGS = ("device", "batch_size", "workers", "images_per_batch", "score_device", "data_root")

#: the file names of the four renderings, by ``--format``
OUTPUT_FILES = {"md": "leaderboard.md", "latex": "leaderboard.tex", "csv": "leaderboard.csv",
                "html": "leaderboard.html"}

DONE, REUSED, FAILED = "done", "reused", "failed"


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


def write_outputs(table: Table, out: str, digits: int = 1, title: str = "Leaderboard",
                  context: str = "") -> dict[str, str]:
    """Write the table as Markdown, LaTeX, CSV and a self-contained HTML page into ``out``;
    returns ``--format`` -> path."""
    from marigold_bench.report.leaderboard_html import render_html

    os.makedirs(out, exist_ok=True)
    texts = {fmt: render(table, fmt, digits=digits) for fmt in ("md", "latex", "csv")}
    texts["html"] = render_html(table, digits=digits, title=title, context=context)
    paths = {}
    for fmt, name in OUTPUT_FILES.items():
        paths[fmt] = os.path.join(out, name)
        with open(paths[fmt], "w", encoding="utf-8") as f:
            f.write(texts[fmt])
    return paths
