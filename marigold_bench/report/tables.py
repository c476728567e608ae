"""Paper-style tables from run directories: Markdown, LaTeX (booktabs) and CSV.

Layout as in the papers: one row per model configuration, datasets as column groups, and inside
each group the chosen metrics (AbsRel and δ1 by default), fractions printed ×100. Run
directories with equal settings on different datasets fill one row; two runs that would fill the
same cell are refused with a reason, as are runs of one dataset scored on different sample sets
or protocols (their numbers could not share a column). A run with failed, skipped or no-valid
samples is kept and its cells carry ``(n/total)``. The best value of each column is bold, among
rows scored alike only (`rank_group`): rows under different protocols are never ranked together.

Every measured row also says how its numbers were scored: the model's output space and the
alignment (with its fit space, and the protocol when it is not ``marigold``), read from
``summary.json``; run directories of 0.2, which do not record them, were scored as
``depth_affine_invariant`` with an affine fit. Runs of one model scored two ways are two rows.

``--reference`` adds the published rows of ``marigold_bench/resources/reference.csv`` (quoted, with
their source; shipped as package data, so it works from an installed wheel too). Beside them our
rows always name their ensembling preset, DDIM steps and timestep spacing, the settings that
decide whether a measured row is comparable with a quoted one.

A DIODE run that records its indoor and outdoor subsets (``summary["subsets"]``) fills the
columns ``DIODE`` (all), ``DIODE indoor`` and ``DIODE outdoor``: papers quote one or the other,
so all three are shown unless ``subsets`` chooses.

>>> table = build_table([load_run("runs/a"), load_run("runs/b")])
>>> print(render(table, "md"))
"""

from __future__ import annotations

import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from marigold_bench.data import DATASETS
from marigold_bench.data.registry import GROUPS, MEAN_GROUPS, mean_group_of, title_of
from marigold_bench.errors import BenchError
from marigold_bench.eval.identity import hash_differences, hash_was_computed, identity
from marigold_bench.eval.subset import subset_text
from marigold_bench.report.rundir import RunDir, differences, recorded_choices, result_settings, sample_set
from marigold_bench.tasks import DEFAULT_COLUMNS, METRICS, higher_is_better, metric_heading
from marigold_bench.tasks import display_value as _display_value

#: fractions that papers print ×100 (from the metric specs; kept for the ablation report)
PERCENT_METRICS = frozenset(k for k, spec in METRICS.items() if spec.percent)
DEFAULT_METRICS = ("abs_rel", "delta1")

#: settings that follow each benchmark's protocol, so they may differ inside one row (ETH3D runs
#: Marigold checkpoints at 756 without padding, as the official evaluation did)
PER_DATASET_SETTINGS = ("processing_res", "padding", "resample_input", "resample_output")

#: settings shown in every row label (others only when they differ between rows)
ALWAYS_LABELLED = ("model", "steps", "ensemble")
#: ... and beside quoted rows, which differ from ours exactly in these (issue 14, item 4)
ALWAYS_LABELLED_BESIDE_REFERENCE = ALWAYS_LABELLED + ("timestep_spacing", "ensembling")
LABEL_ORDER = ("model", "steps", "ensemble", "timestep_spacing", "noise", "seed", "precision",
               "ensembling")

#: settings with a column of their own, so never part of a label
OWN_COLUMN_SETTINGS = ("output_space",)

#: the protocol an alignment cell does not name (every run before 0.3 was scored by it)
DEFAULT_PROTOCOL = "marigold"

#: protocol entries that are a row's scoring choice, not its sample set: runs of one dataset
#: that differ in them share the column and sit in different rows
SCORING_PROTOCOL_KEYS = ("fit_space", "alignment", "output_space", "protocol")

OUTPUT_SPACE_TITLES = {"depth_affine_invariant": "affine-inv. depth",
                       "disparity_affine_invariant": "affine-inv. disparity",
                       "depth_scale_invariant": "scale-inv. depth", "depth_metric": "metric depth"}

#: the DIODE subsets a run may record, in column order; "all" is the dataset's own column
DIODE_SUBSETS = ("all", "indoor", "outdoor")

#: the published numbers shipped with the repository
REFERENCE_CSV = Path(__file__).resolve().parents[1] / "resources" / "reference.csv"


