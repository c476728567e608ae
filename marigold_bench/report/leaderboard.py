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
is not finished goes through :func:`marigold_bench.eval.evaluator.run_predictor`, whose cache
resumes it where an interrupted launch stopped. The request hash in the folder name keeps runs
made with other flags apart instead of clashing with their caches.

A model that cannot be loaded or crashes is recorded (``leaderboard.json`` and a marked table
row, ``failed: <message>``) and the other cells go on; a failed cell is tried again on the next
launch.

Light on purpose: building the table needs no torch; inference modules are imported only when
a cell has to run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import traceback
from dataclasses import asdict, dataclass

from marigold_bench.errors import BenchError
from marigold_bench.report.rundir import finished_summary, load_run
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


def mark_finished(run_dir: str, request: dict) -> None:
    """Add the ``leaderboard`` block (the request) to a finished run's ``summary.json``.

    Written last and atomically (temporary file, then rename): the block marks the cell as
    finished, so a crash never leaves a false "finished".
    """
    path = os.path.join(run_dir, "summary.json")
    with open(path) as f:
        summary = json.load(f)
    summary["leaderboard"] = {"request": request}
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".tmp-summary-")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def failure_message(exc: BaseException) -> str:
    """One line saying why a cell failed: a BenchError's own message, otherwise the exception's
    type and message (a crash inside a model is not the user's error, so its type matters)."""
    if isinstance(exc, BenchError):
        return " ".join(str(exc).split())
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_cells(models: list[str], datasets: dict, out: str, flags_of, make_predictor,
              run_one=None, log=print) -> list[Cell]:
    """Run (or reuse) every (model, dataset) cell, model by model.

    Args:
        models: model names as given.
        datasets: benchmark name -> opened dataset (``len`` is its sample count).
        out: the leaderboard folder.
        flags_of: ``(model, dataset name) -> dict`` of the cell's flags (see `request_of`).
        make_predictor: ``(model, dataset name, dataset) -> predictor``; called only for cells
            that are not finished.
        run_one: ``(predictor, model, dataset name, dataset, run_dir) -> summary``, which runs
            and scores one cell (default: `run_predictor` with its defaults).
        log: one line per cell (``None`` for silence).

    Returns:
        One :class:`Cell` per (model, dataset), in order. A failure (any exception but an
        interrupt) fails that cell only; once a model failed to load, its remaining cells are
        not tried again in this launch (they would fail the same way) but recorded failed.
    """
    slugs = model_slugs(models)
    cells, total = [], len(models) * len(datasets)
    for model in models:
        load_error = None
        for name, dataset in datasets.items():
            request = request_of(flags_of(model, name))
            cell = Cell(model, name, cell_dir(out, slugs[model], name, request))
            cells.append(cell)
            where = f"[{len(cells)}/{total}] {model} on {name}"
            if is_finished(cell.run_dir, request, len(dataset)):
                cell.status = REUSED
            elif load_error is not None:
                cell.status, cell.message = FAILED, load_error
            else:
                cell.status, cell.message, loading = _attempt(
                    model, name, dataset, cell.run_dir, request, make_predictor, run_one)
                if loading:
                    load_error = cell.message
            if log:
                log(f"{where}: " + {DONE: "done", REUSED: "finished before, reused",
                                    FAILED: f"failed: {cell.message}"}[cell.status])
    return cells


def _default_run_one(predictor, model, name, dataset, run_dir):
    from marigold_bench.eval.evaluator import run_predictor

    return run_predictor(dataset, predictor, run_dir)


def _attempt(model, name, dataset, run_dir, request, make_predictor, run_one):
    """(status, message, failed while loading) of one cell that has to run."""
    run_one = run_one or _default_run_one
    try:
        predictor = make_predictor(model, name, dataset)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 -- any model may break in any way; record it
        return FAILED, failure_message(exc), True
    try:
        run_one(predictor, model, name, dataset, run_dir)
        if int(os.environ.get("RANK", "0")) == 0:  # the main process wrote the summary; it marks it
            mark_finished(run_dir, request)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001
        _write_traceback(run_dir, exc)
        return FAILED, failure_message(exc), False
    return DONE, "", False


def _write_traceback(run_dir: str, exc: BaseException) -> None:
    # the table has one line for the message; the whole story goes next to the run
    try:
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "failed.txt"), "w") as f:
            f.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        pass


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
