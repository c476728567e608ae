"""MoGe's evaluation of depth maps, reproduced in numpy (float64).

MoGe (Wang et al., microsoft/MoGe: ``moge/test/metrics.py`` and ``moge/utils/alignment.py``, with
utils3d at its pinned commit 3fab839 for ``masked_nearest_resize``) aligns each prediction by its
output space and scores it with its own definitions. Its rules, as reproduced here:

* **Subsample.** The scale and affine fits see only a 64x64 subsample of the valid pixels
  (`masked_nearest_subsample`): each cell of a 64x64 grid over the image takes, from a window of
  the image around the cell's centre, the valid pixel nearest to that centre; cells whose window
  holds no valid pixel are dropped. Weights are ``1 / g``.
* **depth_scale_invariant**: ``argmin_a sum w |a p - g|`` on the subsample, solved exactly as a
  weighted median of the ratios ``g / p`` (`weighted_median_scale`).
* **depth_affine_invariant**: ``argmin_{a,b} sum w |a p + b - g|`` on the subsample. An optimum
  passes through two samples; MoGe tries every sample as an anchor, solves the scale problem on the
  differences to it and keeps the anchor with the least loss (`affine_l1_two_point`).
* **disparity_affine_invariant**: ordinary least squares of the predicted disparity onto ``1 / g``
  over all valid pixels at full resolution (no weights, no subsample, no positivity filter), then
  ``depth = 1 / max(disparity, 1 / max(g))``: clamped at the smallest ground-truth disparity.
* **depth_metric**: scored as it is.
* **Metrics** (`moge_metrics`) over the valid pixels, no clipping to a depth range:
  ``rel = mean(|p - g| / (g + 1e-6))`` and ``delta1 = mean(max(g / p, p / g) < 1.25)``.

Quirks of MoGe's code that are kept, because they move numbers:

1. **Negative depths are inliers.** For ``p < 0 < g`` both ratios of ``delta1`` are negative, so
   their maximum is below 1.25 and the pixel counts as correct. ``p = 0`` gives ``g / p = inf``:
   not an inlier. An affine fit can produce negative depths; they enter ``rel`` with their error.
2. **Anchors ignore samples tied with them.** In the affine anchor search a sample whose
   prediction equals the anchor's has a difference of 0; MoGe's scale solver multiplies both
   differences by ``sign(0) = 0``, so that sample drops out of the anchor's loss even when its
   ground truth differs. An anchor that shares its prediction value with other samples can
   therefore win with a loss below the true optimum (this happens with quantised or clipped
   predictions).
3. **Ties between anchors go to the last one.** MoGe's ``scatter_min`` writes every anchor with the
   least loss and the last write stands: the anchor with the highest sample index wins.
4. **Tiny differences are clamped.** Ratios divide by ``max(|x|, 1e-7)``, and the final scale
   divides by ``1e-7`` if the two chosen samples have equal predictions. A constant prediction
   therefore gets a scale of about ``+-1e7`` (MoGe's answer, kept; such a map scores very badly,
   as it should).
5. **Equal ratios.** MoGe sorts ratios with torch's unstable sort, so which of several samples
   with the same ratio is reported is not defined there; this module takes the first in sample
   order (a stable sort). Samples with equal ratios to an anchor lie on one line with it, so the
   fitted line is the same (to round-off) unless prediction ties (quirk 2) are involved.
6. The disparity fit has no weights and uses every valid pixel, also those with non-positive
   predicted disparity. For the boundary metric (`marigold_bench.eval.boundary`) MoGe inverts
   the fitted disparity with a clamp at 1e-6 instead (`moge_boundary_depth`).

Numerics: MoGe runs in the prediction's dtype (float32 in its evaluation); this module computes in
float64, so results agree with MoGe's to float32 round-off, and the choice between two anchors
or two median candidates can differ only when their losses agree to that round-off.

torch is not needed (nor imported).
"""

from __future__ import annotations

import math

import numpy as np

from marigold_bench.eval.align import _fit
from marigold_bench.output_spaces import DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE, OUTPUT_SPACES

#: MoGe's guard against division by a vanishing difference (``eps`` of its solver)
EPS = 1e-7

#: the subsample MoGe fits scale and affine alignments on
SUBSAMPLE_SIZE = (64, 64)

