"""``marigold-bench leaderboard``: every model on every benchmark under one protocol, then one table.

One run directory per (model, dataset) under ``--out`` (finished ones reused, so a second
launch is near-instant), a failing model recorded as a marked row while the others go on, and
the table written as Markdown, LaTeX, CSV and a self-contained HTML page. Every ``run`` flag
applies to all runs; what the flags leave open (steps, processing resolution) each model takes
from its registry entry or its own config, as ``run`` would. Running the cells is here (through
the run loop, :func:`marigold_bench.eval.loop.run_predictor`); naming, finding and tabulating
them is :mod:`marigold_bench.report.leaderboard`'s, which runs nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from marigold_bench.commands import launch
from marigold_bench.commands.common import add_inference_flags, build_predictor, drop_unhonoured
from marigold_bench.commands.run import (DATASET_NAMES, add_dataset_flags, add_task_flags, check_scoring_names,
                                         declared_output_space, model_task, open_dataset, predictor_frame,
                                         predictor_task, scoring_for)
from marigold_bench.commands.table import add_subset_flag, parse_metrics_and_digits, parse_subsets
from marigold_bench.errors import BenchError
from marigold_bench.eval.outdir import check_writable
from marigold_bench.eval.rundir import add_to_summary
from marigold_bench.report.leaderboard import (DONE, FAILED, REUSED, Cell, cell_dir, is_finished, model_slugs,
                                               request_of)

#: the command's own flags: they shape the table, not the runs
#: (the launcher's flags say where cells run, never what they compute: a cell run by a Slurm job
#: is reused by a local launch and the other way round)
LEADERBOARD_ONLY = ("models", "datasets", "out", "format", "reference", "metrics", "digits", "diode_subsets",
                    "func", "command", *launch.LAUNCHER_FLAGS)

DEFAULT_OUT = os.path.join("runs", "leaderboard")


def _hide(p, option: str) -> None:
    # `run`'s single --dataset/--model make no sense here; --datasets/--models replace them
    action = p._option_string_actions[option]
    action.required, action.default = False, None
    action.help = argparse.SUPPRESS  # still parsed, so that giving it gets a clear message


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="run several models on several benchmarks and tabulate them",
        description="One run directory per (model, dataset) under --out (finished ones are reused, "
                    "a failing model becomes a marked row while the others finish), then one table: "
                    "datasets as column groups, AbsRel and δ1 ×100, best bold, n, output space and "
                    "alignment per row; written as leaderboard.md, .tex, .csv and .html (self-contained), "
                    "the --format one printed. Exit code 1 when a cell failed.")
    p.add_argument("--models", default=None,
                   help="comma-separated models: registry names, checkpoint folders, hub ids in the "
                        "local cache, baseline:ramp / baseline:constant")
    p.add_argument("--datasets", default=None,
                   help="comma-separated benchmarks, e.g. nyu,kitti, or a group: moge-all (MoGe's ten-benchmark pack), "
                        "metric-boards (ZoeDepth's metric evaluation sets); normals models use each benchmark's "
                        "normals ground truth (nyu, scannet, ibims, diode, oasis, synthetic)")
    add_dataset_flags(p)
    _hide(p, "--dataset")
    add_task_flags(p, "each model's")
    add_inference_flags(p)
    _hide(p, "--model")
    p.add_argument("--images-per-batch", type=int, default=0,
                   help="images whose members are predicted in one call (0 = auto), as in run")
    p.add_argument("--workers", type=int, default=0, help="sample-decoding processes, as in run")
    g = p.add_argument_group("table")
    g.add_argument("--out", default=DEFAULT_OUT, help=f"leaderboard folder (default: {DEFAULT_OUT})")
    g.add_argument("--format", choices=("md", "latex", "csv", "html"), default="md",
                   help="the format printed (all four are written to --out)")
    g.add_argument("--reference", action="store_true", help="add the published rows (reference.csv)")
    g.add_argument("--metrics", default="abs_rel,delta1", help="comma-separated metric keys")
    g.add_argument("--digits", type=int, default=1, help="decimals of percentages")
    add_subset_flag(g)
    launch.add_launcher_flags(p)
    p.set_defaults(func=run)


def _refuse_single_flags(args) -> None:
    for name, instead in (("dataset", "--datasets"), ("model", "--models")):
        if getattr(args, name, None) is not None:
            raise BenchError(f"--{name} does not apply to leaderboard; use {instead} (a comma-separated list)")
    # required, but checked here: argparse would report them before the clearer line above
    missing = [flag for flag, value in (("--models", args.models), ("--datasets", args.datasets)) if not value]
    if missing:
        raise BenchError(f"leaderboard needs {' and '.join(missing)} (comma-separated lists, e.g. --models tiny "
                         "--datasets synthetic)")


def cell_flags(args, model: str, dataset: str) -> dict:
    """Every ``run`` flag of one cell: the shared flags with the model and the dataset.

    What the flags leave unset (None) each model fills in when it is built, as ``run`` does:
    a registry name its recommended steps, a checkpoint its own config, a Marigold checkpoint
    the benchmark protocol's processing resolution. So the request stays what the user asked
    for, and a finished cell is recognised without loading anything.
    """
    flags = {k: v for k, v in vars(args).items() if k not in LEADERBOARD_ONLY}
    flags.update(model=model, dataset=dataset)
    for key in ("task", "frame"):  # only when given: a model's task is its own, so requests of 0.3 still match
        if flags.get(key) is None:
            flags.pop(key, None)
    return flags


def mark_finished(run_dir: str, request: dict) -> None:
    """Add the ``leaderboard`` block (the request) to a finished run's ``summary.json``.

    Written last and atomically: the block marks the cell as finished, so a crash never leaves
    a false "finished".
    """
    add_to_summary(run_dir, "leaderboard", {"request": request})


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
    from marigold_bench.eval.loop import run_predictor

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


def benchmarks_by_task(names: list[str], tasks) -> dict[str, list[str]]:
    """task -> the benchmark (spec) name each of ``names`` has for it (``nyu`` -> ``nyu-normals``
    for normals models); a benchmark without a task in play is a BenchError naming both."""
    from marigold_bench.data.registry import get_benchmark

    out = {}
    for task in tasks:
        try:
            out[task] = [get_benchmark(name, task=task).name for name in names]
        except BenchError as exc:
            raise BenchError(f"--datasets: {exc}; {task} models are scored against every benchmark "
                             f"(drop it, or give the {task} models a leaderboard of their own)") from None
    return out


def cell_functions(args, log=None):
    """``(make_predictor, run_one)`` of the cells of a leaderboard whose flags are ``args``: what
    `run_cells` (the local launcher) and `run_cell` (a Slurm job) both hand to the attempt of a cell.

    ``args`` needs only the cell flags (`cell_flags`); ``log`` takes the note about flags a
    model's family cannot honour (default: standard error)."""
    log = log or _log

    def namespace(model, name):
        return argparse.Namespace(**cell_flags(args, model, name))

    def make_predictor(model, name, dataset):
        # built per cell: what a model is built with may depend on the benchmark (its processing
        # resolution, ETH3D's padding), and loading costs seconds beside a benchmark's inference
        # every flag applies to every model whose family can take it: one another family cannot
        # honour (a Marigold-only flag for a baseline) is reported and left out for its rows
        flags, dropped = drop_unhonoured(namespace(model, name))
        if dropped:
            log(f"{model}: {', '.join(dropped)} does not apply to this model; not used for its runs")
        predictor = build_predictor(flags, processing_res=dataset.protocol.processing_res,
                                    seed=getattr(dataset.protocol, "seed", None))
        task = dataset.protocol.task
        if predictor_task(predictor) != task:  # --task asked for a ground truth the model does not predict
            raise BenchError(f"{model} predicts {predictor_task(predictor)}, not {task}: its output cannot be "
                             f"scored against {name}'s {task} ground truth")
        return predictor

    def run_one(predictor, model, name, dataset, run_dir):
        from marigold_bench.eval.loop import run_predictor

        declared = declared_output_space(predictor)
        return run_predictor(dataset, predictor, run_dir, skip_missing=args.skip_missing,
                             images_per_batch=args.images_per_batch, workers=args.workers,
                             score_device=args.score_device,
                             scoring=scoring_for(namespace(model, name), dataset, declared, predictor_frame(predictor)))

    return make_predictor, run_one


