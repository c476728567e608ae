"""Scoring a per-pixel uncertainty by sparsification: does it rank the pixels by their error?

Marigold's test-time ensemble gives each pixel a spread of its members (the median absolute
deviation for a median ensemble, the standard deviation for a mean ensemble). A useful spread
puts the worst pixels first. Sparsification measures that (Ilg et al., ECCV 2018; Poggi et al.,
CVPR 2020, whose ``compute_aucs`` in mattpoggi/mono-uncertainty these definitions follow):

1. Remove the most uncertain pixels in steps of ``1/intervals`` of the image, recomputing the
   error metric on the pixels left after each step; the last point (everything removed) is 0.
2. The *oracle* curve removes pixels by their true error instead: the best ranking there is.
3. AUSE = area under the uncertainty's curve minus the oracle's (lower is better, 0 = oracle).
4. AURG = the whole image's error (a random ranking's flat curve) minus the area under the
   uncertainty's curve (higher is better; negative = worse than chance).

Metrics: ``abs_rel`` (mean of ``|g - p| / g``), ``rmse`` (root of the mean squared error) and
``delta1_outliers`` (the share of pixels with ``max(g/p, p/g) >= 1.25``, mono-uncertainty's
"a1"). Scores are per image; a benchmark's value is their mean over images.

Only the ranking of the uncertainty matters, so it can be in any positive scale (the members'
normalised space or metres alike).
"""

from __future__ import annotations

import numpy as np

# the per-sample columns (`scores_of`) go to this file; the run folder's format names it
from marigold_bench.eval.rundir import UNCERTAINTY_FILE

#: the metrics sparsification is computed for, in mono-uncertainty's order
UNCERTAINTY_METRICS = ("abs_rel", "rmse", "delta1_outliers")

#: what each ensembling reduction's uncertainty is (recorded beside the scores)
RANKING_OF_REDUCTION = {"median": "median absolute deviation of the aligned members",
                        "mean": "standard deviation of the aligned members"}


