"""Metric definitions of the metric-depth leaderboards: ZoeDepth's, UniDepth's and Monodepth2's.

The three suites agree on most formulas and differ in the details that move numbers: ZoeDepth's
``silog`` is ``100 * sqrt(mean(e^2) - mean(e)^2)`` (the population deviation of the log error)
while UniDepth's is ``100 * std(e)`` with Bessel's correction; UniDepth's ``medianlog`` takes
torch's median (the LOWER middle value of an even count, not the mean of the two); ``d_auc``
integrates δ over thresholds ``1.25^x``. Each function here takes the scored pixels only (1-D
arrays, prediction and ground truth both positive) and returns plain floats; which pixels are
scored, the resize and the clipping are the protocol definitions' business
(`marigold_bench.eval.protocols.zoedepth`, ``unidepth``, ``monodepth2``).

Everything is float64 numpy: no torch import.
"""

from __future__ import annotations

import numpy as np

#: the thresholds of UniDepth's ``d_auc``: δ(1.25^x) for these x, integrated and divided by 5
D_AUC_EXPONENTS = np.linspace(0.01, 5.0, 100)


def ratio(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``max(p/g, g/p)`` per pixel: the ratio every δ threshold is tested against."""
    return np.maximum(p / g, g / p)


def delta_at(p: np.ndarray, g: np.ndarray, threshold: float) -> float:
    """Share of pixels with ``max(p/g, g/p) < threshold`` (δ1 at 1.25; DA3's and UniDepth's
    ``tau`` at 1.03)."""
    return float(np.mean(ratio(p, g) < threshold))


def _common(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """The errors every suite defines alike (each a mean over the scored pixels)."""
    e = np.log(p) - np.log(g)
    r = ratio(p, g)
    return {
        "abs_rel": float(np.mean(np.abs(g - p) / g)),
        "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "rmse_log": float(np.sqrt(np.mean(e ** 2))),
        "delta1": float(np.mean(r < 1.25)),
        "delta2": float(np.mean(r < 1.25 ** 2)),
        "delta3": float(np.mean(r < 1.25 ** 3)),
    }


def zoedepth_metrics(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """ZoeDepth's ``compute_errors`` (metric_depth/zoedepth/utils/misc.py) in our keys.

    ``a1..a3`` are ``delta1..3``, ``log_10`` is ``log10``, ``silog`` is ``silog_rmse`` (the same
    definition as Marigold's: ``100 * sqrt(mean(e^2) - mean(e)^2)``, ``e = ln p - ln g``; a value
    that rounds below zero under the root gives NaN there, 0 here). ``delta_103`` (δ at 1.03,
    DA3's) is reported beside them.
    """
    p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
    e = np.log(p) - np.log(g)
    out = _common(p, g)
    out["log10"] = float(np.mean(np.abs(np.log10(g) - np.log10(p))))
    out["silog_rmse"] = float(100.0 * np.sqrt(max(np.mean(e ** 2) - np.mean(e) ** 2, 0.0)))
    out["delta_103"] = delta_at(p, g, 1.03)
    return out


def lower_median(x: np.ndarray) -> float:
    """The median as ``torch.median`` takes it: for an even count the lower of the two middle
    values (numpy's ``median`` averages them)."""
    x = np.asarray(x).ravel()
    return float(np.partition(x, (x.size - 1) // 2)[(x.size - 1) // 2])


def d_auc(p: np.ndarray, g: np.ndarray) -> float:
    """UniDepth's ``d_auc``: trapezoid area under δ(1.25^x) for x in `D_AUC_EXPONENTS`, / 5."""
    r = ratio(p, g)
    deltas = np.array([np.mean(r < 1.25 ** x) for x in D_AUC_EXPONENTS])
    steps = np.diff(D_AUC_EXPONENTS)
    return float(np.sum(steps * (deltas[1:] + deltas[:-1]) / 2.0) / 5.0)


def least_squares_fit(p: np.ndarray, g: np.ndarray, ridge: float = 1e-9) -> np.ndarray:
    """``scale * p + shift`` fitted to ``g`` by least squares, with UniDepth's ``ssi`` ridge
    (``1e-9`` added to the normal matrix's diagonal).

    UniDepth's code fits on every scored pixel; a written description of the protocol says d1_ssi leaves out the 5 %
    largest residuals, but the code read (evaluation_depth.py ``ssi``) does not, so neither
    does this.
    """
    sxx, sx, n = float(np.dot(p, p)) + ridge, float(np.sum(p)), p.size + ridge
    sxy, sy = float(np.dot(p, g)), float(np.sum(g))
    det = sxx * n - sx * sx
    scale = (n * sxy - sx * sy) / det
    shift = (sxx * sy - sx * sxy) / det
    return scale * p + shift


def unidepth_metrics(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """UniDepth's ``eval_depth`` metrics of one image (unidepth/utils/evaluation_depth.py).

    ``silog_std = 100 * std(ln p - ln g)`` with Bessel's correction (n - 1);
    ``medianlog = 100 * |lower median(ln p - ln g)|``; ``d_auc`` (see `d_auc`); ``delta_103``
    is UniDepth's ``tau`` (inlier ratio below 1.03); ``d1_ssi`` is δ1 after `least_squares_fit`.
    ``abs_rel`` is its ``arel``, ``rmse_log`` its ``rmselog``, ``log10``, ``sq_rel`` its ``sqrel``.
    """
    p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
    e = np.log(p) - np.log(g)
    out = _common(p, g)
    out["log10"] = float(np.mean(np.abs(np.log10(p) - np.log10(g))))
    out["silog_std"] = float(100.0 * np.std(e, ddof=1)) if e.size > 1 else float("nan")
    out["medianlog"] = float(100.0 * abs(lower_median(e)))
    out["d_auc"] = d_auc(p, g)
    out["delta_103"] = delta_at(p, g, 1.03)
    out["d1_ssi"] = delta_at(least_squares_fit(p, g), g, 1.25)
    return out


def monodepth2_metrics(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """Monodepth2's ``compute_errors``: abs_rel, sq_rel, rmse, rmse_log and δ1..3."""
    return _common(np.asarray(p, np.float64), np.asarray(g, np.float64))


def clip_zoedepth(pred: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """ZoeDepth's clipping, in its order: below ``lo`` -> ``lo``, above ``hi`` -> ``hi``, +inf ->
    ``hi``, NaN -> ``lo`` (-inf is below ``lo`` first, so it becomes ``lo``)."""
    out = np.array(pred, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out[out < lo] = lo
        out[out > hi] = hi
    out[np.isinf(out)] = hi
    out[np.isnan(out)] = lo
    return out


def resize_align_corners(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a HxW map to ``shape`` with corner pixels aligned (torch's
    ``interpolate(mode="bilinear", align_corners=True)``): output pixel ``i`` samples input
    position ``i * (n_in - 1) / (n_out - 1)``. Computed in float64 (torch works in the input's
    float32, so the two agree to float32 round-off)."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape == tuple(shape):
        return pred.copy()

    def taps(n_in: int, n_out: int):
        pos = np.zeros(n_out) if n_out == 1 else np.arange(n_out) * ((n_in - 1) / (n_out - 1))
        left = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
        right = np.minimum(left + 1, n_in - 1)
        return left, right, pos - left

    top, bottom, fy = taps(pred.shape[0], shape[0])
    left, right, fx = taps(pred.shape[1], shape[1])
    # inf * 0 is NaN here as in torch: a map with inf keeps torch's NaN neighbours
    with np.errstate(invalid="ignore"):
        rows = pred[top] * (1 - fy)[:, None] + pred[bottom] * fy[:, None]
        return rows[:, left] * (1 - fx)[None, :] + rows[:, right] * fx[None, :]


__all__ = ["D_AUC_EXPONENTS", "clip_zoedepth", "d_auc", "delta_at", "least_squares_fit", "lower_median",
           "monodepth2_metrics", "ratio", "resize_align_corners", "unidepth_metrics", "zoedepth_metrics"]
