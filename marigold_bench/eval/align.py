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
    ETH3D numbers match published ones). ``mode="2d"`` shrinks both sides. numpy in, numpy out;
    tensors stay on their device.
    """
    h, w = arrays[0].shape
    factor = min(max_resolution / h, max_resolution / w)
    if factor >= 1:
        return arrays
    out = []
    for a in arrays:
        is_numpy = isinstance(a, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(a)) if is_numpy else a
        is_mask = x.dtype == torch.bool
        x = x.to(torch.float32 if is_mask else torch.float64)
        x = x[None] if mode == "width_only" else x[None, None]
        y = torch.nn.functional.interpolate(x, scale_factor=factor, mode="nearest")
        y = y[0] if mode == "width_only" else y[0, 0]
        y = y.bool() if is_mask else y
        out.append(y.numpy() if is_numpy else y)
    return out


def _fit(x, y):
    """argmin_{s,t} sum (s*x + t - y)^2 over 1-D float64 numpy arrays.

    Closed form of the 2-parameter least squares on centred data (no N x 2 design matrix: on
    ETH3D frames that copy alone cost seconds).
    """
    x_mean, y_mean = float(x.mean()), float(y.mean())
    xc = x - x_mean
    return _solve(x_mean, y_mean, float(np.dot(xc, xc)), float(np.dot(xc, y - y_mean)), x.size)


def _fit_masked(x, y, mask):
    """`_fit` over the pixels of ``mask``, for tensors of one shape.

    Masked sums instead of boolean indexing: a GPU synchronises twice (means, then centred
    sums) instead of once per indexing, which is most of the cost at NYU's size. Values
    outside the mask never enter, not even as NaN * 0.
    """
    n, sum_x, sum_y = torch.stack([mask.sum(), torch.where(mask, x, 0.0).sum(),
                                   torch.where(mask, y, 0.0).sum()]).tolist()
    if n < 2:
        raise ValueError("fewer than 2 valid pixels: cannot fit scale and shift")
    x_mean, y_mean = sum_x / n, sum_y / n
    xc = torch.where(mask, x - x_mean, 0.0)
    var, cov = torch.stack([(xc * xc).sum(), (xc * torch.where(mask, y - y_mean, 0.0)).sum()]).tolist()
    return _solve(x_mean, y_mean, var, cov, n)


def _solve(x_mean, y_mean, var, cov, n):
    """Scale and shift from the means, the centred variance of x and covariance with y.

    A constant x makes the problem degenerate; then the minimum-norm solution is returned, as
    ``np.linalg.lstsq`` would.
    """
    if var <= 1e-12 * max(n, 1) * max(x_mean**2, 1.0):
        # s*c + t = mean(y) for every (s, t) on a line; the shortest (s, t) is along (c, 1)
        s = x_mean * y_mean / (x_mean**2 + 1.0)
        return float(s), float(y_mean / (x_mean**2 + 1.0))
    s = cov / var
    return float(s), float(y_mean - s * x_mean)


def align_least_squares(pred, gt, valid, space: str = "depth", max_resolution: int | None = None,
                        downsample: str = "width_only"):
    """Fit ``s*pred + t`` to the ground truth by least squares.

    Args:
        pred: affine-invariant prediction, HxW (numpy, or a torch tensor: then everything is
            computed in float64 on the tensor's device and the result is a tensor there).
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
    if torch.is_tensor(pred):
        xp = torch
        pred = pred.to(torch.float64)
        gt = torch.as_tensor(gt, device=pred.device).to(torch.float64)
        valid = torch.as_tensor(valid, device=pred.device).bool()
    else:
        xp = np
        pred = np.asarray(pred, dtype=np.float64)
        gt = np.asarray(gt, dtype=np.float64)
        valid = np.asarray(valid, dtype=bool)
    if not (tuple(pred.shape) == tuple(gt.shape) == tuple(valid.shape)):
        raise ValueError(f"shapes differ: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}, valid {tuple(valid.shape)}")
    if space not in ("depth", "disparity"):
        raise ValueError(f"unknown fit space {space!r} (depth or disparity)")

    p, g, m = pred, gt, valid
    if max_resolution is not None:
        p, g, m = _downsample([pred, gt, valid], max_resolution, downsample)
    if space == "disparity":
        m = m & (g > 0) & (p > 0)
        # zeros are replaced before dividing, so no division by zero happens
        target = xp.where(m, 1.0 / xp.where(g > 0, g, 1.0), 0.0)
    else:
        target = g
    if xp is torch:
        scale, shift = _fit_masked(p, target, m)
    elif int(m.sum()) < 2:
        raise ValueError("fewer than 2 valid pixels: cannot fit scale and shift")
    else:
        scale, shift = _fit(p[m], target[m])

    fitted = scale * pred + shift
    if space == "disparity":
        fitted = 1.0 / xp.clip(fitted, MIN_DISPARITY, None)
    return fitted, scale, shift


def align_and_clip(pred, gt, valid, protocol):
    """The protocol's alignment: fit as the protocol says, then clip to its range and >= 1e-6.

    numpy inputs give a numpy result; tensors are aligned on their device (see
    `align_least_squares`).
    """
    aligned, scale, shift = align_least_squares(
        pred, gt, valid, space=protocol.fit_space, max_resolution=protocol.fit_max_resolution,
        downsample=protocol.fit_downsample)
    xp = torch if torch.is_tensor(aligned) else np
    aligned = xp.clip(aligned, protocol.min_depth, protocol.max_depth)
    return xp.clip(aligned, 1e-6, None), scale, shift