def _pixel_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric's per-pixel term; a subset's metric reduces these (`_reduce`)."""
    return {"abs_rel": np.abs(gt - pred) / gt,
            "rmse": (gt - pred) ** 2,
            "delta1_outliers": np.maximum(gt / pred, pred / gt)}


def _reduce(metric: str, terms: np.ndarray) -> float:
    if metric == "rmse":
        return float(np.sqrt(terms.mean()))
    if metric == "delta1_outliers":
        return float((terms >= 1.25).mean())
    return float(terms.mean())


def _curve(metric: str, terms: np.ndarray, ranking: np.ndarray, intervals: int) -> np.ndarray:
    """The metric on what is left after removing the highest-``ranking`` pixels in steps.

    Step k keeps the pixels whose ranking is at or below the (100 - 100 k / intervals)-th
    percentile (linear interpolation, so ties are kept together), k = 0 .. intervals - 1; the
    curve ends in 0 for the empty remainder.
    """
    # keeping "-ranking >= the k-th percentile of -ranking" is the same rule on negated values,
    # which is how the reference implementation orders it (ties resolve identically)
    negated = -ranking
    points = [_reduce(metric, terms[negated >= np.percentile(negated, 100.0 * k / intervals)])
              for k in range(intervals)]
    return np.asarray(points + [0.0])


def _area(curve: np.ndarray) -> float:
    """Trapezoidal area over the removed fraction 0 .. 1."""
    x = np.linspace(0.0, 1.0, len(curve))
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(x)) / 2.0)


def sparsification(pred, gt, uncertainty, valid=None, intervals: int = 50) -> dict[str, dict]:
    """Sparsification curves, AUSE and AURG of one image.

    Args:
        pred: aligned predicted depth (H x W or flat), the map that was scored.
        gt: ground-truth depth, same shape.
        uncertainty: per-pixel uncertainty, same shape; larger = less trusted.
        valid: boolean mask of the scored pixels; None: all.
        intervals: removal steps (mono-uncertainty: 50).

    Returns:
        ``{metric: {"curve", "oracle", "ause", "aurg", "full"}}`` for each of
        `UNCERTAINTY_METRICS`; ``curve``/``oracle`` are ``intervals + 1`` values at removed
        fractions ``0, 1/intervals, ..., 1``; ``full`` is the metric on every pixel.

    Raises:
        ValueError: no pixel to score, shapes that differ, or a non-finite or non-positive value.
    """
    pred, gt, uncertainty = (np.asarray(a, dtype=np.float64) for a in (pred, gt, uncertainty))
    if not (pred.shape == gt.shape == uncertainty.shape):
        raise ValueError(f"prediction {pred.shape}, ground truth {gt.shape} and uncertainty "
                         f"{uncertainty.shape} differ in shape")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        pred, gt, uncertainty = pred[valid], gt[valid], uncertainty[valid]
    pred, gt, uncertainty = pred.ravel(), gt.ravel(), uncertainty.ravel()
    if pred.size == 0:
        raise ValueError("no valid pixel to score the uncertainty on")
    if not (np.isfinite(pred).all() and np.isfinite(gt).all() and np.isfinite(uncertainty).all()):
        raise ValueError("prediction, ground truth or uncertainty is NaN or inf on a scored pixel")
    if (gt <= 0).any() or (pred <= 0).any():
        raise ValueError("depths must be positive to score the uncertainty (ratios and AbsRel)")
    errors = _pixel_errors(pred, gt)
    out = {}
    for metric in UNCERTAINTY_METRICS:
        terms = errors[metric]
        curve = _curve(metric, terms, uncertainty, intervals)
        # the oracle ranks by the pixel's own error; for δ1 outliers that is the ratio itself
        oracle = _curve(metric, terms, terms, intervals)
        full = _reduce(metric, terms)
        out[metric] = {"curve": curve, "oracle": oracle, "full": full,
                       "ause": _area(curve) - _area(oracle), "aurg": full - _area(curve)}
    return out


def scores_of(result: dict[str, dict]) -> dict[str, float]:
    """``{"ause_abs_rel": ..., "aurg_abs_rel": ..., ...}``: the per-sample columns."""
    return {f"{kind}_{metric}": float(result[metric][kind])
            for metric in UNCERTAINTY_METRICS for kind in ("ause", "aurg")}


# --- a finished run's ensemble, scored without a model ---------------------------------------

def ensemble_uncertainty(members: np.ndarray, ensembling: dict, shape: tuple[int, int],
                         resample: str | None = None) -> np.ndarray:
    """The ensemble's per-pixel spread, recomputed from cached members, at ``shape``.

    It is what the run's merge gave beside the merged map (`ensemble_depth` with the run's
    ensembling settings: the MAD for a median ensemble, the std for a mean one), resized to the
    ground truth as the run resized its prediction (``resample``: a mode of
    `marigold_bench.eval.resize.RESIZE_MODES`; bilinear otherwise).
    """
    from marigold_bench.eval.resize import RESIZE_MODES, resize
    from marigold_bench.inference.ensemble import ensemble_depth

    options = {k: v for k, v in ensembling.items() if k != "preset"}
    _, spread = ensemble_depth(np.asarray(members, dtype=np.float32), output_uncertainty=True, **options)
    return resize(np.asarray(spread), shape, resample if resample in RESIZE_MODES else "bilinear")


def check_ensemble(summary: dict) -> dict:
    """The run's ensembling settings, or a BenchError saying why its uncertainty cannot be scored."""
    from marigold_bench.errors import BenchError

    settings = summary.get("settings") or {}
    n = int(settings.get("ensemble", 1) or 1)
    ensembling = settings.get("ensembling")
    task = summary.get("task", "depth")
    if task != "depth":
        raise BenchError(f"--uncertainty scores depth ensembles (AbsRel, RMSE and δ1 sparsification); this is "
                         f"a {task} run")
    if n < 2:
        raise BenchError(f"--uncertainty needs an ensemble: this run has N = {n} member per image, so there "
                         "is no spread to rank pixels by (run it with --ensemble 2 or more; the cached member "
                         "is reused)")
    if not isinstance(ensembling, dict) or ensembling.get("reduction") not in RANKING_OF_REDUCTION:
        raise BenchError("--uncertainty: this run's model does not merge its members with Marigold's ensembling "
                         "(median or mean), so it records no spread to score")
    return ensembling


