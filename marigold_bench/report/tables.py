"""Paper-style tables from run directories: Markdown, LaTeX (booktabs) and CSV.

Layout as in the papers: one row per model configuration, datasets as column groups, and inside
each group the chosen metrics (AbsRel and δ1 by default), fractions printed ×100. Run
directories with equal settings on different datasets fill one row; two runs that would fill the
same cell are refused with a reason, as are runs of one dataset scored on different sample sets
or protocols (their numbers could not share a column). A run with failed, skipped or no-valid
samples is kept and its cells carry ``(n/total)``. The best value of each column is bold.

``--reference`` adds the published rows of ``marigold_bench/resources/reference.csv`` (quoted, with
their source; shipped as package data, so it works from an installed wheel too).

>>> table = build_table([load_run("runs/a"), load_run("runs/b")])
>>> print(render(table, "md"))
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from marigold_bench.data import DATASETS
from marigold_bench.errors import BenchError
from marigold_bench.eval.metrics import HIGHER_IS_BETTER, METRIC_KEYS
from marigold_bench.report.rundir import RunDir, differences, result_settings, sample_set

#: fractions that papers print ×100
PERCENT_METRICS = frozenset({"abs_rel", "delta1", "delta2", "delta3"})
DEFAULT_METRICS = ("abs_rel", "delta1")

DATASET_TITLES = {"nyu": "NYUv2", "kitti": "KITTI", "eth3d": "ETH3D", "scannet": "ScanNet",
                  "diode": "DIODE", "synthetic": "Synthetic"}

_METRIC_NAMES = {"abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSElog",
                 "log10": "log10", "i_rmse": "iRMSE", "silog_rmse": "SIlog"}

#: settings that follow each benchmark's protocol, so they may differ inside one row
PER_DATASET_SETTINGS = ("processing_res",)

#: settings shown in every row label (others only when they differ between rows)
ALWAYS_LABELLED = ("model", "steps", "ensemble")
LABEL_ORDER = ("model", "steps", "ensemble", "timestep_spacing", "noise", "seed", "precision",
               "ensembling")

#: the published numbers shipped with the repository
REFERENCE_CSV = Path(__file__).resolve().parents[1] / "resources" / "reference.csv"


def metric_title(metric: str, latex: bool = False) -> str:
    """Column title with the direction arrow, e.g. ``AbsRel↓`` or (LaTeX) ``$\\delta_1\\uparrow$``."""
    up = metric in HIGHER_IS_BETTER
    if latex:
        arrow = r"\uparrow" if up else r"\downarrow"
        if metric.startswith("delta"):
            return rf"$\delta_{metric[5:]}{arrow}$"
        return _METRIC_NAMES.get(metric, metric).replace("_", r"\_") + f"${arrow}$"
    name = _METRIC_NAMES.get(metric, metric.replace("delta", "δ"))
    return name + ("↑" if up else "↓")


def display_value(metric: str, value: float) -> float:
    """A metric in the unit tables print: ×100 for fractions."""
    return value * 100.0 if metric in PERCENT_METRICS else value


@dataclass
class Row:
    """One table row: a configuration's values per (dataset, metric), in display units."""

    label: str
    values: dict = field(default_factory=dict)   # (dataset, metric) -> float
    counts: dict = field(default_factory=dict)   # dataset -> (n ok, n total)
    paths: dict = field(default_factory=dict)    # dataset -> run directory
    quoted: bool = False
    source: str = ""


@dataclass
class Table:
    """What a renderer needs: column groups, metrics, rows (quoted ones first) and notes."""

    datasets: list
    metrics: list
    rows: list
    sources: dict = field(default_factory=dict)  # source key -> citation, for quoted rows


# --- grouping runs into rows --------------------------------------------------------------

def _row_key(run: RunDir) -> str:
    settings = {k: v for k, v in result_settings(run.settings).items() if k not in PER_DATASET_SETTINGS}
    return json.dumps(settings, sort_keys=True, default=str)


def _short_model(model) -> str:
    """A checkpoint path or hub id by its last part (``/ckpt/tiny`` -> ``tiny``)."""
    text = str(model)
    if text.startswith("baseline:") or ("/" not in text and os.sep not in text):
        return text
    return os.path.basename(os.path.normpath(text))


def _label_part(key: str, value) -> str:
    if key == "model":
        return _short_model(value)
    if key == "steps":
        return f"{value} step" + ("" if value == 1 else "s")
    if key == "ensemble":
        return f"N={value}"
    if key == "timestep_spacing":
        return str(value)
    if key == "noise":
        return f"{value} noise"
    if key == "seed":
        return f"seed {value}"
    if key == "weights_sha256":
        return f"weights {str(value)[:12]}"
    if key == "decoder" and str(value).startswith("tiny:"):
        return f"tiny decoder {str(value)[5:17]}"
    return f"{key}={value}"