def metric_title(metric: str, latex: bool = False) -> str:
    """Column title with the direction arrow, e.g. ``AbsRel↓`` or (LaTeX) ``$\\delta_1\\uparrow$``
    (`marigold_bench.tasks.METRICS`)."""
    return metric_heading(metric, latex)


def display_value(metric: str, value: float) -> float:
    """A metric in the unit tables print: ×100 for percentages (`MetricSpec.percent`)."""
    return _display_value(metric, value)


def is_percent(metric: str) -> bool:
    """Whether tables print ``metric`` ×100."""
    return metric in METRICS and METRICS[metric].percent


@dataclass
class Row:
    """One table row: a configuration's values per (dataset, metric), in display units.

    ``output_space`` and ``alignment`` say how a measured row was scored (empty for quoted
    rows); ``failures`` maps a dataset to the message of a run that did not finish.
    """

    label: str
    values: dict = field(default_factory=dict)   # (dataset, metric) -> float
    counts: dict = field(default_factory=dict)   # dataset -> (n ok, n total)
    paths: dict = field(default_factory=dict)    # dataset -> run directory
    quoted: bool = False
    source: str = ""
    output_space: str = ""
    alignment: str = ""
    failures: dict = field(default_factory=dict)  # dataset -> message
    subsets: dict = field(default_factory=dict)   # dataset -> "first n of N" (a --max-samples run)


#: the mark of a cell measured on part of a benchmark (``--max-samples``), explained under the table
SUBSET_MARK = "†"


#: the column of the mean over a pack's benchmarks (`add_group_mean`)
MEAN_COLUMN = "mean"


@dataclass
class Table:
    """What a renderer needs: column groups, metrics, rows (quoted ones first) and notes.

    ``show_n`` adds an ``n`` column to every dataset group (the leaderboard shows it always;
    ``table`` marks only partial runs with ``(n/total)``).
    """

    datasets: list
    metrics: list
    rows: list
    sources: dict = field(default_factory=dict)  # source key -> citation, for quoted rows
    show_n: bool = False
    identity_notes: list = field(default_factory=list)  # columns whose runs differ in protocol hash
    mean_notes: list = field(default_factory=list)  # which benchmarks the mean column covers


@dataclass
class Failure:
    """A run that did not finish, for a marked row: which model (``key``, as the caller names
    it, and the ``label`` its row gets when no run of it finished), on which dataset, and why."""

    key: str
    label: str
    dataset: str
    message: str


# --- grouping runs into rows --------------------------------------------------------------

def scoring_of(summary: dict) -> dict:
    """How a run was scored: ``output_space``, ``alignment``, ``fit_space`` and ``protocol``
    (`marigold_bench.report.rundir.recorded_choices`; a 0.2 run records none of them and was
    scored as Marigold scores: ``depth_affine_invariant``, an affine fit in the benchmark
    protocol's fit space)."""
    choices = recorded_choices(summary)
    return {k: choices[k] for k in ("output_space", "alignment", "fit_space", "protocol")}


def alignment_text(scoring: dict) -> str:
    """The alignment cell: ``affine in disparity``, ``none``, ``moge: scale in depth``."""
    text = scoring["alignment"]
    if text != "none":
        text += f" in {scoring['fit_space']}"
    if scoring["protocol"] != DEFAULT_PROTOCOL:
        text = f"{scoring['protocol']}: {text}"
    return text


def _row_key(run: RunDir) -> str:
    settings = {k: v for k, v in result_settings(run.settings).items()
                if k not in PER_DATASET_SETTINGS and k not in OWN_COLUMN_SETTINGS}
    return json.dumps({"settings": settings, "scoring": scoring_of(run.summary)}, sort_keys=True, default=str)


def short_model(model) -> str:
    """A checkpoint path or hub id by its last part (``/ckpt/tiny`` -> ``tiny``)."""
    text = str(model)
    if text.startswith("baseline:") or ("/" not in text and os.sep not in text):
        return text
    return os.path.basename(os.path.normpath(text))


