"""Depth metrics of the zero-shot protocol, per image over its valid pixels.

Each function takes 1-D arrays of matched predictions ``p`` and ground truth ``g`` (valid pixels
only, both > 0). A benchmark's number is the plain mean of the per-image values, so every image
weighs the same whatever its count of valid pixels (see :func:`mean_metrics`).
"""

from __future__ import annotations

import numpy as np
import torch

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


#: pixels per chunk on the CPU: large enough for vectorised numpy, small enough that temporaries
#: stay in cache instead of allocating (and page-faulting) hundreds of MB per term on ETH3D frames.
#: Torch tensors (scoring on the run's GPU, see `compute_metrics`) are summed in one pass.
CHUNK = 1 << 18


def _term_sums(p, g, keep=None) -> dict:
    """Per-pixel terms of every metric, summed; each metric is then a mean (or its root).

    The formulas are those of the one-metric functions above, written once over shared terms.
    numpy: ``p`` and ``g`` are the valid pixels (1-D float64), summed in chunks. torch: whole
    float64 maps on their device with ``keep`` the valid pixels and ``p = g = 1`` elsewhere,
    so that every error term is exactly 0 there; the sums come back in one transfer, and a GPU
    synchronises once instead of once per boolean indexing.
    """
    xp = torch if torch.is_tensor(p) else np
    chunk = CHUNK if xp is np else max(p.numel(), 1)
    sums = dict.fromkeys(("abs_rel", "sq_rel", "sq_err", "sq_log_err", "log_err", "abs_log_err",
                          "delta1", "delta2", "delta3", "sq_inv_err"), 0.0)
    p, g = p.reshape(-1), g.reshape(-1)
    keep = None if keep is None else keep.reshape(-1)
    for start in range(0, len(p), chunk):
        pc, gc = p[start:start + chunk], g[start:start + chunk]
        diff = pc - gc
        log_err = xp.log(pc) - xp.log(gc)
        ratio = pc / gc
        worst = xp.maximum(ratio, 1.0 / ratio)
        if keep is not None:  # p = g = 1 would count as a hit of every threshold
            worst = xp.where(keep[start:start + chunk], worst, float("inf"))
        sums["abs_rel"] += (abs(diff) / gc).sum()
        sums["sq_rel"] += (diff**2 / gc).sum()
        sums["sq_err"] += (diff**2).sum()
        sums["sq_log_err"] += (log_err**2).sum()
        sums["log_err"] += log_err.sum()
        sums["abs_log_err"] += abs(log_err).sum()
        sums["delta1"] += (worst < 1.25).sum()
        sums["delta2"] += (worst < 1.25**2).sum()
        sums["delta3"] += (worst < 1.25**3).sum()
        sums["sq_inv_err"] += ((1.0 / pc - 1.0 / gc) ** 2).sum()
    if xp is torch:
        return dict(zip(sums, torch.stack([torch.as_tensor(v, dtype=torch.float64, device=p.device)
                                           for v in sums.values()]).tolist()))
    return {k: float(v) for k, v in sums.items()}


def _as_array(x, keep_tensor: bool):
    """A tensor stays a tensor when ``keep_tensor`` (the torch path), else everything -> numpy."""
    if x is None:
        return None
    if torch.is_tensor(x):
        return x.detach() if keep_tensor else x.detach().cpu().numpy()
    return np.asarray(x)


def compute_metrics(pred, gt, valid=None) -> dict[str, float]:
    """All metrics of one image.

    Args:
        pred: aligned predicted depth, HxW (numpy or torch), in metres.
        gt: ground-truth depth, HxW.
        valid: boolean HxW mask of the pixels to score (default: ``gt > 0``).

    A torch ``pred`` is scored with torch on its device (``gt`` and ``valid`` are moved there) (float64, no copy to the host: the fast
    path on a GPU); anything else with numpy, in chunks. The two agree to float64 round-off
    (only the summation order differs).

    Returns:
        ``{key: value}`` for every key of :data:`METRIC_KEYS`, as Python floats (fractions, not
        percent; ``silog_rmse`` is 100x as in its definition).

    Raises:
        ValueError: shapes differ, no pixel is valid, or a scored value is not positive/finite.
    """
    on_device = torch.is_tensor(pred)
    pred, gt, valid = (_as_array(x, on_device) for x in (pred, gt, valid))
    if on_device:
        gt = torch.as_tensor(gt, device=pred.device)
        valid = None if valid is None else torch.as_tensor(valid, device=pred.device)
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    valid = gt > 0 if valid is None else (valid.bool() if on_device else valid.astype(bool))
    if tuple(valid.shape) != tuple(gt.shape):
        raise ValueError(f"mask {tuple(valid.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    if on_device:
        pred, gt = pred.double(), gt.double()
        bad = valid & ~(torch.isfinite(pred) & (pred > 0) & (gt > 0))
        n, n_bad = torch.stack([valid.sum(), bad.sum()]).tolist()
        p, g = torch.where(valid, pred, 1.0), torch.where(valid, gt, 1.0)
    else:
        p, g = pred[valid].astype(np.float64), gt[valid].astype(np.float64)
        n = p.size
        n_bad = 0 if np.all(np.isfinite(p)) and np.all(p > 0) and np.all(g > 0) else 1
    if n == 0:
        raise ValueError("no valid pixels to score")
    if n_bad:
        raise ValueError("predictions and ground truth must be finite and > 0 on valid pixels")
    sums = _term_sums(p, g, valid if on_device else None)
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
