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


#: pixels per chunk: large enough for vectorised numpy, small enough that temporaries stay in
#: cache instead of allocating (and page-faulting) hundreds of MB per term on ETH3D frames
CHUNK = 1 << 18


def _chunked_sums(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """Per-pixel terms of every metric, summed; each metric is then a mean (or its root).

    The formulas are those of the one-metric functions above, written once over shared terms.
    """
    keys = ("abs_rel", "sq_rel", "sq_err", "sq_log_err", "log_err", "abs_log_err",
            "delta1", "delta2", "delta3", "sq_inv_err")
    sums = dict.fromkeys(keys, 0.0)
    for start in range(0, p.size, CHUNK):
        pc, gc = p[start:start + CHUNK], g[start:start + CHUNK]
        diff = pc - gc
        log_err = np.log(pc) - np.log(gc)
        ratio = pc / gc
        worst = np.maximum(ratio, 1.0 / ratio)
        sums["abs_rel"] += np.sum(np.abs(diff) / gc)
        sums["sq_rel"] += np.sum(diff**2 / gc)
        sums["sq_err"] += np.sum(diff**2)
        sums["sq_log_err"] += np.sum(log_err**2)
        sums["log_err"] += np.sum(log_err)
        sums["abs_log_err"] += np.sum(np.abs(log_err))
        sums["delta1"] += np.count_nonzero(worst < 1.25)
        sums["delta2"] += np.count_nonzero(worst < 1.25**2)
        sums["delta3"] += np.count_nonzero(worst < 1.25**3)
        sums["sq_inv_err"] += np.sum((1.0 / pc - 1.0 / gc) ** 2)
    return sums


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
    sums = _chunked_sums(p, g)
    n = p.size
    mean_log = sums["log_err"] / n
    values = {
        "abs_rel": sums["abs_rel"] / n, "sq_rel": sums["sq_rel"] / n,
        "rmse": np.sqrt(sums["sq_err"] / n), "rmse_log": np.sqrt(sums["sq_log_err"] / n),
        "log10": sums["abs_log_err"] / n / np.log(10.0),
        "delta1": sums["delta1"] / n, "delta2": sums["delta2"] / n, "delta3": sums["delta3"] / n,
        "i_rmse": np.sqrt(sums["sq_inv_err"] / n),
        # mean(e^2) - mean(e)^2 can come out a hair below zero in floating point
        "silog_rmse": 100.0 * np.sqrt(max(sums["sq_log_err"] / n - mean_log**2, 0.0)),
    }
    return {k: float(values[k]) for k in METRIC_KEYS}


def mean_metrics(per_image: list[dict]) -> dict[str, float]:
    """Plain mean over images of each metric (the number papers report)."""
    if not per_image:
        return {}
    return {k: float(np.mean([m[k] for m in per_image])) for k in METRIC_KEYS}