def _label_part(key: str, value) -> str:
    if key == "model":
        return short_model(value)
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
    if key == "ensembling":
        # the predictor records the resolved preset (its name and every parameter); the name says it
        name = value.get("preset", "custom") if isinstance(value, dict) else value
        return f"{name} ensembling"
    if key == "weights_sha256":
        return f"weights {str(value)[:12]}"
    if key == "decoder" and str(value).startswith("tiny:"):
        return f"tiny decoder {str(value)[5:17]}"
    return f"{key}={value}"


def row_labels(settings_list: list[dict], always=ALWAYS_LABELLED) -> list[str]:
    """Labels that tell rows apart.

    The settings in ``always`` appear in every label that has them (model, steps and N by
    default); the other settings of :data:`LABEL_ORDER` appear where they differ between rows.
    Settings derived from those (a timestep list, a resolved path) are added only to rows whose
    labels would otherwise be equal.
    """
    settings_list = [{k: v for k, v in s.items() if k not in OWN_COLUMN_SETTINGS} for s in settings_list]
    keys = _keys_of(settings_list)
    differing = _varying(settings_list, keys, count_absent=False)

    def label(settings, shown):
        parts = [_label_part(k, settings[k]) for k in shown if settings.get(k) is not None]
        return ", ".join(parts) or "run"

    main = [k for k in LABEL_ORDER if k in keys and (k in always or k in differing)]
    labels = [label(s, main) for s in settings_list]
    out = []
    for settings, text in zip(settings_list, labels):
        tied = [s for s, t in zip(settings_list, labels) if t == text]
        if len(tied) == 1:
            out.append(text)
            continue
        # only what tells the tied rows apart: first the values they both have, then (a 0.2 run
        # beside a 0.3 one) which of them has a setting at all
        tied_keys = _keys_of(tied)
        extra = [k for k in _varying(tied, tied_keys, count_absent=False) if k not in main]
        extra = extra or [k for k in _varying(tied, tied_keys, count_absent=True) if k not in main]
        out.append(label(settings, main + sorted(extra)))
    return out


def _keys_of(settings_list: list[dict]) -> list[str]:
    keys = []
    for settings in settings_list:
        keys += [k for k in settings if k not in keys]
    return keys


def _varying(settings_list: list[dict], keys: list[str], count_absent: bool) -> list[str]:
    """The keys whose values differ between the rows. A setting a model does not have (None: a
    transformers model's steps or ensembling) counts only with ``count_absent``."""
    def values(k):
        return {json.dumps(s.get(k), default=str, sort_keys=True) for s in settings_list
                if count_absent or s.get(k) is not None}
    return [k for k in keys if len(values(k)) > 1]


def _samples_of(summary: dict) -> dict:
    # the scoring choice (fit space, alignment) is the row's, so it may differ inside a column
    return {k: v for k, v in sample_set(summary).items() if k not in SCORING_PROTOCOL_KEYS}


def _check_sample_sets(runs: list[RunDir]) -> None:
    """Refuse runs of one dataset that were scored on different samples or protocols."""
    first: dict[str, RunDir] = {}
    for run in runs:
        seen = first.setdefault(run.dataset, run)
        diff = differences(_samples_of(seen.summary), _samples_of(run.summary), seen.path, run.path)
        if diff:
            raise BenchError(
                f"{run.dataset}: {seen.path} and {run.path} were scored on different samples or "
                "protocols, so their numbers cannot share a column:\n  " + "\n  ".join(diff))


def column_title(column: str) -> str:
    """``nyu`` -> ``NYUv2``, ``diode-indoor`` -> ``DIODE indoor``; the mean column by its group."""
    if column == MEAN_COLUMN:
        return "Mean"
    dataset, _, subset = column.partition("-")
    return title_of(dataset) + (f" {subset}" if subset else "")