def score_run_uncertainty(run, scoring, intervals: int = 50) -> tuple[list[dict], dict]:
    """Sparsification of every scored sample of a finished run (`marigold_bench.eval.rescore.CachedRun`).

    The map ranked is the ensemble's spread (`ensemble_uncertainty`); the map scored is the
    cached prediction aligned as ``scoring`` aligns it (`marigold_bench.eval.align.align`), on
    the pixels ``scoring`` scores. Pixels whose aligned depth is not positive (possible under
    protocols that do not clip) are left out: AbsRel and the ratios need positive depth.

    Returns:
        ``(records, part)``: one record per sample (``id`` and `scores_of`'s columns; a sample
        that cannot be scored has ``message`` instead), and ``summary.json["uncertainty"]``:
        ranking, intervals, n, the means (``metrics``) and the mean curves.

    Raises:
        BenchError: a run with one member, or without Marigold's ensembling.
    """
    from marigold_bench.eval.align import align
    from marigold_bench.eval.scoring import scored_pixels

    ensembling = check_ensemble(run.summary)
    n = int(run.summary["settings"]["ensemble"])
    resample = (run.summary.get("settings") or {}).get("resample_output")
    records, curves = [], {m: {"curve": [], "oracle": []} for m in UNCERTAINTY_METRICS}
    ids = [sid for sid, row in run.rows.items() if row.get("status") == "ok"]
    index = {sid: i for i, sid in enumerate(run.dataset.ids)}
    for sample_id in ids:
        try:
            members = run.cache.members(sample_id)
            pred = run.cache.prediction(sample_id, run.merge)
            if members is None or len(members) < n or pred is None:
                raise ValueError("its members or merged prediction are not in the cache")
            item = run.dataset[index[sample_id]]
            valid = scored_pixels(item, scoring)
            aligned = np.asarray(align(pred, item["depth"], valid, scoring)[0])
            spread = ensemble_uncertainty(members[:n], ensembling, item["depth"].shape, resample)
            keep = valid & np.isfinite(aligned) & (aligned > 0)
            result = sparsification(aligned, item["depth"], spread, keep, intervals)
        except Exception as exc:  # one sample's trouble is its record's, as in the run loop
            records.append({"id": sample_id, "message": f"{type(exc).__name__}: {exc}"})
            continue
        records.append({"id": sample_id, **scores_of(result), "message": ""})
        for metric in UNCERTAINTY_METRICS:
            curves[metric]["curve"].append(result[metric]["curve"])
            curves[metric]["oracle"].append(result[metric]["oracle"])
    scored = [r for r in records if not r["message"]]
    means = {c: (float(np.mean([r[c] for r in scored])) if scored else float("nan")) for c in scores_of_columns()}
    part = {
        "ranking": RANKING_OF_REDUCTION[ensembling["reduction"]],
        "intervals": intervals,
        "n": len(scored), "n_total": len(records),
        "metrics": means,
        "curves": {m: {k: (np.mean(v, axis=0).tolist() if v else []) for k, v in c.items()}
                   for m, c in curves.items()},
        "scoring": {"protocol": scoring.protocol, "alignment": scoring.alignment, "fit_space": scoring.fit_space},
        "note": "per image, then the mean over images (mono-uncertainty's compute_aucs); pixels whose "
                "aligned depth is not positive are left out",
    }
    return records, part


def scores_of_columns() -> list[str]:
    """The per-sample columns `scores_of` gives, in order."""
    return [f"{kind}_{metric}" for metric in UNCERTAINTY_METRICS for kind in ("ause", "aurg")]


def write_uncertainty(out_dir: str, records: list[dict], part: dict) -> None:
    """``uncertainty.csv`` and the ``uncertainty`` entry (and its means among the metrics) of
    ``summary.json`` in ``out_dir``."""
    import json
    import os

    import pandas as pd

    from marigold_bench.eval.rundir import atomic_write

    frame = pd.DataFrame.from_records(records).reindex(columns=["id", *scores_of_columns(), "message"])
    atomic_write(os.path.join(out_dir, UNCERTAINTY_FILE), frame.to_csv(index=False, float_format="%.8g"))
    path = os.path.join(out_dir, "summary.json")
    with open(path) as f:
        summary = json.load(f)
    summary["uncertainty"] = part
    summary["metrics"] = {**summary.get("metrics", {}), **part["metrics"]}
    atomic_write(path, json.dumps(summary, indent=2, default=str) + "\n")

__all__ = ["RANKING_OF_REDUCTION", "UNCERTAINTY_FILE", "UNCERTAINTY_METRICS", "check_ensemble", "ensemble_uncertainty",
           "score_run_uncertainty", "scores_of", "scores_of_columns", "sparsification", "write_uncertainty"]