def row_labels(settings_list: list[dict]) -> list[str]:
    """Labels that tell rows apart.

    Model, steps and N always appear; the other settings of :data:`LABEL_ORDER` appear where
    they differ between rows. Settings derived from those (a timestep list, a resolved path)
    are added only to rows whose labels would otherwise be equal.
    """
    keys = []
    for settings in settings_list:
        keys += [k for k in settings if k not in keys]
    varying = [k for k in keys if len({json.dumps(s.get(k), default=str, sort_keys=True)
                                       for s in settings_list}) > 1]

    def label(settings, shown):
        parts = [_label_part(k, settings[k]) for k in shown if settings.get(k) is not None]
        return ", ".join(parts) or "run"

    main = [k for k in LABEL_ORDER if k in keys and (k in ALWAYS_LABELLED or k in varying)]
    labels = [label(s, main) for s in settings_list]
    extra = sorted(k for k in varying if k not in LABEL_ORDER)
    return [label(s, main + extra) if labels.count(text) > 1 else text
            for s, text in zip(settings_list, labels)]


def _check_sample_sets(runs: list[RunDir]) -> None:
    """Refuse runs of one dataset that were scored on different samples or protocols."""
    first: dict[str, RunDir] = {}
    for run in runs:
        seen = first.setdefault(run.dataset, run)
        diff = differences(sample_set(seen.summary), sample_set(run.summary), seen.path, run.path)
        if diff:
            raise BenchError(
                f"{run.dataset}: {seen.path} and {run.path} were scored on different samples or "
                "protocols, so their numbers cannot share a column:\n  " + "\n  ".join(diff))


def group_runs(runs: list[RunDir], metrics) -> list[Row]:
    """Rows of measured runs: runs with equal settings share a row, one cell per dataset."""
    _check_sample_sets(runs)
    groups: dict[str, list[RunDir]] = {}
    for run in runs:
        groups.setdefault(_row_key(run), []).append(run)
    keys = list(groups)
    labels = row_labels([json.loads(k) for k in keys])
    rows = []
    for key, label in zip(keys, labels):
        row, placed = Row(label), {}
        for run in groups[key]:
            if run.dataset in placed:
                other = placed[run.dataset]
                diff = differences(result_settings(other.settings), result_settings(run.settings),
                                   other.path, run.path)
                raise BenchError(
                    f"{run.dataset}: {other.path} and {run.path} both fill the row '{label}'"
                    + (" (they differ only in per-dataset settings:\n  " + "\n  ".join(diff) + ")"
                       if diff else " (same settings)")
                    + "; a table has one number per row and dataset: drop one of them, or compare "
                      "them with `marigold-bench compare`")
            placed[run.dataset] = run
            row.paths[run.dataset] = run.path
            row.counts[run.dataset] = (run.n, run.n_total)
            for metric in metrics:
                value = run.metrics.get(metric)
                if value is not None and math.isfinite(value):
                    row.values[(run.dataset, metric)] = display_value(metric, value)
        rows.append(row)
    return rows


# --- published numbers ----------------------------------------------------------------------

def load_reference(path: str | os.PathLike | None = None) -> tuple[list[Row], dict]:
    """Quoted rows of the reference CSV and its citations.

    The file has one row per method: ``method``, ``<dataset>_<metric>`` columns in percent as
    published, ``source`` (a short key) and ``citation`` (paper and table).
    """
    path = Path(path or REFERENCE_CSV)
    if not path.is_file():
        raise BenchError(f"reference numbers not found at {path}")
    frame = pd.read_csv(path)
    rows, sources = [], {}
    for _, line in frame.iterrows():
        row = Row(f"{line['method']} [{line['source']}]", quoted=True, source=str(line["source"]))
        sources[str(line["source"])] = str(line["citation"])
        for column, value in line.items():
            dataset, _, metric = str(column).partition("_")
            if metric in METRIC_KEYS and pd.notna(value):
                row.values[(dataset, metric)] = float(value)  # already in percent
        rows.append(row)
    return rows, sources


def build_table(runs: list[RunDir], metrics=DEFAULT_METRICS, reference: bool | str = False) -> Table:
    """Group runs into rows and add quoted rows when ``reference`` is true (or a CSV path).

    Raises:
        BenchError: an unknown metric, two runs for one cell, or mixed sample sets.
    """
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRIC_KEYS]
    if unknown:
        raise BenchError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRIC_KEYS)}")
    if not runs and not reference:
        raise BenchError("no run directories given")
    rows = group_runs(runs, metrics)
    sources = {}
    if reference:
        quoted, sources = load_reference(None if reference is True else reference)
        rows = quoted + rows
    present = {d for row in rows for d, _ in row.values} | {d for row in rows for d in row.paths}
    datasets = [d for d in DATASETS if d in present] + sorted(present - set(DATASETS))
    return Table(datasets, metrics, rows, sources)


# --- rendering ----------------------------------------------------------------------------

def _digits(metric: str, digits: int) -> int:
    # metres and log errors need more decimals than percentages to show a difference
    return digits if metric in PERCENT_METRICS else digits + 2


