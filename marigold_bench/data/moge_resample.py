"""The resampling primitives MoGe's evaluation loader uses, in numpy, to the bit.

MoGe's loader (``moge/test/dataloader.py``) resamples with OpenCV and utils3d (pinned commit
3fab839). OpenCV is no dependency of this suite, so its behaviour is reproduced here:

* :func:`remap_nearest` = ``cv2.remap(..., INTER_NEAREST)`` with float32 maps: the source pixel is
  the map coordinate rounded half to even (``cvRound``); outside the image the value is 0
  (``BORDER_CONSTANT``).
* :func:`remap_linear_u8` = ``cv2.remap(..., INTER_LINEAR)`` of a uint8 image as OpenCV 4.x
  computes it (MoGe's recommended opencv-python 4.10): coordinates are rounded to 1/32 pixel,
  the four weights are 15-bit fixed point, taps outside the image read 0, and the sum is rounded
  half up. (OpenCV 5 interpolates in float; the two differ by at most one grey level.)
* :func:`resize_nearest` = ``cv2.resize(..., INTER_NEAREST)``: source index
  ``floor(i * (1 / (dst / src)))`` in double precision, clamped to the last pixel.
* :func:`masked_nearest_resize` = utils3d's numpy ``masked_nearest_resize``: each target pixel
  takes the valid source pixel nearest to its centre within a window around it.
"""

from __future__ import annotations

import math

import numpy as np

#: OpenCV's sub-pixel grid of bilinear remapping (INTER_BITS = 5) and its weight scale
_TAB = 32
_COEF_BITS = 15


def _rint_index(coord: np.ndarray) -> np.ndarray:
    # cvRound: round half to even; NaN, inf and huge values are moved far outside first, so that
    # they cast safely and read the border value, as in OpenCV
    coord = np.nan_to_num(np.asarray(coord), nan=-(1 << 20))
    return np.rint(np.clip(coord, -(1 << 20), 1 << 20)).astype(np.int64)


def remap_nearest(src: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``dst[i, j] = src[round(map_y[i, j]), round(map_x[i, j])]``, 0 outside ``src``.

    Args:
        src: HxW or HxWxC array of any dtype.
        map_x / map_y: float32 target-sized maps of source pixel coordinates (pixel centres at
            integers).

    Returns:
        An array of ``src``'s dtype, the maps' size (and ``src``'s channels).
    """
    h, w = src.shape[:2]
    ix, iy = _rint_index(map_x), _rint_index(map_y)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = src[np.where(inside, iy, 0), np.where(inside, ix, 0)]
    out[~inside] = 0
    return out


def remap_linear_u8(src: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Bilinear remap of a uint8 HxWxC (or HxW) image in OpenCV 4's fixed point (see module doc)."""
    src = np.asarray(src)
    h, w = src.shape[:2]
    qx = _rint_index(np.asarray(map_x, np.float32) * np.float32(_TAB))
    qy = _rint_index(np.asarray(map_y, np.float32) * np.float32(_TAB))
    x0, fx = qx >> 5, qx & (_TAB - 1)
    y0, fy = qy >> 5, qy & (_TAB - 1)
    # the four weights, each (32 - a)(32 - b) * 32: exact 15-bit integers that sum to 2^15
    scale = (1 << _COEF_BITS) // (_TAB * _TAB)
    weights = (((_TAB - fy) * (_TAB - fx)), ((_TAB - fy) * fx), (fy * (_TAB - fx)), (fy * fx))
    acc = np.zeros(map_x.shape + src.shape[2:], np.int64)
    for (dy, dx), wgt in zip(((0, 0), (0, 1), (1, 0), (1, 1)), weights):
        yy, xx = y0 + dy, x0 + dx
        inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        tap = src[np.where(inside, yy, 0), np.where(inside, xx, 0)].astype(np.int64)
        tap[~inside] = 0
        wgt = (wgt * scale) * inside
        acc += tap * (wgt[..., None] if src.ndim == 3 else wgt)
    return np.clip((acc + (1 << (_COEF_BITS - 1))) >> _COEF_BITS, 0, 255).astype(np.uint8)


def resize_nearest(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resize of an HxW(xC) array to ``size = (height, width)``, OpenCV's way."""
    h, w = src.shape[:2]
    th, tw = size
    fx, fy = 1.0 / (tw / w), 1.0 / (th / h)
    cols = np.minimum(np.floor(np.arange(tw) * fx).astype(np.int64), w - 1)
    rows = np.minimum(np.floor(np.arange(th) * fy).astype(np.int64), h - 1)
    return src[rows[:, None], cols[None, :]]


def _axis_windows(n_source: int, n_target: int):
    """Per target index along one axis: the float32 centre (in source pixels) and the first
    source index of its window; the window width (``ceil`` of the cell size, at least 1)."""
    cell = max(1.0, n_source / n_target)
    # numpy's float32 linspace (computed in float64, then rounded), as utils3d's uv_map
    uv = np.linspace(0.5 / n_target, 1 - 0.5 / n_target, n_target, dtype=np.float32)
    centre = uv * np.float32(n_source)
    start = np.round(centre - np.float32(cell / 2)).astype(np.int64)  # half to even
    return centre, start, math.ceil(cell)


def masked_nearest_resize(values: np.ndarray, mask: np.ndarray, size: tuple[int, int]):
    """Resize ``values`` (HxW) to ``size = (h', w')`` taking, for each target pixel, the valid
    source pixel nearest to its centre.

    Target pixel ``(i, j)`` has its centre at ``((j + 0.5) W / w', (i + 0.5) H / h')`` (float32)
    and looks at a window of ``ceil(max(1, H / h')) x ceil(max(1, W / w'))`` source pixels whose
    top-left is the rounded ``centre - cell / 2``. Among the window's valid pixels it takes the one
    whose centre ``(col + 0.5, row + 0.5)`` is nearest (squared distance in float32); ties go to
    the first in row-major window order. A target pixel whose window holds no valid pixel is
    invalid (its value is then 0 here; utils3d leaves an arbitrary one, never read).

    Returns:
        ``(resized values, resized mask)``.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    th, tw = size
    cy, sy, wy = _axis_windows(h, th)
    cx, sx, wx = _axis_windows(w, tw)
    best = np.full((th, tw), np.inf, np.float32)
    pick_r = np.zeros((th, tw), np.int64)
    pick_c = np.zeros((th, tw), np.int64)
    for a in range(wy):  # window rows first, then columns: row-major order, first minimum wins
        rows = sy + a
        dy2 = np.square(rows.astype(np.float32) + np.float32(0.5) - cy)
        row_in = (rows >= 0) & (rows < h)
        rows_c = np.clip(rows, 0, h - 1)
        for b in range(wx):
            cols = sx + b
            dx2 = np.square(cols.astype(np.float32) + np.float32(0.5) - cx)
            col_in = (cols >= 0) & (cols < w)
            cols_c = np.clip(cols, 0, w - 1)
            ok = mask[rows_c[:, None], cols_c[None, :]] & row_in[:, None] & col_in[None, :]
            dist = np.where(ok, dx2[None, :] + dy2[:, None], np.float32(np.inf))
            better = dist < best
            best = np.where(better, dist, best)
            pick_r = np.where(better, rows_c[:, None], pick_r)
            pick_c = np.where(better, cols_c[None, :], pick_c)
    valid = np.isfinite(best)
    out = np.asarray(values)[pick_r, pick_c]
    out[~valid] = 0
    return out, valid


__all__ = ["masked_nearest_resize", "remap_linear_u8", "remap_nearest", "resize_nearest"]
