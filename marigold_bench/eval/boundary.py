"""Boundary F1 of a depth map: how well its depth edges coincide with the ground truth's.

After Depth Pro (Bochkovskii et al. 2024), in the form MoGe's evaluation computes it
(``boundary_f1`` in microsoft/MoGe ``moge/test/metrics.py``):

* A *pair* is a valid centre pixel at least ``radius`` from the border and a valid neighbour at
  offset ``(dy, dx)`` with ``dy^2 + dx^2 <= radius^2`` (4 neighbours for radius 1, 12 for 2, 28
  for 3). Pairs are directed: centre ``c``, neighbour ``n``.
* For a threshold ``t`` the pair is an edge of a map ``d`` when ``d_n / d_c > 1 + t`` (the
  neighbour is farther by more than ``t``); edges of the prediction are compared with edges of the
  ground truth over the same pairs: precision, recall and F1.
* Ten thresholds ``t = 0.05, ..., 0.25`` (evenly spaced); the result is the mean of their F1s
  weighted by ``t``.

Conventions kept from MoGe: a threshold at which either map has no edge gets F1 = 0, so a flat
ground truth (no edges) scores 0 whatever the prediction; the ratios are computed in float32 and
compared with ``1 + t`` rounded to float32, as MoGe's tensors are; non-positive depths are used as
they are (a 0/0 ratio is never an edge).

Cost: one pass of array arithmetic per neighbour offset over blocks of rows, spread over threads
(numpy releases the GIL); no per-pixel Python.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.eval.threads import map_in_threads

#: the thresholds t (float32, as ``torch.linspace(0.05, 0.25, 10)``) and their weights
THRESHOLDS = np.linspace(0.05, 0.25, 10).astype(np.float32).astype(np.float64)

# ``1 + t`` as a float32 tensor compares with it
_LIMITS = (1.0 + THRESHOLDS).astype(np.float32)

# pixels of one block of rows (~1 MB per float32 array: the block's arithmetic stays in cache)
_BLOCK_PIXELS = 1 << 18


def disc_offsets(radius: int) -> list[tuple[int, int]]:
    """The neighbour offsets ``(dy, dx) != (0, 0)`` with ``dy^2 + dx^2 <= radius^2``."""
    r = int(radius)
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
            if (dy or dx) and dy * dy + dx * dx <= r * r]


def _edge_levels(ratio: np.ndarray) -> np.ndarray:
    """How many of the thresholds each ratio exceeds (0-10); NaN exceeds none."""
    return np.searchsorted(_LIMITS, np.where(ratio > _LIMITS[0], ratio, 0), side="left")


def _add_counts(counts: np.ndarray, rp: np.ndarray, rg: np.ndarray) -> None:
    """Add to ``counts`` (3 x 11: pairs by the number of thresholds they exceed) the edges of the
    prediction, the ground truth and both, from the ratios of a set of pairs."""
    keep = (rp > _LIMITS[0]) | (rg > _LIMITS[0])
    n_keep = np.count_nonzero(keep)
    if n_keep == 0:
        return
    if n_keep * 16 < keep.size:
        # few edges (the usual case): bin only those pairs
        lp, lg = _edge_levels(rp[keep]), _edge_levels(rg[keep])
        for k, levels in enumerate((lp, lg, np.minimum(lp, lg))):
            counts[k] += np.bincount(levels, minlength=_LIMITS.size + 1)
        return
    # many (noisy maps): one comparison per threshold beats gathering the pairs
    for k, r in enumerate((rp, rg, np.minimum(rp, rg))):
        above = np.array([np.count_nonzero(r > limit) for limit in _LIMITS] + [0])
        # as level counts: pairs exceeding exactly j thresholds
        counts[k, 1:] += above[:-1] - above[1:]


def _block_counts(p, g, rows: slice, radius: int, offsets) -> np.ndarray:
    """Edge counts (see `_add_counts`) over the pairs whose centre is in ``rows`` (interior rows
    only). Invalid pixels hold NaN, so every ratio involving one is NaN: never an edge."""
    w = p.shape[1]
    cols = slice(radius, w - radius)
    pc, gc = p[rows, cols], g[rows, cols]
    counts = np.zeros((3, _LIMITS.size + 1), np.int64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for dy, dx in offsets:
            nr = slice(rows.start + dy, rows.stop + dy)
            nc = slice(radius + dx, w - radius + dx)
            _add_counts(counts, p[nr, nc] / pc, g[nr, nc] / gc)
    return counts


def boundary_f1(pred, gt, valid, radius: int = 1) -> float:
    """Boundary F1 of an aligned depth map (Depth Pro's edge metric, as MoGe computes it).

    Args:
        pred: aligned depth, HxW (any float dtype; compared in float32).
        gt: ground-truth depth, HxW.
        valid: boolean HxW mask; a pair needs both pixels valid.
        radius: neighbourhood radius in pixels (MoGe reports 1, 2 and 3).

    Returns:
        The threshold-weighted mean F1 in [0, 1]; 0 when the ground truth has no edge at any
        threshold (e.g. a flat map) or the image is not larger than ``2 * radius`` on a side.

    Raises:
        ValueError: mismatched shapes, a map that is not 2-D, or a radius below 1.
    """
    p, g, m = np.asarray(pred), np.asarray(gt), np.asarray(valid, dtype=bool)
    if not p.shape == g.shape == m.shape or p.ndim != 2:
        raise ValueError(f"pred, gt and valid must be HxW of one shape: {p.shape}, {g.shape}, {m.shape}")
    if int(radius) != radius or radius < 1:
        raise ValueError(f"radius must be a positive integer, got {radius!r}")
    radius = int(radius)
    h, w = p.shape
    if h <= 2 * radius or w <= 2 * radius:
        return 0.0
    # NaN marks invalid pixels: one pass here instead of two mask tests per offset and block
    p = np.where(m, p.astype(np.float32, copy=False), np.float32(np.nan))
    g = np.where(m, g.astype(np.float32, copy=False), np.float32(np.nan))
    offsets = disc_offsets(radius)
    step = max(1, _BLOCK_PIXELS // w)
    blocks = [slice(r, min(r + step, h - radius)) for r in range(radius, h - radius, step)]
    counts = sum(map_in_threads(lambda rows: _block_counts(p, g, rows, radius, offsets), blocks))
    # at threshold k a pair is an edge when its level exceeds k: suffix sums of the level counts
    above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:].astype(np.float64)
    n_pred, n_gt, n_both = above
    precision = n_both / np.maximum(n_pred, 1e-12)
    recall = n_both / np.maximum(n_gt, 1e-12)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float((THRESHOLDS * f1).sum() / THRESHOLDS.sum())
