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


__all__ = ["RANKING_OF_REDUCTION", "UNCERTAINTY_METRICS", "scores_of", "sparsification"]
