"""Alignment of a prediction to metric ground truth: the fits, and the one dispatcher.

The protocol's order per sample: fit scale ``s`` and shift ``t`` over the valid pixels (in depth
or in disparity space, optionally on a downsized copy), apply them at full resolution, clip to
the benchmark's depth range, then to >= 1e-6 (see :func:`align_and_clip`).

`align` is the one entry for "align this prediction as it was scored": given a resolved
:class:`~marigold_bench.eval.protocols.Scoring` it calls the evaluation protocol's own ``align``
callable (Marigold's least squares and clipping, MoGe's fits, a plugin's), so every caller --
the scorer, pictures, reports -- aligns alike. Given an alignment name it applies the plain fit
of `FITS` (no clipping), the building block the Marigold protocol is made of.

torch is imported only inside the calls that get tensors, so scoring cached predictions on the
host (``rescore``, ``table``) never loads it.
"""

from __future__ import annotations

import math
import sys

import numpy as np

#: fitted disparity is clipped here before inversion, as in the official evaluation (the
#: Marigold protocol's ``disparity_floor``; a protocol sets its own)
MIN_DISPARITY = 1e-3

#: the alignments `align` knows: least-squares scale and shift, least-squares scale, median
#: scaling, none (the prediction scored as it is)
ALIGNMENTS = ("affine", "scale", "median", "none")

#: where a fit is made: on depth, or on disparity (1/depth) and inverted back
FIT_SPACES = ("depth", "disparity")

#: how `_downsample` shrinks the fit copy (see there)
DOWNSAMPLE_MODES = ("width_only", "2d")


