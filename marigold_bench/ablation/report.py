"""A study's results as the paper shows them: mean ± std over seeds, a table and a plot.

:func:`aggregate` turns the runner's one-row-per-run frame into one row per study coordinate
(axis value, and series value where the study has one); :func:`study_markdown` prints it;
:func:`write_study_report` writes ``results.csv`` (every run), ``table.csv`` (aggregated,
fractions), ``table.md`` and ``plot.png``/``plot.pdf`` into the study directory.
"""

from __future__ import annotations

import math
import os

import pandas as pd

from marigold_bench.ablation.studies import Study
from marigold_bench.eval.metrics import HIGHER_IS_BETTER, METRIC_KEYS
from marigold_bench.report.tables import PERCENT_METRICS, display_value, metric_title

AXIS_TITLES = {"ensemble": "N", "steps": "DDIM steps", "timestep_spacing": "spacing",
               "noise": "inference noise", "train_noise": "training noise", "seed": "seed"}


def _coordinates(study: Study) -> list[str]:
    return ([study.series] if study.series else []) + [study.axis]


def aggregate(frame: pd.DataFrame, study: Study, metrics=METRIC_KEYS) -> pd.DataFrame:
    """Mean and std (over seeds) of each metric per study coordinate.

    Columns: the coordinates, ``<metric>_mean``, ``<metric>_std`` (NaN with one seed),
    ``seeds``, ``n`` (fewest ok samples of any seed) and ``n_total``. Numeric axes are sorted
    ascending; categories keep the planned order.
    """
    keys = _coordinates(study)
    # a run with no scored sample has no metrics (None): make them NaN so the means still work
    frame = frame.assign(**{m: pd.to_numeric(frame[m], errors="coerce") for m in metrics})
    grouped = frame.groupby(keys, sort=False)
    out = grouped[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["seeds"] = grouped.size()
    out["n"] = grouped["n"].min()
    out["n_total"] = grouped["n_total"].max()
    out = out.reset_index()
    if study.kind is int:
        out = out.sort_values(keys, key=lambda col: col if col.name == study.axis else col.map(
            {v: i for i, v in enumerate(study.series_values)}), kind="stable")
    return out.reset_index(drop=True)


def _fmt(metric: str, value: float) -> str:
    digits = 2 if metric in PERCENT_METRICS else 3
    return f"{display_value(metric, value):.{digits}f}"


def _mean_std(row, metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = _fmt(metric, mean)
    return text if std is None or math.isnan(std) else f"{text} ± {_fmt(metric, std)}"


def _partial(row) -> str:
    return f" ({int(row['n'])}/{int(row['n_total'])})" if row["n"] < row["n_total"] else ""


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _best_index(values: pd.Series, metric: str):
    """Rows holding the best mean as printed (ties at printed precision are all best)."""
    shown = values.dropna().map(lambda v: _fmt(metric, v)).astype(float)
    if len(shown) < 2:
        return set()
    best = shown.max() if metric in HIGHER_IS_BETTER else shown.min()
    winners = set(shown.index[shown == best])
    return set() if len(winners) == len(shown) else winners  # all equal: nothing stands out


def _long_table(agg: pd.DataFrame, study: Study, metrics) -> str:
    keys = _coordinates(study)
    headers = [AXIS_TITLES.get(k, k) for k in keys] + [metric_title(m) for m in metrics] + ["seeds", "n"]
    best = {m: _best_index(agg[f"{m}_mean"], m) for m in metrics}
    rows = []
    for i, row in agg.iterrows():
        cells = [agg.at[i, k] for k in keys]  # iterrows turns ints into floats; .at keeps them
        for m in metrics:
            text = _mean_std(row, m)
            cells.append(f"**{text}**" if i in best[m] else text)
        rows.append(cells + [int(row["seeds"]), f"{int(row['n'])}/{int(row['n_total'])}"])
    return _markdown(headers, rows)


def _versus_table(agg: pd.DataFrame, study: Study, metrics) -> str:
    """Series values side by side per axis value, with their difference (first − second)."""
    first, second = study.series_values[:2]
    headers = [AXIS_TITLES.get(study.axis, study.axis)]
    for m in metrics:
        headers += [f"{first} {metric_title(m)}", f"{second} {metric_title(m)}", f"Δ {first} − {second}"]
    rows = []
    for value, part in agg.groupby(study.axis, sort=False):
        by_series = {r[study.series]: r for _, r in part.iterrows()}
        cells = [value]
        for m in metrics:
            a, b = by_series.get(first), by_series.get(second)
            cells += [("–" if a is None else _mean_std(a, m) + _partial(a)),
                      ("–" if b is None else _mean_std(b, m) + _partial(b))]
            if a is None or b is None:
                cells.append("–")
            else:
                delta = a[f"{m}_mean"] - b[f"{m}_mean"]
                digits = 2 if m in PERCENT_METRICS else 3
                cells.append(f"{display_value(m, delta):+.{digits}f}")
        rows.append(cells)
    return _markdown(headers, rows)


def study_markdown(agg: pd.DataFrame, study: Study, metrics=("abs_rel", "delta1"), context: str = "") -> str:
    """The study table in Markdown, with its title and a line saying how to read it."""
    if study.layout == "versus" and study.series and len(study.series_values) >= 2:
        body = _versus_table(agg, study, metrics)
    else:
        body = _long_table(agg, study, metrics)
    percent = [metric_title(m)[:-1] for m in metrics if m in PERCENT_METRICS]
    notes = ["mean ± std over seeds" + (f"; {', '.join(percent)} ×100" if percent else "")
             + "; n: fewest samples scored ok in any seed / samples in the set"]
    if context:
        notes.insert(0, context)
    return f"## {study.title}\n\n" + "\n".join(notes) + "\n\n" + body + "\n"


def write_study_report(frame: pd.DataFrame, study: Study, out_dir: str, metrics=("abs_rel", "delta1"),
                       context: str = "") -> dict:
    """Write results.csv, table.csv, table.md and the plot; returns ``{name: path(s)}``."""
    from marigold_bench.report import plots

    agg = aggregate(frame, study)
    paths = {"results": os.path.join(out_dir, "results.csv"), "table_csv": os.path.join(out_dir, "table.csv"),
             "table_md": os.path.join(out_dir, "table.md")}
    frame.to_csv(paths["results"], index=False, float_format="%.8g")
    agg.to_csv(paths["table_csv"], index=False, float_format="%.8g")
    markdown = study_markdown(agg, study, metrics, context)
    with open(paths["table_md"], "w") as f:
        f.write(markdown)
    base = os.path.join(out_dir, "plot")
    if study.plot == "bars":
        paths["plot"] = plots.plot_metric_bars(agg, study.axis, base, metrics, title=study.title)
    else:
        paths["plot"] = plots.plot_metric_curve(agg, study.axis, base, metrics, series=study.series,
                                                xlabel=AXIS_TITLES.get(study.axis, study.axis),
                                                title=study.title, logx=study.logx)
    paths["markdown"] = markdown
    return paths
