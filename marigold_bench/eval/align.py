"""Least-squares alignment of an affine-invariant prediction to metric ground truth.

The protocol's order per sample: fit scale ``s`` and shift ``t`` over the valid pixels (in depth
or in disparity space, optionally on a downsized copy), apply them at full resolution, clip to
the benchmark's depth range, then to >= 1e-6 (see :func:`align_and_clip`).
"""

from __future__ import annotations

import numpy as np
import torch

#: fitted disparity is clipped here before inversion, as in the official evaluation
MIN_DISPARITY = 1e-3


def _downsample(arrays, max_resolution: int, mode: str):
    """Nearest-neighbour downsample for the fit, reproducing the official resampling.

    ``mode="width_only"`` hands torch an HxW map with one leading axis, which it reads as a 1-D
    signal per row: only the width shrinks (the official code's behaviour, kept by default so
    ETH3D numbers match published ones). ``mode="2d"`` shrinks both sides.
    """
    h, w = arrays[0].shape
    factor = min(max_resolution / h, max_resolution / w)
    if factor >= 1:
        return arrays
    out = []
    for a in arrays:
        x = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64 if a.dtype != bool else torch.float32)
        x = x[None] if mode == "width_only" else x[None, None]
        y = torch.nn.functional.interpolate(x, scale_factor=factor, mode="nearest")
        y = y[0] if mode == "width_only" else y[0, 0]
        out.append(y.numpy().astype(bool) if a.dtype == bool else y.numpy())
    return out


def _fit(x, y):
    """argmin_{s,t} sum (s*x + t - y)^2 over 1-D arrays.

    Closed form of the 2-parameter least squares on centred data (no N x 2 design matrix: on
    ETH3D frames that copy alone cost seconds). A constant ``x`` makes the problem degenerate;
    then the minimum-norm solution is returned, as ``np.linalg.lstsq`` would.
    """
    x_mean, y_mean = x.mean(), y.mean()
    xc = x - x_mean
    var = np.dot(xc, xc)
    if var <= 1e-12 * max(x.size, 1) * max(x_mean**2, 1.0):
        # s*c + t = mean(y) for every (s, t) on a line; the shortest (s, t) is along (c, 1)
        s = x_mean * y_mean / (x_mean**2 + 1.0)
        return float(s), float(y_mean / (x_mean**2 + 1.0))
    s = np.dot(xc, y - y_mean) / var
    return float(s), float(y_mean - s * x_mean)


def align_least_squares(pred, gt, valid, space: str = "depth", max_resolution: int | None = None,
                        downsample: str = "width_only"):
    """Fit ``s*pred + t`` to the ground truth by least squares.

    Args:
        pred: affine-invariant prediction, HxW.
        gt: ground-truth depth in metres, HxW.
        valid: boolean HxW mask of the pixels the fit may use.
        space: ``"depth"`` fits ``pred`` to depth; ``"disparity"`` fits ``pred`` to 1/depth over
            pixels where also ``gt > 0`` and ``pred > 0``, clips the fitted disparity to
            >= 1e-3 and inverts it back.
        max_resolution: fit on a copy whose longer side is at most this (None: full size).
        downsample: ``"width_only"`` (official quirk) or ``"2d"``; see :func:`_downsample`.

    Returns:
        ``(aligned_depth, scale, shift)``; ``scale``/``shift`` are in the fit space.

    Raises:
        ValueError: unknown space, mismatched shapes, or fewer than 2 pixels to fit.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if not (pred.shape == gt.shape == valid.shape):
        raise ValueError(f"shapes differ: pred {pred.shape}, gt {gt.shape}, valid {valid.shape}")
    if space not in ("depth", "disparity"):
        raise ValueError(f"unknown fit space {space!r} (depth or disparity)")

    p, g, m = pred, gt, valid
    if max_resolution is not None:
        p, g, m = _downsample([pred, gt, valid], max_resolution, downsample)
    if space == "disparity":
        m = m & (g > 0) & (p > 0)
        with np.errstate(divide="ignore"):
            target = np.where(m, 1.0 / np.where(g > 0, g, 1.0), 0.0)
    else:
        target = g
    if m.sum() < 2:
        raise ValueError("fewer than 2 valid pixels: cannot fit scale and shift")
    scale, shift = _fit(p[m], target[m])

    fitted = scale * pred + shift
    if space == "disparity":
        fitted = 1.0 / np.clip(fitted, MIN_DISPARITY, None)
    return fitted, scale, shift


def align_and_clip(pred, gt, valid, protocol):
    """The protocol's alignment: fit as the protocol says, then clip to its range and >= 1e-6."""
    aligned, scale, shift = align_least_squares(
        pred, gt, valid, space=protocol.fit_space, max_resolution=protocol.fit_max_resolution,
        downsample=protocol.fit_downsample)
    aligned = np.clip(aligned, protocol.min_depth, protocol.max_depth)
    return np.clip(aligned, 1e-6, None), scale, shift
