"""Depth metrics of the zero-shot protocol, per image over its valid pixels.

Each function takes 1-D arrays of matched predictions ``p`` and ground truth ``g`` (valid pixels
only, both > 0). A benchmark's number is the plain mean of the per-image values, so every image
weighs the same whatever its count of valid pixels (see :func:`mean_metrics`).
"""

from __future__ import annotations

import sys

import numpy as np

from marigold_bench.eval.threads import map_in_threads
from marigold_bench.tasks import METRICS, metric_spec

METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3",
               "i_rmse", "silog_rmse")
#: metrics where larger is better; all others are errors (from the metric specs)
HIGHER_IS_BETTER = frozenset(k for k, spec in METRICS.items() if spec.higher_is_better)


def _is_tensor(x) -> bool:
    """``torch.is_tensor`` without importing torch (a tensor exists only once torch is loaded),
    so that commands which score cached predictions on the host never pay torch's import."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(x)


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


def term_sums(p, g, keep=None) -> dict[str, float]:
    """Per-pixel terms of every metric, summed; each metric is then a mean (or its root),
    see `metrics_from_sums`.

    The formulas are those of the one-metric functions above, written once over shared terms.
    numpy: ``p`` and ``g`` are the valid pixels (1-D float64), summed in chunks spread over
    threads and added in order, so the result does not depend on the thread count. torch:
    whole float64 maps on their device with ``keep`` the valid pixels and ``p = g = 1``
    elsewhere, so that every error term is exactly 0 there; the sums come back in one transfer,
    and a GPU synchronises once instead of once per boolean indexing.
    """
    if _is_tensor(p):
        torch = sys.modules["torch"]
        sums = _chunk_sums(torch, p.reshape(-1), g.reshape(-1), None if keep is None else keep.reshape(-1))
        return dict(zip(sums, torch.stack([torch.as_tensor(v, dtype=torch.float64, device=p.device)
                                           for v in sums.values()]).tolist()))
    p, g = p.reshape(-1), g.reshape(-1)
    return add_sums(map_in_threads(lambda a: _chunk_sums(np, p[a:a + CHUNK], g[a:a + CHUNK]),
                                   range(0, len(p), CHUNK)))


def add_sums(parts: list[dict]) -> dict[str, float]:
    """Term sums of several blocks of pixels added up, in the order given."""
    total = dict.fromkeys(_SUM_KEYS, 0.0)
    for part in parts:
        for key in _SUM_KEYS:
            total[key] += part[key]
    return {k: float(v) for k, v in total.items()}


_SUM_KEYS = ("abs_rel", "sq_rel", "sq_err", "sq_log_err", "log_err", "abs_log_err",
             "delta1", "delta2", "delta3", "sq_inv_err")


def block_sums(p: np.ndarray, g: np.ndarray) -> dict:
    """`term_sums` of one block of valid pixels (1-D float64 numpy), in one pass."""
    return _chunk_sums(np, p, g)


def _chunk_sums(xp, pc, gc, keep=None) -> dict:
    diff = pc - gc
    ratio = pc / gc
    log_err = xp.log(ratio)   # log p - log g with one logarithm instead of two
    worst = xp.maximum(ratio, 1.0 / ratio)
    if keep is not None:  # p = g = 1 would count as a hit of every threshold
        worst = xp.where(keep, worst, float("inf"))
    return {
        "abs_rel": (abs(diff) / gc).sum(),
        "sq_rel": (diff**2 / gc).sum(),
        "sq_err": (diff**2).sum(),
        "sq_log_err": (log_err**2).sum(),
        "log_err": log_err.sum(),
        "abs_log_err": abs(log_err).sum(),
        "delta1": (worst < 1.25).sum(),
        "delta2": (worst < 1.25**2).sum(),
        "delta3": (worst < 1.25**3).sum(),
        "sq_inv_err": ((1.0 / pc - 1.0 / gc) ** 2).sum(),
    }


def _as_array(x, keep_tensor: bool):
    """A tensor stays a tensor when ``keep_tensor`` (the torch path), else everything -> numpy."""
    if x is None:
        return None
    if _is_tensor(x):
        return x.detach() if keep_tensor else x.detach().cpu().numpy()
    return np.asarray(x)


def compute_metrics(pred, gt, valid=None) -> dict[str, float]:
    """All metrics of one image.

    Args:
        pred: aligned predicted depth, HxW (numpy or torch), in metres.
        gt: ground-truth depth, HxW.
        valid: boolean HxW mask of the pixels to score (default: ``gt > 0``).

    A torch ``pred`` is scored with torch on its device, ``gt`` and ``valid`` moved there
    (float64, no copy to the host: the fast path on a GPU); anything else with numpy over the
    valid pixels (see `pixel_metrics`). The two agree to float64 round-off (only the summation
    order differs).

    Returns:
        ``{key: value}`` for every key of :data:`METRIC_KEYS`, as Python floats (fractions, not
        percent; ``silog_rmse`` is 100x as in its definition).

    Raises:
        ValueError: shapes differ, no pixel is valid, or a scored value is not positive/finite.
    """
    on_device = _is_tensor(pred)
    pred, gt, valid = (_as_array(x, on_device) for x in (pred, gt, valid))
    if on_device:
        torch = sys.modules["torch"]
        gt = torch.as_tensor(gt, device=pred.device)
        valid = None if valid is None else torch.as_tensor(valid, device=pred.device)
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    valid = gt > 0 if valid is None else (valid.bool() if on_device else valid.astype(bool))
    if tuple(valid.shape) != tuple(gt.shape):
        raise ValueError(f"mask {tuple(valid.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    if not on_device:
        return pixel_metrics(pred[valid], gt[valid])
    pred, gt = pred.double(), gt.double()
    bad = valid & ~(torch.isfinite(pred) & (pred > 0) & (gt > 0))
    n, n_bad = torch.stack([valid.sum(), bad.sum()]).tolist()
    check_pixels(n, n_bad)
    p, g = torch.where(valid, pred, 1.0), torch.where(valid, gt, 1.0)
    return metrics_from_sums(term_sums(p, g, valid), n)


def pixel_metrics(p, g) -> dict[str, float]:
    """All metrics over matched predictions and ground truth of the valid pixels only (any
    shape, flattened; numpy, in float64). `compute_metrics` on the host comes down to this;
    callers that already hold the valid pixels save the masking of whole frames.

    Raises:
        ValueError: no pixel, or a value that is not positive and finite.
    """
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    if p.shape != g.shape:
        raise ValueError(f"{p.size} predicted and {g.size} ground-truth pixels do not match")
    check_pixels(p.size, 0 if scorable(p, g) else 1)
    return metrics_from_sums(term_sums(p, g), p.size)


def scorable(p: np.ndarray, g: np.ndarray) -> bool:
    """Whether every prediction and ground-truth value is positive and finite (numpy)."""
    return bool(np.isfinite(p).all() and (p > 0).all() and (g > 0).all())


def check_pixels(n: int, n_bad: int) -> None:
    """Refuse no pixels at all, or ``n_bad`` pixels that are not positive and finite."""
    if n == 0:
        raise ValueError("no valid pixels to score")
    if n_bad:
        raise ValueError("predictions and ground truth must be finite and > 0 on valid pixels")


def metrics_from_sums(sums: dict, n: int) -> dict[str, float]:
    """Every metric of `METRIC_KEYS` from the `term_sums` of ``n`` pixels."""
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


def mean_metrics(per_image: list[dict], keys=METRIC_KEYS) -> dict[str, float]:
    """Plain mean over images of each metric of ``keys`` (the number papers report); a metric
    whose spec is ``where_defined`` (MoGe's point columns) over the images that have it."""
    if not per_image:
        return {}
    return {k: _mean_of(k, per_image) for k in keys}


def _mean_of(key: str, per_image: list[dict]) -> float:
    spec = metric_spec(key)
    if spec is None or not spec.where_defined:
        return float(np.mean([m[key] for m in per_image]))
    # a metric a sample may lack (MoGe's point columns: NaN there) is the mean where it is
    # defined, as MoGe's key_average takes it; NaN where no sample has it
    values = [m[key] for m in per_image if m.get(key) is not None and not np.isnan(m[key])]
    return float(np.mean(values)) if values else float("nan")
