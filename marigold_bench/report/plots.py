"""Figures of the ablations and of single runs (matplotlib, Agg backend: no display needed).

Every function writes ``<out_base>.png`` and ``<out_base>.pdf`` and returns both paths.

* :func:`plot_metric_curve` -- metrics against one setting, one line per value of another
  (mean over seeds with ±1 std error bars); :func:`plot_metric_vs_ensemble` and
  :func:`plot_metric_vs_steps` are its two paper figures (N; DDIM steps under both spacings).
* :func:`plot_metric_bars` -- metrics per category (noise types, checkpoints).
* :func:`depth_gallery` -- input, ground truth, aligned prediction and error of chosen samples
  of a run directory, read from its ``predictions.h5`` and the dataset.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only: works on CI machines and over ssh without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from marigold_bench.report.tables import display_value, metric_title  # noqa: E402

FORMATS = ("png", "pdf")


def _save(fig, out_base: str) -> list[str]:
    os.makedirs(os.path.dirname(os.fspath(out_base)) or ".", exist_ok=True)
    paths = []
    for ext in FORMATS:
        path = f"{out_base}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _axis_title(metric: str) -> str:
    unit = " (×100)" if display_value(metric, 1.0) != 1.0 else ""
    return metric_title(metric) + unit


def plot_metric_curve(frame, x: str, out_base: str, metrics=("abs_rel", "delta1"), series: str | None = None,
                      xlabel: str | None = None, title: str | None = None, logx: bool = False) -> list[str]:
    """Line plot of aggregated metrics against ``x``.

    Args:
        frame: one row per (``series``, ``x``) with ``<metric>_mean`` and optionally
            ``<metric>_std`` columns in summary.json units (as :mod:`marigold_bench.ablation.report`
            writes them).
        x: the numeric column on the horizontal axis.
        series: a column whose values each get their own line (e.g. ``timestep_spacing``).
        logx: logarithmic x axis (DDIM steps span 1 to 50).
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    groups = [(None, frame)] if series is None else list(frame.groupby(series, sort=False))
    for ax, metric in zip(axes[0], metrics):
        for name, part in groups:
            part = part.sort_values(x)
            mean = display_value(metric, part[f"{metric}_mean"].to_numpy(dtype=float))
            std = part.get(f"{metric}_std")
            err = None if std is None else display_value(metric, std.fillna(0).to_numpy(dtype=float))
            ax.errorbar(part[x].to_numpy(), mean, yerr=err, marker="o", capsize=3,
                        label=None if name is None else str(name))
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(_axis_title(metric))
        if logx:
            ax.set_xscale("log")
            ticks = sorted(frame[x].unique())
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
        ax.grid(alpha=0.3)
        if series is not None:
            ax.legend(title=series.replace("_", " "))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out_base)


def plot_metric_vs_ensemble(frame, out_base: str, metrics=("abs_rel", "delta1"), title=None) -> list[str]:
    """Metrics against the test-time ensemble size N (mean ± std over seeds)."""
    return plot_metric_curve(frame, "ensemble", out_base, metrics, xlabel="ensemble size N", title=title)


def plot_metric_vs_steps(frame, out_base: str, metrics=("abs_rel", "delta1"), title=None) -> list[str]:
    """Metrics against DDIM steps, one line per timestep spacing (trailing, leading)."""
    return plot_metric_curve(frame, "steps", out_base, metrics, series="timestep_spacing",
                             xlabel="DDIM steps", title=title, logx=True)


