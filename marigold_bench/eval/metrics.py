"""Depth metrics of the zero-shot protocol, per image over its valid pixels.

Each function takes 1-D arrays of matched predictions ``p`` and ground truth ``g`` (valid pixels
only, both > 0). A benchmark's number is the plain mean of the per-image values, so every image
weighs the same whatever its count of valid pixels (see :func:`mean_metrics`).
"""

from __future__ import annotations

import numpy as np

METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3",
               "i_rmse", "silog_rmse")
#: metrics where larger is better; all others are errors
HIGHER_IS_BETTER = frozenset({"delta1", "delta2", "delta3"})


def abs_rel(p, g):
    return np.mean(np.abs(p - g) / g)


def sq_rel(p, g):
    return np.mean((p - g) ** 2 / g)


def rmse(p, g):
    return np.sqrt(np.mean((p - g) ** 2))


def rmse_log(p, g):
    return np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))


def log10(p, g):
    return np.mean(np.abs(np.log10(p) - np.log10(g)))


def delta(p, g, power: int):
    return np.mean(np.maximum(p / g, g / p) < 1.25**power)


def i_rmse(p, g):
    return np.sqrt(np.mean((1.0 / p - 1.0 / g) ** 2))


def silog_rmse(p, g):
    e = np.log(p) - np.log(g)
    # mean(e^2) - mean(e)^2 can come out a hair below zero in floating point
    return 100.0 * np.sqrt(max(np.mean(e**2) - np.mean(e) ** 2, 0.0))


def _to_numpy(x):
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def compute_metrics(pred, gt, valid=None) -> dict[str, float]:
    """All metrics of one image.

    Args:
        pred: aligned predicted depth, HxW (numpy or torch), in metres.
        gt: ground-truth depth, HxW.
        valid: boolean HxW mask of the pixels to score (default: ``gt > 0``).

    Returns:
        ``{key: value}`` for every key of :data:`METRIC_KEYS`, as Python floats (fractions, not
        percent; ``silog_rmse`` is 100x as in its definition).

    Raises:
        ValueError: shapes differ, no pixel is valid, or a scored value is not positive/finite.
    """
    pred, gt, valid = _to_numpy(pred), _to_numpy(gt), _to_numpy(valid)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    valid = gt > 0 if valid is None else valid.astype(bool)
    if valid.shape != gt.shape:
        raise ValueError(f"mask {valid.shape} and ground truth {gt.shape} differ in shape")
    p, g = pred[valid].astype(np.float64), gt[valid].astype(np.float64)
    if p.size == 0:
        raise ValueError("no valid pixels to score")
    if not (np.all(np.isfinite(p)) and np.all(p > 0) and np.all(g > 0)):
        raise ValueError("predictions and ground truth must be finite and > 0 on valid pixels")
    # The shared terms are computed once: at ETH3D's 24 M pixels per image, recomputing logs and
    # ratios per metric made scoring cost seconds per image. Same formulas as the functions above.
    diff = p - g
    log_err = np.log(p) - np.log(g)
    ratio = p / g
    worst = np.maximum(ratio, 1.0 / ratio)
    values = {
        "abs_rel": np.mean(np.abs(diff) / g), "sq_rel": np.mean(diff**2 / g),
        "rmse": np.sqrt(np.mean(diff**2)), "rmse_log": np.sqrt(np.mean(log_err**2)),
        "log10": np.mean(np.abs(log_err)) / np.log(10.0),
        "delta1": np.mean(worst < 1.25), "delta2": np.mean(worst < 1.25**2),
        "delta3": np.mean(worst < 1.25**3),
        "i_rmse": np.sqrt(np.mean((1.0 / p - 1.0 / g) ** 2)),
        "silog_rmse": 100.0 * np.sqrt(max(np.mean(log_err**2) - np.mean(log_err) ** 2, 0.0)),
    }
    return {k: float(values[k]) for k in METRIC_KEYS}


def mean_metrics(per_image: list[dict]) -> dict[str, float]:
    """Plain mean over images of each metric (the number papers report)."""
    if not per_image:
        return {}
    return {k: float(np.mean([m[k] for m in per_image])) for k in METRIC_KEYS}