def _best(table: Table, digits: int) -> dict:
    """(dataset, metric) -> the best value at printed precision, in columns whose values differ."""
    best = {}
    for dataset in table.datasets:
        for metric in table.metrics:
            values = [round(r.values[(dataset, metric)], _digits(metric, digits))
                      for r in table.rows if (dataset, metric) in r.values]
            if len(set(values)) >= 2:  # one value, or all equal: nothing to single out
                best[(dataset, metric)] = max(values) if metric in HIGHER_IS_BETTER else min(values)
    return best


def _cells(table: Table, digits: int, bold, count):
    """Body rows as strings; ``bold(text)`` and ``count(n, total)`` do the format's markup."""
    best = _best(table, digits)
    body = []
    for row in table.rows:
        cells = []
        for dataset in table.datasets:
            n, total = row.counts.get(dataset, (None, None))
            for metric in table.metrics:
                value = row.values.get((dataset, metric))
                if value is None:
                    cells.append("–")
                    continue
                shown = round(value, _digits(metric, digits))
                text = f"{shown:.{_digits(metric, digits)}f}"
                if best.get((dataset, metric)) == shown:
                    text = bold(text)
                if n is not None and n < total:
                    text += count(n, total)
                cells.append(text)
        body.append(cells)
    return body


def _notes(table: Table) -> list[str]:
    notes = []
    shown = [m for m in table.metrics if m in PERCENT_METRICS]
    if shown:
        notes.append(", ".join(metric_title(m)[:-1] for m in shown) + " in percent (×100).")
    if any(n < t for row in table.rows for n, t in row.counts.values()):
        notes.append("(n/total): the run scored only n of its total samples (failed, skipped or "
                     "no valid pixel); see its per_sample.csv.")
    for key, citation in table.sources.items():
        notes.append(f"[{key}] quoted from {citation}.")
    return notes


def render_markdown(table: Table, digits: int = 1) -> str:
    """A Markdown (GitHub) table, one header row of ``<Dataset> <metric>`` columns, then notes."""
    headers = ["Method"] + [f"{DATASET_TITLES.get(d, d)} {metric_title(m)}"
                            for d in table.datasets for m in table.metrics]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    body = _cells(table, digits, lambda t: f"**{t}**", lambda n, t: f" ({n}/{t})")
    for row, cells in zip(table.rows, body):
        lines.append("| " + " | ".join([row.label.replace("|", "\\|")] + cells) + " |")
    notes = _notes(table)
    return "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(table: Table, digits: int = 1) -> str:
    """A booktabs ``tabular``: dataset names over their metric columns, quoted rows first."""
    k = len(table.metrics)
    lines = [r"\begin{tabular}{l" + "c" * (k * len(table.datasets)) + "}", r"\toprule"]
    groups = [rf"\multicolumn{{{k}}}{{c}}{{{latex_escape(DATASET_TITLES.get(d, d))}}}" for d in table.datasets]
    lines.append(" & ".join([""] + groups) + r" \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(table.datasets))))
    lines.append(" & ".join(["Method"] + [metric_title(m, latex=True) for _ in table.datasets
                                          for m in table.metrics]) + r" \\")
    lines.append(r"\midrule")
    body = _cells(table, digits, lambda t: rf"\textbf{{{t}}}", lambda n, t: rf" {{\scriptsize({n}/{t})}}")
    previous_quoted = None
    for row, cells in zip(table.rows, body):
        if previous_quoted and not row.quoted:
            lines.append(r"\midrule")  # published rows above, ours below
        previous_quoted = row.quoted
        lines.append(" & ".join([latex_escape(row.label)] + [c.replace("–", "--") for c in cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += ["% " + note.replace("×", "x") for note in _notes(table)]
    return "\n".join(lines) + "\n"


def render_csv(table: Table) -> str:
    """One line per row: label, quoted/source, then ``<dataset>_<metric>`` (display units) and
    ``<dataset>_n`` / ``<dataset>_n_total`` for measured rows, at full precision."""
    records = []
    for row in table.rows:
        record = {"method": row.label, "quoted": row.quoted, "source": row.source}
        for dataset in table.datasets:
            for metric in table.metrics:
                record[f"{dataset}_{metric}"] = row.values.get((dataset, metric))
            n, total = row.counts.get(dataset, (None, None))
            record[f"{dataset}_n"], record[f"{dataset}_n_total"] = n, total
        records.append(record)
    buffer = io.StringIO()
    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:
        if column.endswith("_n") or column.endswith("_n_total"):
            frame[column] = frame[column].astype("Int64")  # counts stay integers beside blanks
    frame.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue()


FORMATS = {"md": render_markdown, "latex": render_latex, "csv": lambda table, digits=1: render_csv(table)}


def render(table: Table, fmt: str = "md", digits: int = 1) -> str:
    """Render in ``md``, ``latex`` or ``csv``."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown table format {fmt!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[fmt](table, digits=digits)