def plot_metric_bars(frame, x: str, out_base: str, metrics=("abs_rel", "delta1"), title=None) -> list[str]:
    """Bar chart of aggregated metrics per category in column ``x`` (±1 std whiskers)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    labels = [str(v) for v in frame[x]]
    for ax, metric in zip(axes[0], metrics):
        mean = display_value(metric, frame[f"{metric}_mean"].to_numpy(dtype=float))
        std = frame.get(f"{metric}_std")
        err = None if std is None else display_value(metric, std.fillna(0).to_numpy(dtype=float))
        ax.bar(labels, mean, yerr=err, capsize=3, color="tab:blue", alpha=0.8)
        ax.set_ylabel(_axis_title(metric))
        ax.set_xlabel(x.replace("_", " "))
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out_base)


# --- gallery ------------------------------------------------------------------------------

def _protocol_of(summary: dict):
    """The benchmark protocol the run recorded (its summary.json), so the gallery's data is the run's."""
    import dataclasses

    from marigold_bench.data import get_protocol
    base = get_protocol(summary["dataset"])
    recorded = summary.get("protocol") or {}
    fields = {f.name for f in dataclasses.fields(base)}
    return base.replace(**{k: v for k, v in recorded.items() if k in fields and k != "name"})


def recorded_scoring(summary: dict, dataset_protocol):
    """The run's own scoring (protocol, output space, alignment, fit space), resolved again from
    what its ``summary.json`` recorded, so a figure aligns each prediction as it was scored."""
    from marigold_bench.eval.protocols import resolve_scoring
    from marigold_bench.eval.rundir import recorded_choices

    own = recorded_choices(summary)
    return resolve_scoring(dataset_protocol, own["protocol"], output_space=own["output_space"],
                           alignment=own["alignment"], fit_space=own["fit_space"], boundary_f1=0)


def aligned_as_scored(pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, scoring) -> np.ndarray:
    """``pred`` aligned to ``depth`` the way ``scoring`` aligned it for its metrics: the package's
    one alignment dispatcher (`marigold_bench.eval.align.align`), which runs the scoring's own
    protocol (fit, disparity floor, clipping). The one place figures align a prediction."""
    from marigold_bench.eval.align import align

    return align(pred, depth, np.asarray(valid, dtype=bool), scoring)[0]


def pick_samples(run, k: int = 3, metric: str = "abs_rel") -> list[str]:
    """Best, median and worst ok samples by ``metric`` (``k`` spread evenly over the ranking)."""
    ok = run.ok_samples().sort_values(metric)
    if ok.empty:
        return []
    positions = np.unique(np.linspace(0, len(ok) - 1, num=min(k, len(ok))).round().astype(int))
    return [ok.index[i] for i in positions]


def gallery_rows(run_dir: str, sample_ids=None, dataset=None, data_root=None, k: int = 3) -> list[dict]:
    """What `depth_gallery` draws, one dict per sample: ``id``, ``rgb``, ``depth``, ``valid``,
    ``aligned`` (the prediction aligned as the run scored it), ``error`` (absolute relative error
    per valid pixel, NaN elsewhere) and ``abs_rel`` (its mean, the number the caption shows).

    Arguments as in `depth_gallery`.
    """
    from marigold_bench.data import load_dataset
    from marigold_bench.errors import BenchError
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.eval.predictions import fit_to_shape
    from marigold_bench.eval.rundir import PREDICTIONS, load_run

    run = load_run(run_dir)
    protocol = _protocol_of(run.summary)
    if dataset is None:
        root = data_root or (run.summary.get("protocol") or {}).get("root")
        dataset = load_dataset(run.dataset, root, protocol=protocol)
    scoring = recorded_scoring(run.summary, dataset.protocol)
    ids = list(sample_ids) if sample_ids else pick_samples(run, k)
    if not ids:
        raise BenchError(f"{run_dir}: no scored sample to show")
    index = {sid: i for i, sid in enumerate(dataset.ids)}
    missing = [sid for sid in ids if sid not in index]
    if missing:
        raise BenchError(f"sample(s) not in the dataset: {', '.join(missing)}")

    h5 = os.path.join(run_dir, PREDICTIONS)
    if not os.path.isfile(h5):
        # runs of the ensemble study keep no merged predictions of their own (members are shared)
        raise BenchError(f"{run_dir} has no predictions.h5; draw the gallery from a run directory "
                         "made by `marigold-bench run`")
    rows = []
    with PredictionCache(h5) as cache:
        for sid in ids:
            item = dataset[index[sid]]
            raw = cache.prediction(sid)
            if raw is None:
                raise BenchError(f"{run_dir}/predictions.h5 has no prediction for {sid}")
            depth, valid = item["depth"], np.asarray(item["valid"], dtype=bool)
            aligned = aligned_as_scored(fit_to_shape(raw, depth.shape, sid), depth, valid, scoring)
            error = np.where(valid, np.abs(aligned - depth) / np.where(valid, depth, 1), np.nan)
            rows.append({"id": sid, "rgb": item["rgb"], "depth": depth, "valid": valid, "aligned": aligned,
                         "error": error, "abs_rel": float(np.nanmean(error)) if valid.any() else float("nan")})
    return rows


def depth_gallery(run_dir: str, out_base: str, sample_ids=None, dataset=None, data_root=None,
                  k: int = 3) -> list[str]:
    """One row per sample: input, ground truth, aligned prediction, absolute relative error.

    The prediction is aligned as the run scored it (its recorded protocol, alignment and fit
    space, see `aligned_as_scored`), so the caption's AbsRel is the run's ``per_sample.csv``
    value.

    Args:
        run_dir: a run directory with ``predictions.h5``.
        out_base: output path without extension.
        sample_ids: ids to show (default: best, median and worst by AbsRel; see :func:`pick_samples`).
        dataset: the dataset the run was made on; by default opened again from the name and
            data root recorded in the run's summary (``data_root`` overrides the root).
    """
    rows = gallery_rows(run_dir, sample_ids, dataset, data_root, k)
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 2.6 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        depth, valid, error = row["depth"], row["valid"], row["error"]
        lo, hi = np.percentile(depth[valid], [2, 98]) if valid.any() else (0, 1)
        panels = [(row["rgb"], None, None, row["id"]),
                  (np.where(valid, depth, np.nan), "Spectral", (lo, hi), "ground truth"),
                  (row["aligned"], "Spectral", (lo, hi), "prediction (aligned)"),
                  (error, "magma", (0, np.nanpercentile(error, 98) if valid.any() else 1),
                   caption(row["abs_rel"]))]
        for ax, (image, cmap, limits, title) in zip(ax_row, panels):
            shown = ax.imshow(image, cmap=cmap, vmin=None if limits is None else limits[0],
                              vmax=None if limits is None else limits[1])
            ax.set_title(title, fontsize=8)
            ax.axis("off")
            if cmap is not None:
                fig.colorbar(shown, ax=ax, fraction=0.035)
    fig.tight_layout()
    return _save(fig, out_base)


def caption(abs_rel: float) -> str:
    """The error panel's caption: the sample's AbsRel ×100, as tables print it."""
    return f"AbsRel {abs_rel * 100:.1f}"


def sparsification_plot(summary: dict, out_base: str) -> list[str]:
    """The mean sparsification curves of a run scored with ``--uncertainty`` (one panel per
    metric: the ensemble spread's curve, the oracle's, and the flat random one), from
    ``summary.json["uncertainty"]``; the gap to the oracle is AUSE, to the random line AURG.

    Raises:
        ValueError: the summary has no uncertainty curves.
    """
    part = summary.get("uncertainty") or {}
    curves = part.get("curves") or {}
    if not curves:
        raise ValueError("the run was not scored with --uncertainty: no sparsification curves")
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2), squeeze=False)
    for ax, (metric, pair) in zip(axes[0], curves.items()):
        x = np.linspace(0.0, 1.0, len(pair["curve"]))
        ax.plot(x, pair["curve"], label="ensemble spread")
        ax.plot(x, pair["oracle"], linestyle="--", label="oracle (true error)")
        if pair["curve"]:
            ax.axhline(pair["curve"][0], color="grey", linewidth=0.8, label="random")
        ause, aurg = (part.get("metrics") or {}).get(f"ause_{metric}"), (part.get("metrics") or {}).get(f"aurg_{metric}")
        ax.set_title(f"{metric}: AUSE {ause:.4g}, AURG {aurg:.4g}" if ause is not None else metric, fontsize=9)
        ax.set_xlabel("fraction of pixels removed (most uncertain first)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("metric on the pixels left")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{summary.get('dataset', '')}: ranking by the {part.get('ranking', 'uncertainty')}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_base)