def run_cell(flags: dict, task: str, run_dir: str, request: dict, includes: list[str]) -> dict:
    """One cell, as a Slurm job runs it: the same attempt (`_attempt`, with `cell_functions`) as
    the local launcher, so its run directory and numbers are those of a local run.

    Args:
        flags: the cell's flags (`cell_flags`: the shared flags with its model and benchmark).
        task: the ground truth it is scored against (``depth``, ``normals``), as the launch
            opened the benchmark.
        run_dir: its run directory.
        request: its request (`request_of`), recorded in ``summary.json`` when it finishes.
        includes: the ``--include`` folders of the launch (spec files the job must see too).

    Returns:
        ``{"status": "done" | "failed", "message": why it failed}``; the launcher reads whether
        the cell finished from its run directory, the message says why not.
    """
    from marigold_bench import plugins

    for folder in includes:
        plugins.include(folder)
    args = argparse.Namespace(**flags)
    dataset = open_dataset(args, task)
    make_predictor, run_one = cell_functions(args)
    status, message, _ = _attempt(args.model, args.dataset, dataset, run_dir, request, make_predictor, run_one)
    if status == FAILED:
        _log(f"{args.model} on {args.dataset}: failed: {message}")
    return {"status": status, "message": message}


def _log(line):
    print(line, file=sys.stderr, flush=True)