# the affine anchor search evaluates this many anchor x sample pairs at a time (~32 MB per array)
_PAIRS_PER_CHUNK = 1 << 22


# --- the 64x64 subsample (utils3d's masked_nearest_resize) -----------------------------------


def _linspace32(start: float, end: float, steps: int) -> np.ndarray:
    """torch's float32 ``linspace``, element by element: ``start + step * i`` for the first half,
    ``end - step * (steps - 1 - i)`` for the second. Exact (and so backend-independent) for the
    power-of-two sizes MoGe uses."""
    start32, end32 = np.float32(start), np.float32(end)
    if steps == 1:
        return np.array([start32])
    step = (end32 - start32) / np.float32(steps - 1)
    i = np.arange(steps)
    first = start32 + step * i.astype(np.float32)
    second = end32 - step * (steps - 1 - i).astype(np.float32)
    return np.where(i < steps // 2, first, second).astype(np.float32)


def _cell_windows(n_source: int, n_target: int):
    """For one axis: each cell's centre and the source indices of its window, as utils3d does it.

    The cell size is ``f = max(1, n_source / n_target)``; the centre of cell ``k`` is
    ``(k + 0.5) / n_target * n_source`` (float32); the window starts at ``round(centre - f / 2)``
    (half to even) and is ``ceil(f)`` pixels wide. Returns ``(centres, indices)``, indices of shape
    ``(n_target, ceil(f))``, possibly outside ``[0, n_source)`` (those positions hold no pixel).
    """
    f = max(1.0, n_source / n_target)
    width = math.ceil(f)
    centres = _linspace32(0.5 / n_target, 1 - 0.5 / n_target, n_target) * np.float32(n_source)
    start = np.rint(centres - np.float32(f / 2)).astype(np.int64)
    return centres, start[:, None] + np.arange(width)[None, :]


def masked_nearest_subsample(valid, size: tuple[int, int] = SUBSAMPLE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The pixels MoGe fits its scale and affine alignments on: utils3d's ``masked_nearest_resize``.

    Each cell ``(i, j)`` of a ``size`` grid over the image has its centre at
    ``((j + 0.5) W / w', (i + 0.5) H / h')`` and a window of ``ceil(H / h') x ceil(W / w')`` pixels
    starting at the rounded top-left ``centre - (W / w', H / h') / 2`` (a cell size is at least 1).
    The cell takes the valid pixel of its window whose centre ``(col + 0.5, row + 0.5)`` is nearest
    (squared distance in float32, as utils3d computes it); on a tie the first in row-major window
    order, i.e. the upper, then the left one. Cells with no valid pixel in their window are
    dropped. Windows are ``ceil`` wide, so two cells can pick the same pixel.

    Args:
        valid: boolean HxW mask.
        size: the grid ``(h', w')``; MoGe uses 64x64.

    Returns:
        ``(rows, cols)``: integer arrays of the chosen pixels, cells in row-major order.

    Raises:
        ValueError: ``valid`` is not 2-D or ``size`` is not two positive integers.
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.ndim != 2:
        raise ValueError(f"valid must be an HxW mask, got shape {valid.shape}")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be two positive integers, got {size!r}")
    (height, width), (th, tw) = valid.shape, size
    cy, rows = _cell_windows(height, th)  # (th,), (th, wh)
    cx, cols = _cell_windows(width, tw)   # (tw,), (tw, ww)
    dy2 = np.square(rows.astype(np.float32) + np.float32(0.5) - cy[:, None])
    dx2 = np.square(cols.astype(np.float32) + np.float32(0.5) - cx[:, None])
    wh, ww = rows.shape[1], cols.shape[1]
    # windows may reach past the border: pad with invalid pixels so that plain takes work
    pad_r, pad_c = max(0, -int(rows.min())), max(0, -int(cols.min()))
    padded = np.zeros((max(height, int(rows.max()) + 1) + pad_r, max(width, int(cols.max()) + 1) + pad_c), bool)
    padded[pad_r:pad_r + height, pad_c:pad_c + width] = valid
    col_take = (cols + pad_c).ravel()

    picked_r, picked_c = [], []
    # a band of grid rows at a time: the (band, wh, tw, ww) arrays of an ETH3D frame stay ~25 MB
    band = max(1, (1 << 22) // max(tw * wh * ww, 1))
    for i0 in range(0, th, band):
        sl = slice(i0, min(th, i0 + band))
        nb = rows[sl].shape[0]
        # (band, wh, tw, ww): whole window rows first (contiguous copies), then the window columns
        m = np.take(padded[(rows[sl] + pad_r).ravel()], col_take, axis=1).reshape(nb, wh, tw, ww)
        dist = np.where(m, dy2[sl][:, :, None, None] + dx2[None, None, :, :], np.float32(np.inf))
        # row-major window order per cell, as utils3d flattens it: (band, tw, wh * ww)
        flat = dist.transpose(0, 2, 1, 3).reshape(nb, tw, wh * ww)
        best = flat.argmin(axis=-1)  # the first minimum, as torch.argmin
        keep = np.isfinite(np.take_along_axis(flat, best[..., None], axis=-1)[..., 0])
        u, v = np.divmod(best, ww)
        picked_r.append(np.take_along_axis(rows[sl], u, axis=1)[keep])
        picked_c.append(cols[np.arange(tw)[None, :], v][keep])
    return np.concatenate(picked_r), np.concatenate(picked_c)


# --- MoGe's exact L1 solvers -----------------------------------------------------------------


def _l1_scale_rows(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """``argmin_a sum_i w_i |a x_i - y_i|`` for every row of (b, n) arrays, MoGe's way.

    Both differences are multiplied by ``sign(x)`` (so ``x >= 0``; a sample with ``x = 0`` drops
    out of the loss, quirk 2), the ratios ``y / max(x, EPS)`` are sorted, and the first ratio at
    which the loss's slope ``2 * cumsum(w x) - sum(w x)`` is no longer negative is the answer.

    Returns:
        ``(a, loss, index, flat)`` per row: the scale, MoGe's loss at it, the sample ``a`` came
        from, and whether the loss is flat to the right of ``a`` (a whole interval is optimal).
    """
    sign = np.sign(x)
    x, y = x * sign, y * sign
    ratio = y / np.maximum(x, EPS)
    order = np.argsort(ratio, axis=-1, kind="stable")
    wx = np.take_along_axis(x * w, order, axis=-1)
    slope = 2 * np.cumsum(wx, axis=-1) - wx.sum(axis=-1, keepdims=True)
    # the slope never decreases (w x >= 0), so counting its negative entries is searchsorted
    first = np.minimum((slope < 0).sum(axis=-1), x.shape[-1] - 1)[:, None]
    index = np.take_along_axis(order, first, axis=-1)
    a = np.take_along_axis(ratio, index, axis=-1)
    loss = (w * np.abs(a * x - y)).sum(axis=-1)
    total = wx.sum(axis=-1)
    flat = np.abs(np.take_along_axis(slope, first, axis=-1)[:, 0]) <= 1e-12 * total
    return a[:, 0], loss, index[:, 0], flat


def _check_samples(p, g, w):
    p, g, w = (np.asarray(a, dtype=np.float64).ravel() for a in (p, g, w))
    if not p.size == g.size == w.size:
        raise ValueError(f"p, g and w differ in length: {p.size}, {g.size}, {w.size}")
    if p.size == 0:
        raise ValueError("no samples to fit")
    if not (np.isfinite(p).all() and np.isfinite(g).all() and np.isfinite(w).all()):
        raise ValueError("p, g and w must be finite")
    if (w < 0).any():
        raise ValueError("weights must be >= 0")
    return p, g, w


def weighted_median_scale(p, g, w) -> float:
    """MoGe's exact weighted-L1 scale: ``argmin_a sum w |a p - g|``.

    The loss is ``sum w |p| |a - g / p|``, so the answer is a weighted median of the ratios
    ``g / p`` with weights ``w |p|``: the smallest ratio at which the ratios up to it carry at least
    half the total weight (the lower end where a whole interval is optimal). Samples with
    ``p = 0`` carry no weight.

    Args:
        p: predictions of the samples (1-D).
        g: ground truth of the samples.
        w: non-negative weights (MoGe: ``1 / g``).

    Returns:
        The scale (0 if every ``p`` is 0).

    Raises:
        ValueError: lengths differ, no samples, non-finite values or negative weights.
    """
    p, g, w = _check_samples(p, g, w)
    a, _, _, _ = _l1_scale_rows(p[None], g[None], w[None])
    return float(a[0])


def _anchor_losses(p, g, w, anchors):
    """MoGe's per-anchor problem for each of ``anchors``: the scale problem on the differences to
    the anchor. Returns ``(loss, partner, flat)`` arrays (the partner is the sample the scale came
    from; flat: see `_l1_scale_rows`)."""
    out = []
    step = max(1, _PAIRS_PER_CHUNK // p.size)
    for s in range(0, anchors.size, step):
        k = anchors[s:s + step]
        out.append(_l1_scale_rows(p[None, :] - p[k, None], g[None, :] - g[k, None],
                                  np.broadcast_to(w, (k.size, p.size)))[1:])
    return tuple(np.concatenate(parts) for parts in zip(*out))


def _tied_error(p, g, w, anchors):
    """For each anchor, the loss its samples with an equal prediction would add (MoGe leaves it out)."""
    out = np.zeros(anchors.size)
    for n, k in enumerate(anchors):
        tied = p == p[k]
        out[n] = float((w[tied] * np.abs(g[tied] - g[k])).sum())
    return out


def _abs_moment(p, w, samples, at):
    """``sum_{i in samples} w_i |p_i - p_k|`` for every ``k`` in ``at``, by sorted prefix sums."""
    order = np.argsort(p[samples], kind="stable")
    x, wx = p[samples][order], w[samples][order]
    cw, cwx = np.concatenate([[0.0], np.cumsum(wx)]), np.concatenate([[0.0], np.cumsum(wx * x)])
    c = p[at]
    j = np.searchsorted(x, c, side="left")  # samples below c
    return c * cw[j] - cwx[j] + (cwx[-1] - cwx[j]) - c * (cw[-1] - cw[j])


def _candidate_anchors(p, g, w, anchors):
    """Anchors among which MoGe's least-loss anchor must lie, found without trying all of them.

    The true loss of an anchor's best line is at least the L1 optimum, so the winning anchors are
    (a) those on an optimal line and (b) those whose loss MoGe shortens by leaving out samples
    with an equal prediction (quirk 2). (a) is found by descent: from an anchor, hop to the
    partner its best line passes through, and on to the best anchor on that line, until no anchor
    on the current line improves it; a line that no rotation about any of its samples improves is
    optimal (the loss is convex and linear between those rotations). Returns None, and the caller
    tries every anchor, if the descent does not settle or the optimum is not unique (a rotation
    about a sample of the final line leaves the loss unchanged): then MoGe's choice among the
    equally good lines depends on its tie rule over all anchors.
    """
    on_value = {}
    for k in anchors:  # anchors sharing a prediction value with another sample
        on_value.setdefault(p[k], []).append(k)
    values, counts = np.unique(p, return_counts=True)
    shared = set(values[counts > 1].tolist())
    tied_anchors = [k for v, ks in on_value.items() if v in shared for k in ks]

    current = anchors[np.argmin(np.abs(p[anchors] - np.median(p[anchors])))]
    best_true = math.inf
    for _ in range(100):
        _, partner, _ = _anchor_losses(p, g, w, np.array([current]))
        j = partner[0]
        dp = p[j] - p[current]
        scale = (g[j] - g[current]) / (dp if dp != 0 else EPS)
        shift = g[current] - scale * p[current]
        resid = np.abs(scale * p + shift - g)
        on_line = anchors[resid[anchors] <= 1e-9 * (np.abs(g[anchors]) + np.abs(shift) + np.abs(scale * p[anchors]))]
        on_line = np.union1d(on_line, [current])
        if on_line.size > 32:
            # many samples on one line (e.g. an exactly affine prediction): rather than solving
            # each of them, check that the samples on the line outweigh the rest in every
            # rotation about one of them; then the line is the unique optimum and every anchor
            # on it finds it, so one of them (MoGe's tie rule: the last) stands for all
            off = np.setdiff1d(anchors, on_line)
            if (_abs_moment(p, w, on_line, on_line) > _abs_moment(p, w, off, on_line) * (1 + 1e-9)).all():
                return np.union1d([on_line[-1]], np.asarray(tied_anchors, dtype=np.int64))
            return None
        line_loss, _, flat = _anchor_losses(p, g, w, on_line)
        true_loss = line_loss + _tied_error(p, g, w, on_line)
        n = int(np.argmin(true_loss))
        if true_loss[n] >= best_true * (1 - 1e-12):
            if flat.any():
                return None
            return np.union1d(on_line, np.asarray(tied_anchors, dtype=np.int64))
        best_true, current = float(true_loss[n]), on_line[n]
    return None


def affine_l1_two_point(p, g, w) -> tuple[float, float]:
    """MoGe's exact weighted-L1 affine fit: ``argmin_{a,b} sum w |a p + b - g|``.

    The loss is convex and piecewise linear in ``(a, b)``, so an optimum is a line through two
    samples. MoGe takes every sample with ``w > 0`` as an anchor, solves the scale problem
    (`weighted_median_scale`) on the differences ``p - p_k``, ``g - g_k``, keeps the anchor with the
    least loss (ties: the last anchor) and returns the line through it and its partner sample:
    ``scale = (g_2 - g_1) / (p_2 - p_1)`` (the difference replaced by 1e-7 if it is 0),
    ``shift = g_1 - scale * p_1``. The same answer is found here without solving all anchors
    (see `_candidate_anchors`), including MoGe's quirks 2-4 of the module docstring.

    Args:
        p: predictions of the samples (1-D).
        g: ground truth of the samples.
        w: non-negative weights (MoGe: ``1 / g``).

    Returns:
        ``(scale, shift)``.

    Raises:
        ValueError: lengths differ, no sample with positive weight, non-finite values or negative
            weights.
    """
    p, g, w = _check_samples(p, g, w)
    anchors = np.flatnonzero(w > 0)
    if anchors.size == 0:
        raise ValueError("no sample with a positive weight to anchor the fit")
    candidates = _candidate_anchors(p, g, w, anchors)
    return _best_line(p, g, w, anchors if candidates is None else candidates)


def _best_line(p, g, w, anchors) -> tuple[float, float]:
    """The line of the least-loss anchor among ``anchors`` (sorted), MoGe's tie rule included."""
    loss, partner, _ = _anchor_losses(p, g, w, anchors)
    n = loss.size - 1 - int(np.argmin(loss[::-1]))  # the last of equal minima
    i1, i2 = anchors[n], partner[n]
    dp = p[i2] - p[i1]
    scale = (g[i2] - g[i1]) / (dp if dp != 0 else EPS)
    return float(scale), float(g[i1] - scale * p[i1])


def _affine_l1_all_anchors(p, g, w) -> tuple[float, float]:
    """`affine_l1_two_point` by trying every anchor, as MoGe does (the reference for the search)."""
    p, g, w = _check_samples(p, g, w)
    anchors = np.flatnonzero(w > 0)
    if anchors.size == 0:
        raise ValueError("no sample with a positive weight to anchor the fit")
    return _best_line(p, g, w, anchors)


# --- alignment by output space, and the metrics ----------------------------------------------


def moge_align(pred, gt, valid, output_space: str):
    """Align a prediction as MoGe's evaluation does for its output space.

    Args:
        pred: prediction, HxW, in ``output_space`` (disparity for ``disparity_affine_invariant``).
        gt: ground-truth depth, HxW (positive on the valid pixels).
        valid: boolean HxW mask of the pixels that are fitted and scored.
        output_space: one of `marigold_bench.output_spaces.OUTPUT_SPACES`:
            ``depth_scale_invariant``: weighted-L1 scale on the 64x64 subsample, ``w = 1/g``;
            ``depth_affine_invariant``: two-point weighted-L1 affine fit on the subsample;
            ``disparity_affine_invariant``: least squares of the disparity onto ``1/g`` over all
            valid pixels, then ``depth = 1 / max(disparity, 1 / max(g))``;
            ``depth_metric``: as it is.

    Returns:
        ``(aligned_depth, scale, shift)``: the whole map as depth (float64, no range clipping) and
        the parameters (in disparity for the disparity space; ``1, 0`` for metric depth).

    Raises:
        ValueError: unknown output space, mismatched shapes, or no valid pixel.
    """
    if output_space not in OUTPUT_SPACES:
        raise ValueError(f"unknown output space {output_space!r}; known: {', '.join(OUTPUT_SPACES)}")
    pred, gt, valid = np.asarray(pred), np.asarray(gt), np.asarray(valid, dtype=bool)
    if not pred.shape == gt.shape == valid.shape or pred.ndim != 2:
        raise ValueError(f"pred, gt and valid must be HxW of one shape: {pred.shape}, {gt.shape}, {valid.shape}")
    if not valid.any():
        raise ValueError("no valid pixel to align on")
    if output_space == DEPTH_METRIC:
        return pred.astype(np.float64), 1.0, 0.0
    if output_space == DISPARITY_AFFINE:
        g = gt[valid].astype(np.float64)
        scale, shift = _fit(pred[valid].astype(np.float64), 1.0 / g)
        # in place: an ETH3D frame's float64 temporaries are 200 MB each
        depth = _affine(pred, scale, shift)
        np.maximum(depth, 1.0 / g.max(), out=depth)
        return np.divide(1.0, depth, out=depth), scale, shift
    rows, cols = masked_nearest_subsample(valid)
    p, g = pred[rows, cols].astype(np.float64), gt[rows, cols].astype(np.float64)
    if output_space == DEPTH_SCALE:
        scale, shift = weighted_median_scale(p, g, 1.0 / g), 0.0
    else:
        assert output_space == DEPTH_AFFINE
        scale, shift = affine_l1_two_point(p, g, 1.0 / g)
    return _affine(pred, scale, shift), scale, shift


def _affine(pred, scale: float, shift: float) -> np.ndarray:
    """``scale * pred + shift`` as a new float64 array, computed in place."""
    out = pred.astype(np.float64)
    out *= scale
    out += shift
    return out


#: MoGe clamps a fitted disparity here before inverting it for its boundary metric
BOUNDARY_DISPARITY_FLOOR = 1e-6


def moge_boundary_depth(pred, gt, valid, output_space: str, fit=None,
                        disparity_floor: float = BOUNDARY_DISPARITY_FLOOR) -> np.ndarray:
    """The depth map MoGe's boundary F1 reads for a prediction in ``output_space``.

    It is `moge_align`'s depth, except for ``disparity_affine_invariant``: MoGe inverts the fitted
    disparity clamped at 1e-6 for the boundary metric (``1 / max(disparity, 1e-6)``), not at the
    smallest ground-truth disparity it uses for rel and delta1.

    Arguments and errors as `moge_align`; ``fit`` is `moge_align`'s result when the caller has it
    already (the disparity fit reads every valid pixel: on an ETH3D frame it costs seconds);
    ``disparity_floor`` is the clamp (the protocol's `disparity_floor`, MoGe's 1e-6).
    """
    aligned, scale, shift = fit if fit is not None else moge_align(pred, gt, valid, output_space)
    if output_space != DISPARITY_AFFINE:
        return aligned
    return 1.0 / np.maximum(np.asarray(pred, dtype=np.float64) * scale + shift, disparity_floor)


def moge_metrics(aligned, gt, valid) -> dict[str, float]:
    """MoGe's depth metrics over the valid pixels, as fractions.

    ``abs_rel = mean(|p - g| / (g + 1e-6))``; ``delta1 = mean(max(g / p, p / g) < 1.25)``, where a
    negative ``p`` counts as an inlier and ``p = 0`` does not (quirk 1 of the module docstring).

    Args:
        aligned: aligned depth, HxW (`moge_align`).
        gt: ground-truth depth, HxW.
        valid: boolean HxW mask.

    Returns:
        ``{"abs_rel": ..., "delta1": ...}``.

    Raises:
        ValueError: mismatched shapes or no valid pixel.
    """
    aligned, gt, valid = np.asarray(aligned), np.asarray(gt), np.asarray(valid, dtype=bool)
    if not aligned.shape == gt.shape == valid.shape:
        raise ValueError(f"shapes differ: {aligned.shape}, {gt.shape}, {valid.shape}")
    if not valid.any():
        raise ValueError("no valid pixel to score")
    p, g = aligned[valid].astype(np.float64), gt[valid].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # nan (0/0) compares False: not an inlier, as in torch
        inlier = np.count_nonzero(np.maximum(g / p, p / g) < 1.25)
        err = np.subtract(p, g, out=p)
        np.abs(err, out=err)
        err /= g + 1e-6
    return {"abs_rel": float(err.mean()), "delta1": inlier / g.size}
