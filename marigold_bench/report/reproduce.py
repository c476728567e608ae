"""Paper-target reproduction cells: a published number, how to recompute it, and how close we are.

A cell is one row of a cells file (``resources/reproduction_cells.csv`` by default): the model
(a registry name, or ``tiny`` for the bundled checkpoint), the benchmark, the protocol and the
settings that differ from the defaults, the metric, the published value (as printed: percent
for AbsRel and δ1), the tolerance, and where the number was read (paper, table, page) with how
confident that transcription is. Cells that share a model, benchmark, protocol and settings are
one run (`group_cells`).

This module reads cells and judges finished runs; running them is the ``reproduce`` command's.
A cell whose weights or data are not on this machine is "not run", with the command that would
fetch them, never a failure.
"""

from __future__ import annotations

import csv
import math
import shlex
from dataclasses import dataclass, field
from importlib import resources

from marigold_bench.errors import BenchError
from marigold_bench.tasks import METRICS, display_value

COLUMNS = ("cell", "model", "benchmark", "protocol", "steps", "ensemble", "extra_args", "metric",
           "published", "tolerance", "source", "table", "page", "confidence")

#: model names that are not registry entries but ship with the package, with the task each
#: predicts (``tiny-normals`` is what ``run --task normals`` runs without ``--model``)
BUNDLED_MODELS = {"tiny": "depth", "tiny-normals": "normals"}

PASS, FAIL, NOT_RUN, ERROR = "pass", "fail", "not run", "error"


@dataclass(frozen=True)
class Cell:
    """One published number to reproduce."""

    cell: str
    model: str
    benchmark: str
    protocol: str
    steps: int | None
    ensemble: int
    extra_args: tuple
    metric: str
    published: float
    tolerance: float
    source: str
    table: str = ""
    page: str = ""
    confidence: str = ""
    #: the published value as the file writes it ("95.0", not 95), which is how the paper prints it
    printed: str = ""

    @property
    def shown(self) -> str:
        """The published value with the paper's decimals."""
        return self.printed or f"{self.published:g}"

    @property
    def task(self) -> str:
        """The task the cell's metric scores (``depth``, ``normals``), so the run's ground truth."""
        return METRICS[self.metric].task

    @property
    def run_key(self) -> tuple:
        """What makes two cells one run."""
        return (self.model, self.benchmark, self.protocol, self.steps, self.ensemble, self.extra_args)


@dataclass
class Outcome:
    """A cell's verdict."""

    cell: Cell
    status: str
    value: float | None = None
    message: str = ""
    run_dir: str | None = None

    @property
    def delta(self) -> float | None:
        return None if self.value is None else self.value - self.cell.published


@dataclass
class RunGroup:
    """Cells that one run answers."""

    cells: list = field(default_factory=list)

    @property
    def first(self) -> Cell:
        return self.cells[0]

    def run_args(self) -> list[str]:
        """The ``marigold-bench run`` flags of this group (``--out`` and ``--data-root`` aside)."""
        c = self.first
        args = ["--dataset", c.benchmark, "--protocol", c.protocol, "--ensemble", str(c.ensemble)]
        if c.model not in BUNDLED_MODELS:
            args += ["--model", c.model]
        if c.task != "depth":   # a bundled normals model is the default of its task
            args += ["--task", c.task]
        if c.steps is not None:
            args += ["--steps", str(c.steps)]
        return args + list(c.extra_args)