def run_cells(run: RunDir, subsets=DIODE_SUBSETS) -> list[tuple[str, dict, int, int]]:
    """The columns one run fills: ``(column, metrics, n, n_total)``.

    A run fills its dataset's column, except a run that records subsets (DIODE: ``all``,
    ``indoor``, ``outdoor``), which fills one column per chosen subset: ``diode`` for ``all``,
    ``diode-indoor`` and ``diode-outdoor`` for the others.
    """
    recorded = run.summary.get("subsets")
    if not isinstance(recorded, dict) or not recorded:
        return [(run.dataset, run.metrics, run.n, run.n_total)]
    cells = []
    for subset in subsets:
        if subset == "all":
            part = recorded.get("all") or {"n": run.n, "n_total": run.n_total, "metrics": run.metrics}
        elif subset in recorded:
            part = recorded[subset]
        else:
            continue
        n = int(part.get("n", 0))
        if int(part.get("n_total", n)) == 0:
            continue  # a run of one half (--split indoor) has nothing in the other
        cells.append((run.dataset if subset == "all" else f"{run.dataset}-{subset}",
                      part.get("metrics") or {}, n, int(part.get("n_total", n))))
    return cells


def group_runs(runs: list[RunDir], metrics, always=ALWAYS_LABELLED, subsets=DIODE_SUBSETS) -> list[Row]:
    """Rows of measured runs: runs with equal settings (and scoring) share a row, one cell per
    dataset (per chosen subset where a run records them, see `run_cells`)."""
    _check_sample_sets(runs)
    groups: dict[str, list[RunDir]] = {}
    for run in runs:
        groups.setdefault(_row_key(run), []).append(run)
    keys = list(groups)
    labels = row_labels([json.loads(k)["settings"] for k in keys], always)
    rows = []
    for key, label in zip(keys, labels):
        scoring = json.loads(key)["scoring"]
        row, placed = Row(label, output_space=scoring["output_space"], alignment=alignment_text(scoring)), {}
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
            for column, values, n, total in run_cells(run, subsets):
                row.paths[column] = run.path
                row.counts[column] = (n, total)
                if subset_text(run.summary):
                    row.subsets[column] = subset_text(run.summary)
                for metric in metrics:
                    value = values.get(metric)
                    if value is not None and math.isfinite(value):
                        row.values[(column, metric)] = display_value(metric, value)
        rows.append(row)
    return rows


def add_failures(rows: list[Row], failures, origins: dict | None = None) -> list[Row]:
    """Mark the runs that did not finish.

    A failure joins the row of a finished run of the same model (``origins`` maps a run
    directory to the ``key`` of the model it ran, as the caller names it); a model with no
    finished run gets a row of its own, labelled ``<label> (failed: <message>)``.
    """
    origins = {os.path.abspath(k): v for k, v in (origins or {}).items()}
    rows = list(rows)
    own: dict[str, Row] = {}
    for failure in failures:
        row = next((r for r in rows if not r.quoted and any(
            origins.get(os.path.abspath(p)) == failure.key for p in r.paths.values())), None)
        if row is None:
            row = own.get(failure.key)
        if row is None:
            row = own[failure.key] = Row(failure.label)
            rows.append(row)
        row.failures[failure.dataset] = _one_line(failure.message)
    for row in own.values():
        messages = list(dict.fromkeys(row.failures.values()))
        row.label += f" (failed: {messages[0]})" if len(messages) == 1 else " (failed)"
    return rows


def _one_line(message: str, limit: int = 160) -> str:
    text = " ".join(str(message).split()) or "failed"
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
            if metric in METRICS and pd.notna(value):
                row.values[(dataset, metric)] = float(value)  # already in percent
        rows.append(row)
    return rows, sources


def _column_order(column: str) -> tuple:
    dataset, _, subset = column.partition("-")
    known = dataset in DATASETS
    return (not known, DATASETS.index(dataset) if known else 0, dataset,
            DIODE_SUBSETS.index(subset) if subset in DIODE_SUBSETS else (0 if not subset else len(DIODE_SUBSETS)),
            subset)


def _datasets_of(rows: list[Row]) -> set[str]:
    """The dataset columns ``rows`` fill (values, run directories or failures)."""
    return ({d for row in rows for d, _ in row.values} | {d for row in rows for d in row.paths}
            | {d for row in rows for d in row.failures})


def _quoted_for(quoted: list[Row], datasets: set[str]) -> list[Row]:
    """Published rows cut to the benchmarks that were run (all of them when none was, as for
    ``table --reference`` alone): a paper's other columns would only widen the table, and a
    paper without a number on these benchmarks has no row."""
    if not datasets:
        return quoted
    for row in quoted:
        row.values = {key: value for key, value in row.values.items() if key[0] in datasets}
    return [row for row in quoted if row.values]


