"""Resizing depth maps with numpy alone, the way ``torch.nn.functional.interpolate`` does it.

A compact prediction cache stores each map at the resolution the model produced it and records
how the model would have resized it to the ground truth; reading the cache applies that resize
here, so that ``evaluate``, ``rescore`` and ``table`` need no torch import. Three modes, each the
arithmetic of one torch call with ``align_corners=False``:

* ``"bilinear"`` -- ``interpolate(mode="bilinear")``: Marigold's output step in diffusers (and
  ours with ``--padding replicate``);
* ``"bicubic"`` -- ``interpolate(mode="bicubic")`` (Keys' kernel, a = -0.75, edge pixels
  repeated): transformers' ``post_process_depth_estimation``;
* ``"bilinear-antialias"`` -- ``interpolate(mode="bilinear", antialias=True)``, a triangle filter
  widened by the downscale factor when shrinking (equal to ``"bilinear"`` when enlarging): the
  official Marigold pipeline's output step (``--padding none``).

Each mode is separable: a resize is one interpolation along the columns (a sparse
``cols_out x cols_in`` matrix, float64) and one along the rows (a few weighted whole-row
gathers). The sample positions are computed in float32 with the multiply-add fused, as torch
does: at 6048 pixels one float32 step of a coordinate is 5e-4 px, and computing it otherwise
moves values by 1e-5. The result agrees with torch's to float32 round-off (~1e-7 for bilinear,
~1e-6 for a large bicubic enlargement, where torch's own float32 sums of 16 taps round).
"""

from __future__ import annotations

import numpy as np

#: resize modes `resize` accepts (the values of a predictor's ``settings["resample_output"]``)
RESIZE_MODES = ("bilinear", "bicubic", "bilinear-antialias")

#: Keys' cubic convolution parameter used by torch (and OpenCV); PIL uses -0.5
CUBIC_A = -0.75


def _scale(n_in: int, n_out: int) -> np.float32:
    # torch divides the sizes in float32 when given an output size; computing it in float64
    # instead would move a 6048-pixel axis's last samples by 5e-5 pixels
    return np.float32(n_in) / np.float32(n_out)


def _source_positions(n_in: int, n_out: int) -> np.ndarray:
    # the output pixel centres in input coordinates (align_corners=False) as torch computes them:
    # float32, the multiply-add fused (one rounding: the float64 product of two float32 numbers
    # is exact). The coordinate's rounding matters: one float32 step at 500 px is 3e-5 px.
    centres = np.arange(n_out, dtype=np.float64) + 0.5
    return (np.float64(_scale(n_in, n_out)) * centres - 0.5).astype(np.float32)


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    src = np.maximum(_source_positions(n_in, n_out), np.float32(0))  # torch clamps linear modes at 0
    left = np.minimum(src.astype(np.int64), n_in - 1)
    frac = np.clip(src - left.astype(np.float32), 0, 1)
    right = np.minimum(left + 1, n_in - 1)
    return np.stack([left, right], 1), np.stack([np.float32(1) - frac, frac], 1).astype(np.float64)


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    a = CUBIC_A
    t = t.astype(np.float64)
    one = 1.0

    def near(x):   # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):    # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + one), near(t), near(one - t), far(2 - t)], 1)


def _bicubic_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    src = _source_positions(n_in, n_out)   # not clamped for cubic
    base = np.floor(src).astype(np.int64)
    t = src - base.astype(np.float32)
    index = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)  # edge pixels repeated
    return index, _cubic_weights(t)


def _antialias_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    # the separable triangle filter of torch's antialiased bilinear (as PIL's resampling): its
    # support grows with the downscale factor, and the weights that fall inside are normalised
    one = np.float32(1)
    scale = _scale(n_in, n_out)
    support = np.float64(scale if scale >= one else one)
    inv = np.float64(one / scale if scale >= one else one)
    centre = (np.float64(scale) * (np.arange(n_out, dtype=np.float64) + 0.5)).astype(np.float32)
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)   # truncation, as torch
    last = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    width = int((last - first).max())
    index = first[:, None] + np.arange(width)[None, :]
    inside = index < last[:, None]
    offset = ((index.astype(np.float32) - centre[:, None]) + 0.5) * inv
    weights = np.clip(one - np.abs(offset.astype(np.float32)), 0, None).astype(np.float64) * inside
    total = weights.sum(1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return np.minimum(index, n_in - 1), weights


_TAPS = {"bilinear": _bilinear_taps, "bicubic": _bicubic_taps, "bilinear-antialias": _antialias_taps}


def interpolation_matrix(n_in: int, n_out: int, mode: str = "bilinear"):
    """The ``n_out x n_in`` sparse matrix (``scipy.sparse.csr_matrix``, float64) that resizes
    one axis of length ``n_in`` to ``n_out`` with ``mode`` (one of `RESIZE_MODES`)."""
    from scipy.sparse import csr_matrix

    if mode not in _TAPS:
        raise ValueError(f"unknown resize mode {mode!r}; known: {', '.join(RESIZE_MODES)}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"cannot resize an axis of length {n_in} to {n_out}")
    index, weights = _TAPS[mode](int(n_in), int(n_out))
    rows = np.repeat(np.arange(n_out), index.shape[1])
    # duplicate (row, column) pairs from clamped taps are summed by the constructor, as wanted
    return csr_matrix((weights.ravel(), (rows, index.ravel())), shape=(n_out, n_in))


def resize(array: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize an ``H x W`` map to ``size = (rows, cols)`` as torch's ``interpolate`` would.

    Args:
        array: a 2-D array of any real dtype, or ``C x H x W`` (each channel resized alike).
        size: ``(rows, cols)`` of the result.
        mode: one of `RESIZE_MODES` (see the module docstring for the torch call each one is).

    Returns:
        float32 ``rows x cols``; the input itself (as float32) when the size already matches,
        as torch returns a copy of the same values then.

    Example:
        ```py
        >>> from marigold_bench.eval.resize import resize
        >>> resize(np.array([[0.0, 1.0]]), (1, 4))
        array([[0.  , 0.25, 0.75, 1.  ]], dtype=float32)
        ```
    """
    array = np.asarray(array)
    if array.ndim == 3:  # C x H x W (normals, point maps): each channel on its own, as torch does
        return np.stack([resize(channel, size, mode) for channel in array]) if len(array) else \
            np.zeros((0, *size), np.float32)
    if array.ndim != 2:
        raise ValueError(f"resize expects an H x W or C x H x W map, got shape {array.shape}")
    rows, cols = (int(s) for s in size)
    if mode not in _TAPS:
        raise ValueError(f"unknown resize mode {mode!r}; known: {', '.join(RESIZE_MODES)}")
    if array.shape == (rows, cols):
        return array.astype(np.float32, copy=False)
    data = array.astype(np.float64, copy=False)
    if array.shape[1] != cols:   # columns first, on the fewer rows of the two orders when enlarging
        data = (interpolation_matrix(array.shape[1], cols, mode) @ data.T).T
    data = np.ascontiguousarray(data, dtype=np.float32)
    if array.shape[0] == rows:
        return data
    # rows by whole-row gathers, which stream through memory: an ETH3D map (24 M pixels) in a
    # fraction of a second. float32 sums of a few taps: round-off ~1e-7 on maps in [0, 1].
    index, weights = _TAPS[mode](array.shape[0], rows)
    out = np.zeros((rows, cols), np.float32)
    for k in range(index.shape[1]):
        out += weights[:, k, None].astype(np.float32) * data[index[:, k]]
    return out

__all__ = ["RESIZE_MODES", "CUBIC_A", "interpolation_matrix", "resize"]