def _number(text: str, what: str, row: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BenchError(f"cells file row {row}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BenchError(f"cells file row {row}: {what} must be finite, got {text}")
    return value


def _count(text: str, what: str, row: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BenchError(f"cells file row {row}: {what} {text!r} is not a whole number") from None
    if value < 1:
        raise BenchError(f"cells file row {row}: {what} must be >= 1, got {value}")
    return value


def _flags(text: str, row: int) -> tuple:
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:  # an unclosed quote
        raise BenchError(f"cells file row {row}: extra_args {text!r}: {exc}") from None


def load_cells(path: str | None = None, known_models=None, known_benchmarks=None) -> list[Cell]:
    """Read and check a cells file (None: the bundled one).

    Args:
        known_models: names a cell's model may take besides `BUNDLED_MODELS` (the registry), as
            a mapping name -> task the model predicts (its metrics must be of that task) or a
            plain collection of names; None skips that check.
        known_benchmarks: benchmark names a cell may name; None skips that check.

    Raises:
        BenchError: a missing column, a duplicate cell id, an unknown model, benchmark or
            metric, a value that is not a finite number, a negative tolerance.
    """
    if path is None:
        text = resources.files("marigold_bench").joinpath("resources/reproduction_cells.csv").read_text("utf-8")
        where = "resources/reproduction_cells.csv"
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise BenchError(f"--cells {path}: cannot read it ({exc.strerror or exc})") from None
        where = path
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise BenchError(f"{where}: missing column(s) {', '.join(missing)}; a cells file has {', '.join(COLUMNS)}")
    cells, seen = [], set()
    for row_number, row in enumerate(reader, start=2):
        name = row["cell"].strip()
        if not name or name in seen:
            raise BenchError(f"{where} row {row_number}: cell id {name!r} is empty or repeated")
        seen.add(name)
        model = row["model"].strip()
        if known_models is not None and model not in known_models and model not in BUNDLED_MODELS:
            raise BenchError(f"{where} row {row_number} ({name}): model {model!r} is not in the registry "
                             "(`marigold-bench models` lists it) nor a bundled checkpoint")
        benchmark = row["benchmark"].strip()
        if known_benchmarks is not None and benchmark not in known_benchmarks:
            raise BenchError(f"{where} row {row_number} ({name}): unknown benchmark {benchmark!r}")
        metric = row["metric"].strip()
        if metric not in METRICS:
            raise BenchError(f"{where} row {row_number} ({name}): unknown metric {metric!r}")
        tasks = {**(known_models if isinstance(known_models, dict) else {}), **BUNDLED_MODELS}
        if model in tasks and METRICS[metric].task != tasks[model]:
            raise BenchError(f"{where} row {row_number} ({name}): {metric} is a {METRICS[metric].task} metric "
                             f"and {model} predicts {tasks[model]}")
        tolerance = _number(row["tolerance"], "tolerance", row_number)
        if tolerance < 0:
            raise BenchError(f"{where} row {row_number} ({name}): the tolerance must be >= 0")
        cells.append(Cell(
            cell=name, model=model, benchmark=benchmark, protocol=row["protocol"].strip() or "marigold",
            steps=_count(row["steps"], "steps", row_number) if row["steps"].strip() else None,
            ensemble=_count(row["ensemble"] or "1", "ensemble", row_number),
            extra_args=_flags(row["extra_args"] or "", row_number),
            metric=metric, published=_number(row["published"], "published", row_number), tolerance=tolerance,
            source=row["source"], table=row["table"], page=row["page"], confidence=row["confidence"],
            printed=row["published"].strip()))
    return cells


def select(cells: list[Cell], patterns: list[str] | None) -> list[Cell]:
    """The cells whose id matches any of ``patterns`` (shell-style, ``*`` allowed); all if None.

    Raises:
        BenchError: a pattern that matches no cell.
    """
    if not patterns:
        return cells
    import fnmatch
    chosen = [c for c in cells if any(fnmatch.fnmatchcase(c.cell, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(c.cell, p) for c in cells)]
    if unmatched:
        raise BenchError(f"--cells: no cell matches {', '.join(unmatched)} (ids look like "
                         f"{cells[0].cell if cells else 'model/benchmark/metric'})")
    return chosen


def group_cells(cells: list[Cell]) -> list[RunGroup]:
    """Cells grouped by the run that answers them, in file order."""
    groups: dict[tuple, RunGroup] = {}
    for cell in cells:
        groups.setdefault(cell.run_key, RunGroup()).cells.append(cell)
    return list(groups.values())


def judge(cell: Cell, summary: dict, run_dir: str) -> Outcome:
    """Compare a finished run's metric with the cell's published value (both as printed)."""
    value = (summary.get("metrics") or {}).get(cell.metric)
    if value is None or not math.isfinite(value):
        return Outcome(cell, ERROR, message=f"the run has no finite {cell.metric}", run_dir=run_dir)
    shown = display_value(cell.metric, value)
    ok = abs(shown - cell.published) <= cell.tolerance + 1e-9
    partial = summary.get("n", 0) < summary.get("n_total", 0)
    note = f"partial: {summary.get('n')}/{summary.get('n_total')} samples" if partial else ""
    return Outcome(cell, PASS if ok else FAIL, shown, note, run_dir)


def render(outcomes: list[Outcome]) -> str:
    """The report as a Markdown table (value, delta, verdict, and what to do for cells not run)."""
    from tabulate import tabulate

    rows = []
    for o in outcomes:
        rows.append([o.cell.cell, o.cell.shown, "" if o.value is None else f"{o.value:.2f}",
                     "" if o.delta is None else f"{o.delta:+.2f}", f"±{o.cell.tolerance:g}", o.status, o.message])
    counts = {s: sum(o.status == s for o in outcomes) for s in (PASS, FAIL, NOT_RUN, ERROR)}
    head = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no cells"
    table = tabulate(rows, headers=["cell", "published", "ours", "delta", "tol.", "verdict", "note"],
                     tablefmt="github", disable_numparse=True)
    return f"{table}\n\n{head}\n"


__all__ = ["BUNDLED_MODELS", "COLUMNS", "Cell", "ERROR", "FAIL", "NOT_RUN", "Outcome", "PASS", "RunGroup",
           "group_cells", "judge", "load_cells", "render", "select"]