def build_table(runs: list[RunDir], metrics=DEFAULT_METRICS, reference: bool | str = False,
                failures=(), origins: dict | None = None, subsets=DIODE_SUBSETS,
                show_n: bool = False) -> Table:
    """Group runs into rows and add quoted rows when ``reference`` is true (or a CSV path).

    Args:
        runs: loaded run directories.
        metrics: metric keys of every column group.
        reference: add the published rows (True: the bundled CSV; or a CSV path). Our rows then
            always name their ensembling preset, steps and spacing.
        failures: :class:`Failure` records of runs that did not finish (marked rows, see
            `add_failures`), with ``origins`` mapping run directories to the failures' keys.
        subsets: the DIODE subsets shown for runs that record them (``all``, ``indoor``,
            ``outdoor``).
        show_n: an ``n`` column in every dataset group.

    Raises:
        BenchError: an unknown metric or subset, two runs for one cell, or mixed sample sets.
    """
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise BenchError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    subsets = list(subsets)
    wrong = [s for s in subsets if s not in DIODE_SUBSETS]
    if wrong or not subsets:
        raise BenchError(f"unknown subset(s) {', '.join(wrong) or '(none given)'}; known: {', '.join(DIODE_SUBSETS)}")
    if not runs and not reference and not failures:
        raise BenchError("no run directories given")
    tasks = sorted({run_task(run) for run in runs})
    if len(tasks) > 1:  # angles and depth errors never share a column, let alone a mean
        raise BenchError(f"these runs score different tasks ({', '.join(tasks)}); one table holds one task "
                         "(`build_tables` makes one per task)")
    rows = group_runs(runs, metrics, ALWAYS_LABELLED_BESIDE_REFERENCE if reference else ALWAYS_LABELLED,
                      subsets)
    rows = add_failures(rows, failures, origins)
    sources = {}
    if reference:
        quoted, sources = load_reference(None if reference is True else reference)
        rows = _quoted_for(quoted, _datasets_of(rows)) + rows
        sources = {key: text for key, text in sources.items() if any(r.source == key for r in rows)}
    present = _datasets_of(rows)
    datasets = sorted(present, key=_column_order)
    table = Table(datasets, metrics, rows, sources, show_n=show_n, identity_notes=identity_notes(runs))
    return add_group_mean(table)


def add_group_mean(table: Table) -> Table:
    """A ``Mean`` column after the benchmarks of a pack whose papers report their mean
    (:data:`~marigold_bench.data.registry.MEAN_GROUPS`: MoGe's ten), when the table has two or
    more of them: per row and metric, the mean of the per-benchmark values, as MoGe averages.

    Only benchmarks every row has (per metric, among the rows with that metric on any of them)
    enter the mean, so each row's mean covers the same benchmarks; a note names them and those
    left out. Quoted rows are measured elsewhere and get no mean.
    """
    found = mean_group_of(table.datasets)
    if found is None:
        return table
    group, members = found
    covered: dict[tuple, list[str]] = {}  # (benchmarks in the mean, left out) -> metrics
    for metric in table.metrics:
        rows = [r for r in table.rows if not r.quoted and any((d, metric) in r.values for d in members)]
        if not rows:
            continue
        common = tuple(d for d in members if all((d, metric) in r.values for r in rows))
        if common:
            for row in rows:
                row.values[(MEAN_COLUMN, metric)] = sum(row.values[(d, metric)] for d in common) / len(common)
        covered.setdefault((common, tuple(d for d in members if d not in common)), []).append(metric)
    missing = [d for d in GROUPS[group] if d not in members]
    for (common, left_out), metrics in covered.items():
        text = (f"{MEAN_GROUPS[group]} of {', '.join(metric_title(m)[:-1] for m in metrics)}: the mean over "
                f"{', '.join(map(column_title, common)) or 'no benchmark'}")
        if left_out:
            text += f"; left out, as not every row has it: {', '.join(map(column_title, left_out))}"
        if missing:
            text += f"; not in this table: {', '.join(map(column_title, missing))}"
        table.mean_notes.append(text + ".")
    if any(MEAN_COLUMN == d for r in table.rows for d, _ in r.values):
        table.datasets = table.datasets + [MEAN_COLUMN]
    return table