def _slurm_cells(args, models, task_of, datasets, settings):
    """The cells through the Slurm launcher, in the local launcher's order (None while jobs are
    still in flight after --no-wait)."""
    from marigold_bench import plugins

    slugs = model_slugs(models)
    cells, jobs = [], {}
    for task, group in datasets.items():
        for model in (m for m in models if task_of[m] == task):
            for name, dataset in group.items():
                flags = cell_flags(args, model, name)
                request = request_of(flags)
                cell = Cell(model, name, cell_dir(args.out, slugs[model], name, request))
                cells.append(cell)
                jobs[cell.run_dir] = (flags, task, request, len(dataset))
    includes = [str(f) for f in plugins.included_folders()]

    def finished(cell):
        _, _, request, n_total = jobs[cell.run_dir]
        return is_finished(cell.run_dir, request, n_total)

    def job_of(cell):
        flags, task, request, _ = jobs[cell.run_dir]
        return run_cell, (flags, task, cell.run_dir, request, includes)

    return launch.launch_cells(args.out, settings, cells, finished, job_of, log=_log)


def run(args) -> int:
    from marigold_bench.report.leaderboard import leaderboard_tables, parse_names, write_outputs, write_record

    _refuse_single_flags(args)
    launch.refuse_with_local(args)
    check_writable(args.out)  # before any benchmark is opened or any cell runs
    settings = None
    if args.launcher == "slurm":  # before anything is opened: a missing submitit or Slurm is said at once
        launch.import_submitit()
        settings = launch.settings_from(args)
        launch.check_cluster(settings)
    models = parse_names(args.models, "models")
    from marigold_bench.data.registry import expand_groups

    names = expand_groups(parse_names(args.datasets, "datasets"))
    unknown = [n for n in names if n not in DATASET_NAMES]
    if unknown:
        raise BenchError(f"--datasets: unknown {', '.join(unknown)}; known: {', '.join(DATASET_NAMES)}")
    metrics = parse_metrics_and_digits(args)
    subsets = parse_subsets(args.diode_subsets)
    # each model's task (--task, else the model's own, as `run`), known before any model is loaded;
    # depth and normals models run on their own ground truths and land in tables of their own
    task_of = {m: model_task(argparse.Namespace(**{**vars(args), "model": m})) for m in models}
    tasks = sorted(set(task_of.values()), key=lambda t: (t != "depth", t))
    for task in tasks:
        check_scoring_names(args, task)  # before any model is loaded
    specs = benchmarks_by_task(names, tasks)
    # every benchmark is opened first: a missing one is the user's to fix, not a model's failure
    datasets = {task: {spec: open_dataset(argparse.Namespace(**{**vars(args), "dataset": spec}), task)
                       for spec in specs[task]} for task in tasks}

    log = _log
    if settings is not None:
        cells = _slurm_cells(args, models, task_of, datasets, settings)
        if cells is None:  # --no-wait: submitted; a later call collects and tabulates
            return 0
    else:
        make_predictor, run_one = cell_functions(args, log)
        cells = []
        for task in tasks:
            cells += run_cells([m for m in models if task_of[m] == task], datasets[task], args.out,
                               lambda m, d: cell_flags(args, m, d), make_predictor, run_one, log=log)
    if int(os.environ.get("RANK", "0")) != 0:  # under a launcher: one record and one table per launch
        return 0
    write_record(args.out, cells, models, names, {k: v for k, v in vars(args).items() if k not in LEADERBOARD_ONLY})
    tables = leaderboard_tables(cells, metrics, reference=args.reference, subsets=subsets)
    for table in tables:
        for note in table.identity_notes:  # also under the table; said here for logs and CI
            print(f"warning: {note}", file=sys.stderr)
    samples = ", ".join(f"{name} {len(ds)}" for group in datasets.values() for name, ds in group.items())
    context = (f"{len(models)} model(s) on {len(names)} benchmark(s) ({samples} samples), protocol "
               f"{args.protocol}; run directories under {args.out}")
    paths = write_outputs(tables, args.out, digits=args.digits, title="marigold-bench leaderboard", context=context)
    shown = [p for key, p in paths.items() if key.partition(":")[0] == args.format]  # csv: one file per task
    for k, path in enumerate(shown):
        with open(path, encoding="utf-8") as f:
            print(("\n" if k else "") + f.read(), end="")
    failed = [c for c in cells if c.status == FAILED]
    log(f"leaderboard written to {args.out} ({', '.join(os.path.basename(p) for p in paths.values())}); "
        f"{len(cells) - len(failed)} of {len(cells)} cells finished"
        + (f", {len(failed)} failed (see leaderboard.json)" if failed else ""))
    return 1 if failed else 0