def _is_tensor(x) -> bool:
    """``torch.is_tensor`` without importing torch: a tensor can only exist once torch is loaded."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(x)


def _nearest_indices(size: int, factor: float, dtype) -> np.ndarray:
    """Source indices torch's ``interpolate(scale_factor=factor, mode="nearest")`` reads, per axis.

    torch computes ``floorf(i * (1 / factor))`` in the input's "opmath" type (float32 for float32
    and narrower, double for float64, then rounded to float before the floor) and clamps at the
    last index; the output has ``floor(size * factor)`` entries. Reproduced here so numpy input
    needs no torch and picks the very same pixels (checked against torch in the tests).
    """
    out = math.floor(float(size * factor))
    if out < 1:
        raise ValueError(f"downsampling {size} pixels by {factor} leaves none to fit")
    if out == size:
        return np.arange(size)
    if np.dtype(dtype) == np.float64:
        src = (np.arange(out, dtype=np.float64) * (1.0 / factor)).astype(np.float32)
    else:
        src = np.arange(out, dtype=np.float32) * np.float32(1.0 / factor)
    return np.minimum(np.floor(src).astype(np.int64), size - 1)


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
        if isinstance(a, np.ndarray):
            # masks and integers go through float32 in the tensor path; nearest copies values
            dtype = a.dtype if a.dtype.kind == "f" else np.float32
            cols = _nearest_indices(w, factor, dtype)
            rows = np.arange(h) if mode == "width_only" else _nearest_indices(h, factor, dtype)
            out.append(a[np.ix_(rows, cols)])
            continue
        import torch
        x = a
        is_mask = x.dtype == torch.bool
        # nearest sampling copies values, so any float dtype gives the same numbers
        x = x.to(torch.float32) if is_mask or not torch.is_floating_point(x) else x
        x = x[None] if mode == "width_only" else x[None, None]
        y = torch.nn.functional.interpolate(x, scale_factor=factor, mode="nearest")
        y = y[0] if mode == "width_only" else y[0, 0]
        out.append(y.bool() if is_mask else y)
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
    import torch
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


def fit_scale_shift(pred, gt, valid, space: str = "depth", max_resolution: int | None = None,
                    downsample: str = "width_only") -> tuple[float, float]:
    """Least-squares ``scale`` and ``shift`` of ``pred`` to the ground truth, in the fit space.

    Arguments as `align_least_squares`. Only the (downsampled) fit copy is converted to
    float64, so a 24 M-pixel ETH3D frame is never copied whole in float64 here.
    """
    p, g, target, m, on_device = _fit_inputs(pred, gt, valid, space, max_resolution, downsample)
    if on_device:
        return _fit_masked(p, target, m)
    if int(m.sum()) < 2:
        raise ValueError("fewer than 2 valid pixels: cannot fit scale and shift")
    return _fit(p[m], target[m])


def _fit_inputs(pred, gt, valid, space, max_resolution, downsample):
    """The fit's copy: ``(p, g, target, mask, on_device)``, float64, downsampled if asked.

    ``target`` is the ground truth in the fit space (depth, or 1/depth where ``gt > 0``); in
    disparity space the mask also drops pixels with ``gt <= 0`` or ``pred <= 0``. Tensors stay
    on ``pred``'s device.
    """
    on_device = _is_tensor(pred)
    if on_device:
        import torch
        gt = torch.as_tensor(gt, device=pred.device)
        valid = torch.as_tensor(valid, device=pred.device).bool()
    else:
        pred, gt, valid = np.asarray(pred), np.asarray(gt), np.asarray(valid, dtype=bool)
    if not (tuple(pred.shape) == tuple(gt.shape) == tuple(valid.shape)):
        raise ValueError(f"shapes differ: pred {tuple(pred.shape)}, gt {tuple(gt.shape)}, valid {tuple(valid.shape)}")
    if space not in FIT_SPACES:
        raise ValueError(f"unknown fit space {space!r} (depth or disparity)")

    p, g, m = pred, gt, valid
    if max_resolution is not None:
        p, g, m = _downsample([pred, gt, valid], max_resolution, downsample)
    xp = sys.modules["torch"] if on_device else np
    p, g = (p.to(xp.float64), g.to(xp.float64)) if on_device else (p.astype(np.float64), g.astype(np.float64))
    if space == "disparity":
        m = m & (g > 0) & (p > 0)
        # zeros are replaced before dividing, so no division by zero happens
        target = xp.where(m, 1.0 / xp.where(g > 0, g, 1.0), 0.0)
    else:
        target = g
    return p, g, target, m, on_device


def apply_scale_shift(pred, scale: float, shift: float, space: str = "depth",
                      disparity_floor: float = MIN_DISPARITY):
    """``scale * pred + shift`` in float64 (any shape: a map, or only its valid pixels); in
    disparity space the result is clipped to >= ``disparity_floor`` and inverted back to depth."""
    on_device = _is_tensor(pred)
    xp = sys.modules["torch"] if on_device else np
    fitted = scale * (pred.to(xp.float64) if on_device else np.asarray(pred, dtype=np.float64)) + shift
    if space == "disparity":
        fitted = 1.0 / xp.clip(fitted, disparity_floor, None)
    return fitted


def clip_to_range(aligned, protocol):
    """Clip aligned depth to the benchmark's range, then to >= 1e-6 (so every log is defined)."""
    if _is_tensor(aligned):
        return aligned.clamp(protocol.min_depth, protocol.max_depth).clamp_min(1e-6)
    # maximum/minimum into one new array: np.clip costs several times as much on ETH3D frames
    out = np.maximum(aligned, protocol.min_depth)
    np.minimum(out, protocol.max_depth, out=out)
    return np.maximum(out, 1e-6, out=out)


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
        ``(aligned_depth, scale, shift)``: the whole map aligned (float64); ``scale``/``shift``
        are in the fit space.

    Raises:
        ValueError: unknown space, mismatched shapes, or fewer than 2 pixels to fit.
    """
    scale, shift = fit_scale_shift(pred, gt, valid, space, max_resolution, downsample)
    return apply_scale_shift(pred, scale, shift, space), scale, shift


def align_and_clip(pred, gt, valid, protocol):
    """The protocol's alignment: fit as the protocol says, then clip to its range and >= 1e-6.

    ``protocol`` is a resolved :class:`~marigold_bench.eval.protocols.Scoring` (then this is
    `align`) or a benchmark protocol (its own fit space, least squares: the ``marigold``
    protocol's default for depth predictions). numpy inputs give a numpy result; tensors are
    aligned on their device (see `align_least_squares`).
    """
    if _is_scoring(protocol):
        return align(pred, gt, valid, protocol)
    aligned, scale, shift = align_least_squares(
        pred, gt, valid, space=protocol.fit_space, max_resolution=protocol.fit_max_resolution,
        downsample=protocol.fit_downsample)
    return clip_to_range(aligned, protocol), scale, shift


def fit_scale_least_squares(pred, gt, valid, space: str = "depth", max_resolution: int | None = None,
                            downsample: str = "width_only") -> float:
    """Least-squares scale without shift: ``argmin_s sum (s * p - g)^2 = sum(p g) / sum(p^2)``.

    Args:
        pred: prediction, HxW (numpy; a tensor is fitted in float64 on its device).
        gt: ground-truth depth in metres, HxW.
        valid: boolean HxW mask of the pixels the fit may use.
        space: ``"depth"`` fits ``pred`` to depth; ``"disparity"`` fits ``pred`` to ``1/gt`` over
            pixels where also ``gt > 0`` and ``pred > 0`` (as `fit_scale_shift` does).
        max_resolution, downsample: fit on a downsized copy, as in `align_least_squares`.

    Returns:
        The scale, in the fit space. An all-zero prediction gives 0 (the minimum-norm solution).

    Raises:
        ValueError: unknown space, mismatched shapes, or no pixel to fit.
    """
    p, g, target, m, on_device = _fit_inputs(pred, gt, valid, space, max_resolution, downsample)
    if on_device:
        import torch
        n, pp, pt = torch.stack([m.sum(), torch.where(m, p * p, 0.0).sum(),
                                 torch.where(m, p * target, 0.0).sum()]).tolist()
    else:
        pm = p[m]
        n, pp, pt = pm.size, float(np.dot(pm, pm)), float(np.dot(pm, target[m]))
    if n < 1:
        raise ValueError("no valid pixel: cannot fit a scale")
    return float(pt / pp) if pp > 0 else 0.0


def _median(x) -> float:
    """numpy's median (the mean of the two middle values for an even count) of a 1-D array or
    tensor. torch's own ``median`` returns the lower middle value instead, and ``quantile``
    refuses more than 2^24 values (an ETH3D frame has 24 M), so a tensor uses ``kthvalue``."""
    if not _is_tensor(x):
        return float(np.median(x))
    n = x.numel()
    lower = float(x.kthvalue((n + 1) // 2).values)
    return lower if n % 2 else 0.5 * (lower + float(x.kthvalue(n // 2 + 1).values))


def fit_median_scale(pred, gt, valid, space: str = "depth", max_resolution: int | None = None,
                     downsample: str = "width_only") -> float:
    """Median scaling (Monodepth2, Metric3D): one scale ``median(g) / median(p)`` over the valid pixels.

    Args:
        pred: prediction, HxW (numpy; a tensor is reduced on its device).
        gt: ground-truth depth in metres, HxW.
        valid: boolean HxW mask of the pixels the fit may use.
        space: ``"depth"``: ``pred`` is depth up to scale, the scale is ``median(g) / median(p)``.
            ``"disparity"``: ``pred`` is disparity up to scale. It is turned into depth ``1/p`` and
            median-scaled there, as Monodepth2 does with its disparity output: over the pixels with
            ``gt > 0`` and ``pred > 0``, depth scale ``median(g) / median(1/p)``. The value returned
            is the same fit in disparity space, ``median(1/p) / median(g)``, so that ``1 / (s * p)``
            is the aligned depth (see `align`). Because a median of an even count averages the two
            middle values, this is not the median of the disparity ratios.
        max_resolution, downsample: fit on a downsized copy, as in `align_least_squares`.

    Returns:
        The scale, in the fit space.

    Raises:
        ValueError: unknown space, mismatched shapes, no pixel to fit, or a median of zero.
    """
    p, g, target, m, on_device = _fit_inputs(pred, gt, valid, space, max_resolution, downsample)
    if int(m.sum()) < 1:
        raise ValueError("no valid pixel: cannot fit a median scale")
    if space == "disparity":
        # positive p only (the mask says so), so 1/p is the prediction as depth
        median_pred_depth, median_gt = _median(1.0 / p[m]), _median(g[m])
        return median_pred_depth / median_gt
    median_pred = _median(p[m])
    if median_pred == 0:
        raise ValueError("the prediction's median over the valid pixels is 0: cannot scale it")
    return _median(target[m]) / median_pred


#: alignment name -> ``fit(pred, gt, valid, space, max_resolution, downsample) -> (scale, shift)``
#: in the fit space: the plain fits the Marigold protocol (and `align` given a name) applies
FITS = {
    "affine": fit_scale_shift,
    "scale": lambda *a: (float(fit_scale_least_squares(*a)), 0.0),
    "median": lambda *a: (float(fit_median_scale(*a)), 0.0),
    "none": lambda *a: (1.0, 0.0),
}


def fit_alignment(pred, gt, valid, alignment: str, space: str = "depth", max_resolution: int | None = None,
                  downsample: str = "width_only") -> tuple[float, float]:
    """``(scale, shift)`` of the plain fit called ``alignment`` (see `FITS`), in its fit space.

    numpy or tensors (a tensor is fitted in float64 on its device); ``none`` is ``(1, 0)``.

    Raises:
        ValueError: an unknown alignment, space or downsample mode (the message lists the
            accepted values), mismatched shapes, or too few pixels to fit.
    """
    if alignment not in FITS:
        raise ValueError(f"unknown alignment {alignment!r}; accepted: {', '.join(ALIGNMENTS)}")
    if space not in FIT_SPACES:
        raise ValueError(f"unknown fit space {space!r}; accepted: {', '.join(FIT_SPACES)}")
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"unknown downsample mode {downsample!r}; accepted: {', '.join(DOWNSAMPLE_MODES)}")
    if alignment == "none":  # nothing is fitted, but a misshapen map is still an error
        shapes = [tuple(getattr(a, "shape", None) or np.shape(a)) for a in (pred, gt, valid)]
        if not shapes[0] == shapes[1] == shapes[2]:
            raise ValueError(f"shapes differ: pred {shapes[0]}, gt {shapes[1]}, valid {shapes[2]}")
    return FITS[alignment](pred, gt, valid, space, max_resolution, downsample)


def _is_scoring(how) -> bool:
    """A resolved scoring (anything carrying its evaluation protocol), not an alignment name."""
    return not isinstance(how, str) and hasattr(how, "definition")


def align(pred, gt, valid, how, space: str = "depth", max_resolution: int | None = None,
          downsample: str = "width_only"):
    """Align a prediction to the ground truth: THE alignment dispatcher of the package.

    Args:
        pred: prediction, HxW (numpy, or a torch tensor: then everything is computed in float64 on
            the tensor's device and the result is a tensor there; a protocol may only take numpy).
        gt: ground-truth depth in metres, HxW.
        valid: boolean HxW mask of the pixels the fit may use (the scored pixels, see
            `marigold_bench.eval.scoring.scored_pixels`).
        how: a resolved :class:`~marigold_bench.eval.protocols.Scoring`: the map is aligned by
            its evaluation protocol's ``align`` -- exactly what the scorer scores (fit, disparity
            floor, clipping); ``space`` and the rest are then ignored. Or an alignment name, one of
            `ALIGNMENTS`: the plain fit (`FITS`) without clipping:
            ``"affine"``: least-squares scale and shift (`align_least_squares`, Marigold's
            protocol). ``"scale"``: least-squares scale, no shift (`fit_scale_least_squares`).
            ``"median"``: median scaling (`fit_median_scale`). ``"none"``: no fit, scale 1 and
            shift 0; the prediction must already be metric (depth in metres, or with
            ``space="disparity"`` disparity in 1/m).
        space: ``"depth"``: ``pred`` is depth and is fitted to depth. ``"disparity"``: ``pred`` is
            disparity; it is fitted to ``1/gt``, and the fitted disparity is clipped to
            >= `MIN_DISPARITY` and inverted (also for ``"none"``).
        max_resolution: fit on a copy whose longer side is at most this (None: full size).
        downsample: ``"width_only"`` (official quirk) or ``"2d"``; see `_downsample`.

    Returns:
        ``(aligned_depth, scale, shift)``: the whole map as depth (float64) and the fitted
        parameters in the fit space. By name: no clipping to a depth range (see `clip_to_range`).

    Raises:
        ValueError: an unknown alignment, space or downsample mode (the message lists the
            accepted values), mismatched shapes, or too few pixels to fit.
    """
    if _is_scoring(how):
        return how.definition.align(pred, gt, valid, how)
    scale, shift = fit_alignment(pred, gt, valid, how, space, max_resolution, downsample)
    return apply_scale_shift(pred, scale, shift, space), scale, shift