def run_task(run: RunDir) -> str:
    """The task a run scored (``summary.json["task"]``; runs before 0.4: depth)."""
    return run.summary.get("task") or (run.summary.get("scoring") or {}).get("task") or "depth"


def metrics_for_task(task: str, metrics) -> list[str]:
    """The columns of ``task``'s table: the asked ``metrics`` that measure it, else its defaults
    (depth: `DEFAULT_METRICS`; normals: mean, median, %<11.25, %<30)."""
    own = [m for m in metrics if m in METRICS and METRICS[m].task == task]
    return own or list(DEFAULT_COLUMNS.get(task, DEFAULT_METRICS))


def build_tables(runs: list[RunDir], metrics=DEFAULT_METRICS, reference: bool | str = False,
                 failures=(), origins: dict | None = None, subsets=DIODE_SUBSETS,
                 show_n: bool = False) -> list[Table]:
    """One `build_table` per task the runs score (depth first), each with the metrics of its task
    (`metrics_for_task`): depth and normals runs are never mixed in one column or mean. Quoted
    rows and failures go with the depth table (the only task with published rows).

    Raises:
        BenchError: as `build_table`, and a metric no task knows.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise BenchError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    by_task: dict[str, list[RunDir]] = {}
    for run in runs:
        by_task.setdefault(run_task(run), []).append(run)
    if not by_task:
        by_task["depth"] = []
    tables = []
    for task in sorted(by_task, key=lambda t: (t != "depth", t)):
        first = not tables
        tables.append(build_table(by_task[task], metrics_for_task(task, metrics), reference if first else False,
                                  failures if first else (), origins, subsets, show_n))
    return tables


def identity_notes(runs: list[RunDir]) -> list[str]:
    """One line per dataset whose runs were computed under different protocol hashes
    (`marigold_bench.eval.identity`): which hashes, and the first inputs that differ
    (`marigold-bench compare A B` shows them all)."""
    by_column: dict[str, dict[str, list]] = {}
    for run in runs:
        ident = identity(run.summary)
        by_column.setdefault(run.dataset, {}).setdefault(ident["protocol_hash"], []).append(run)
    notes = []
    for dataset, groups in by_column.items():
        if len(groups) < 2:
            continue
        (first_hash, (first, *_)), *others = list(groups.items())
        hashes = "; ".join(_hash_group(h, rs) for h, rs in groups.items())
        # every other hash against the first, so a third protocol's differences are named too
        differences = []
        for other_hash, (other, *_) in others:
            what = hash_differences(first.summary, other.summary)
            shown = f"{'; '.join(what[:3])}{' ...' if len(what) > 3 else ''}"
            differences.append(shown if len(others) == 1 else f"{other_hash} from {first_hash}: {shown}")
        notes.append(f"{column_title(dataset)}: rows were computed under {len(groups)} protocol hashes ({hashes}); "
                     f"they differ in {' | '.join(differences)} (`marigold-bench compare` shows every difference).")
    return notes


def _hash_group(protocol_hash: str, runs: list) -> str:
    """``<hash> (<protocol id>, <n> run(s))``, saying when the hash was computed for old runs."""
    ident = identity(runs[0].summary)
    return (f"{protocol_hash} ({ident['protocol_id']}, {len(runs)} run(s)"
            f"{', computed: written before 0.4' if hash_was_computed(ident) else ''})")


# --- rendering ----------------------------------------------------------------------------

def metric_digits(metric: str, digits: int) -> int:
    """Decimals a metric is printed with: ``digits`` for percentages, two more otherwise."""
    # metres and log errors need more decimals than percentages to show a difference
    return digits if is_percent(metric) else digits + 2


#: the ranking group of quoted rows: the papers in reference.csv score as the marigold protocol
#: does for depth (an affine fit in depth), which is what `alignment_text` calls it
QUOTED_RANK_GROUP = "affine in depth"


def rank_group(row: Row) -> str:
    """The rows a row is ranked among: those scored alike (protocol, alignment and fit space, as
    its alignment cell names them). A number from another protocol is not better or worse, only
    different, so no column singles one out across groups."""
    return row.alignment or QUOTED_RANK_GROUP


def rank_groups(table: Table) -> list[str]:
    """The ranking groups of the rows that have a value, in row order."""
    return list(dict.fromkeys(rank_group(r) for r in table.rows if r.values))


def best_values(table: Table, digits: int) -> dict:
    """(dataset, metric, rank group) -> the best value at printed precision among the rows of
    that group (`rank_group`), where their values differ."""
    best = {}
    for dataset in table.datasets:
        for metric in table.metrics:
            for group in rank_groups(table):
                values = [round(r.values[(dataset, metric)], metric_digits(metric, digits))
                          for r in table.rows if (dataset, metric) in r.values and rank_group(r) == group]
                if len(set(values)) >= 2:  # one value, or all equal: nothing to single out
                    best[(dataset, metric, group)] = max(values) if higher_is_better(metric) else min(values)
    return best


def group_width(table: Table) -> int:
    """Columns per dataset group: the metrics, and ``n`` when the table shows it."""
    return len(table.metrics) + int(table.show_n)


def _count_text(n, total) -> str:
    if n is None:
        return "–"
    return str(n) if n >= total else f"{n}/{total}"


def format_cells(table: Table, digits: int, bold, count):
    """Body rows as strings; ``bold(text)`` and ``count(n, total)`` do the format's markup.

    Each row starts with its output space and alignment cells, then every dataset group: the
    metrics (``failed`` for a run that did not finish) and, with ``show_n``, the count.
    """
    best = best_values(table, digits)
    body = []
    for row in table.rows:
        cells = [OUTPUT_SPACE_TITLES.get(row.output_space, row.output_space) or "–", row.alignment or "–"]
        for dataset in table.datasets:
            n, total = row.counts.get(dataset, (None, None))
            failed = dataset in row.failures
            for metric in table.metrics:
                value = row.values.get((dataset, metric))
                if value is None:
                    cells.append("failed" if failed else "–")
                    continue
                shown = round(value, metric_digits(metric, digits))
                text = f"{shown:.{metric_digits(metric, digits)}f}"
                if best.get((dataset, metric, rank_group(row))) == shown:
                    text = bold(text)
                if n is not None and n < total and not table.show_n:
                    text += count(n, total)
                if dataset in row.subsets:
                    text += SUBSET_MARK
                cells.append(text)
            if table.show_n:
                cells.append(_count_text(n, total))
        body.append(cells)
    return body


def table_notes(table: Table) -> list[str]:
    """The lines under a table: units, partial runs, failures, citations."""
    notes = []
    shown = [m for m in table.metrics if is_percent(m)]
    if shown:
        notes.append(", ".join(metric_title(m)[:-1] for m in shown) + " in percent (×100).")
    if any(n < t for row in table.rows for n, t in row.counts.values()):
        if table.show_n:
            notes.append("n/total: the run scored only n of its total samples (failed, skipped or "
                         "no valid pixel); see its per_sample.csv.")
        else:
            notes.append("(n/total): the run scored only n of its total samples (failed, skipped or "
                         "no valid pixel); see its per_sample.csv.")
    for row in table.rows:
        if row.failures and row.counts:  # a row of its own already says why in its label
            for dataset, message in row.failures.items():
                notes.append(f"{row.label}, {column_title(dataset)}: failed: {message}")
    groups = rank_groups(table)
    if len(groups) > 1:
        notes.append("Rows scored under different protocols are not ranked together: bold marks the best "
                     f"among rows scored alike ({'; '.join(groups)}).")
    subsets = [f"{row.label}, {column_title(d)} ({text})" for row in table.rows for d, text in row.subsets.items()]
    if subsets:
        notes.append(f"{SUBSET_MARK} measured on part of the benchmark (--max-samples): " + "; ".join(subsets) + ".")
    notes += table.identity_notes
    notes += table.mean_notes
    for key, citation in table.sources.items():
        notes.append(f"[{key}] quoted from {citation}.")
    return notes


def header_cells(table: Table, title) -> list[str]:
    """``Method``, ``Output space``, ``Alignment``, then ``title(dataset, column)`` per column."""
    columns = [metric_title(m) for m in table.metrics] + (["n"] if table.show_n else [])
    return ["Method", "Output space", "Alignment"] + [title(d, c) for d in table.datasets for c in columns]


def markdown_text(text: str) -> str:
    """Text from run directories (labels, names, messages) as Markdown shows it: HTML-escaped,
    since Markdown passes raw HTML through (a model named ``<script>`` would run in a viewer)."""
    return html.escape(str(text), quote=False)


def render_markdown(table: Table, digits: int = 1) -> str:
    """A Markdown (GitHub) table, one header row of ``<Dataset> <metric>`` columns, then notes."""
    headers = [markdown_text(h) for h in header_cells(table, lambda d, c: f"{column_title(d)} {c}")]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join([":---"] * 3 + ["---:"] * (len(headers) - 3)) + "|"]
    body = format_cells(table, digits, lambda t: f"**{t}**", lambda n, t: f" ({n}/{t})")
    for row, cells in zip(table.rows, body):
        # the label and the output-space and alignment cells are text; the rest our own markup
        texts = [markdown_text(c) for c in [row.label] + cells[:2]] + cells[2:]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in texts) + " |")
    notes = [markdown_text(n) for n in table_notes(table)]
    return "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(table: Table, digits: int = 1) -> str:
    """A booktabs ``tabular``: dataset names over their metric columns, quoted rows first."""
    k = group_width(table)
    lines = [r"\begin{tabular}{lll" + "c" * (k * len(table.datasets)) + "}", r"\toprule"]
    groups = [rf"\multicolumn{{{k}}}{{c}}{{{latex_escape(column_title(d))}}}" for d in table.datasets]
    lines.append(" & ".join(["", "", ""] + groups) + r" \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{4 + i * k}-{3 + (i + 1) * k}}}" for i in range(len(table.datasets))))
    columns = [metric_title(m, latex=True) for m in table.metrics] + (["$n$"] if table.show_n else [])
    lines.append(" & ".join(["Method", "Output space", "Alignment"]
                            + [c for _ in table.datasets for c in columns]) + r" \\")
    lines.append(r"\midrule")
    body = format_cells(table, digits, lambda t: rf"\textbf{{{t}}}", lambda n, t: rf" {{\scriptsize({n}/{t})}}")
    previous_quoted = None
    for row, cells in zip(table.rows, body):
        if previous_quoted and not row.quoted:
            lines.append(r"\midrule")  # published rows above, ours below
        previous_quoted = row.quoted
        texts = [latex_escape(row.label)] + [latex_escape(c) for c in cells[:2]] + cells[2:]
        lines.append(" & ".join(t.replace("–", "--") for t in texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += ["% " + note.replace("×", "x") for note in table_notes(table)]
    return "\n".join(lines) + "\n"


#: first characters that make a spreadsheet read a cell as a formula (or, tab and carriage
#: return, hide one); such a text cell gets a leading ``'``
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value):
    """A text cell made safe to open in a spreadsheet (formula injection); numbers and other
    values unchanged, so ``-0.5`` stays a number."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


def render_csv(table: Table) -> str:
    """One line per row: label, quoted/source, output space and alignment, then
    ``<dataset>_<metric>`` (display units) and ``<dataset>_n`` / ``<dataset>_n_total`` for
    measured rows, at full precision; a ``failed`` column (``dataset: message; ...``) when a run
    did not finish, a ``subset`` column (``dataset: first n of N; ...``) when one ran on part of
    its benchmark."""
    records = []
    any_failed = any(row.failures for row in table.rows)
    for row in table.rows:
        record = {"method": row.label, "quoted": row.quoted, "source": row.source,
                  "output_space": row.output_space, "alignment": row.alignment}
        for dataset in table.datasets:
            for metric in table.metrics:
                record[f"{dataset}_{metric}"] = row.values.get((dataset, metric))
            n, total = row.counts.get(dataset, (None, None))
            record[f"{dataset}_n"], record[f"{dataset}_n_total"] = n, total
        if any_failed:
            record["failed"] = "; ".join(f"{d}: {m}" for d, m in row.failures.items())
        if any(r.subsets for r in table.rows):
            record["subset"] = "; ".join(f"{d}: {t}" for d, t in row.subsets.items())
        records.append({csv_text(k): csv_text(v) for k, v in record.items()})
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
