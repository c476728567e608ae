"""Point maps: lifting depth with intrinsics, and MoGe's point alignments and point metrics.

Pure numpy (float64) functions that reproduce the point-map part of MoGe's ``compute_metrics``
(``moge/test/metrics.py``, ``moge/utils/alignment.py``; microsoft/MoGe at 0744441):

* Points are camera-space, OpenCV axes; a normalised intrinsics matrix maps ``(x/z, y/z, 1)``
  to ``(u, v, 1)`` with ``u, v`` in [0, 1] over the image (pixel centres at ``(j + 0.5) / W``).
* **Alignment** per output space, fitted on the 64x64 masked-nearest subsample of the valid
  pixels (`marigold_bench.eval.moge.masked_nearest_subsample`) with weights ``1 / ‖g‖``:
  ``points_metric``: an xyz shift (weighted median per axis); ``points_scale_invariant``: one
  scale, the weighted-L1 optimum over all three coordinates; ``points_affine_invariant``: scale
  and xyz shift by MoGe's anchor search (`align_points_scale_xyz_shift`).
  A prediction is scored in its own space and every weaker one (metric -> scale -> affine), and
  metric points only on a metric benchmark, as MoGe does.
* **Metrics** over all valid pixels: ``rel = mean(‖p - g‖ / (‖g‖ + 1e-6))`` and
  ``delta1 = mean(‖p - g‖ < 0.25 min(‖g‖, ‖p‖))``.
* **Local points** (`local_point_metrics`): per segment MoGe keeps (see
  `marigold_bench.data.moge_warp.select_segments`) with at least 10 subsample cells, scale and
  xyz shift fitted on the segment's cells with equal weights, scored over the segment's valid
  pixels relative to its diameter (the largest extent of its ground-truth points along x, y or
  z): ``rel = mean(‖p - g‖ / diameter)``, ``delta1 = mean(‖p - g‖ < 0.25 diameter)``; the mean
  over segments.
* **fov_x** (`fov_x_error`): ``2 atan(0.5 / fx)`` of predicted and true intrinsics, in degrees:
  the absolute (``mae``) and signed (``deviation``) difference; a model's focal is read off its
  points (`intrinsics_from_points`; affine points with their z-shift: `focal_shift_from_points`).

MoGe runs in float32; this module in float64, so numbers agree to float32 round-off.
"""

from __future__ import annotations

import math

import numpy as np

from marigold_bench.errors import BenchError
from marigold_bench.eval.moge import masked_nearest_subsample
from marigold_bench.output_spaces import (DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, POINT_OUTPUT_SPACES, POINTS_AFFINE,
                                          POINTS_METRIC, POINTS_SCALE)

#: MoGe's guard against dividing by a vanishing coordinate in its L1 solver
EPS = 1e-7
#: segments with fewer subsample cells than this are not scored by local-point metrics
MIN_SEGMENT_CELLS = 10

# anchors solved at a time by the affine search: keeps the (anchors, 3N) arrays near 25 MB
_ELEMENTS_PER_CHUNK = 1 << 21


class MissingIntrinsicsError(BenchError):
    """Point metrics were asked of a sample without intrinsics (its ``meta.json`` has none)."""


def require_intrinsics(intrinsics, sample_id: str = "sample") -> np.ndarray:
    """``intrinsics`` as a float64 3x3 array.

    Raises:
        MissingIntrinsicsError: it is None (depth metrics can still score the sample).
    """
    if intrinsics is None:
        raise MissingIntrinsicsError(f"{sample_id}: no intrinsics (its meta.json has none), so no point "
                                     "map can be made or scored; depth metrics are unaffected")
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"{sample_id}: intrinsics must be 3x3, got shape {k.shape}")
    return k


def depth_to_points(depth, intrinsics) -> np.ndarray:
    """Lift a z-depth map to camera-space points through normalised intrinsics.

    Pixel ``(i, j)`` of an HxW map has normalised coordinates ``((j + 0.5) / W, (i + 0.5) / H)``;
    its point is ``depth * K^-1 (u, v, 1)``.

    Args:
        depth: HxW z-depth.
        intrinsics: 3x3 normalised intrinsics (None raises :class:`MissingIntrinsicsError`).

    Returns:
        float64 HxWx3 points.
    """
    k = require_intrinsics(intrinsics)
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    uv1 = np.stack([np.broadcast_to(u[None, :], (h, w)), np.broadcast_to(v[:, None], (h, w)),
                    np.ones((h, w))], axis=-1)
    return (uv1 @ np.linalg.inv(k).T) * depth[..., None]


#: the point space a depth prediction lifted with the true intrinsics is scored in: what the
#: depth is known up to carries over (an affine depth's z-shift is covered by an xyz shift).
#: Disparity has no entry: it must be turned into depth by a depth alignment first.
LIFTED_SPACE = {DEPTH_METRIC: POINTS_METRIC, DEPTH_SCALE: POINTS_SCALE, DEPTH_AFFINE: POINTS_AFFINE}


def lift_depth_prediction(pred_depth, intrinsics, output_space: str) -> tuple[np.ndarray, str]:
    """A depth prediction as a point map through the ground truth's intrinsics, and the point
    space to score it in (:data:`LIFTED_SPACE`). MoGe itself scores depth predictions with depth
    metrics only; a record that uses this should say the points were lifted with the true
    intrinsics.

    Raises:
        MissingIntrinsicsError: no intrinsics.
        ValueError: ``output_space`` has no point counterpart (disparity, or already points).
    """
    if output_space not in LIFTED_SPACE:
        raise ValueError(f"a {output_space} prediction cannot be lifted to points as it is; "
                         f"liftable: {', '.join(LIFTED_SPACE)}")
    return depth_to_points(pred_depth, intrinsics), LIFTED_SPACE[output_space]


# --- MoGe's weighted-L1 solvers ---------------------------------------------------------------


def l1_scale_rows(x, y, w):
    """``argmin_a sum_i w_i |a x_i - y_i|`` for each row of (b, n) arrays, as MoGe solves it.

    Both sides are multiplied by ``sign(x)`` (a sample with ``x = 0`` drops out), the ratios
    ``y / max(x, 1e-7)`` are sorted, and the answer is the first ratio where the loss's slope
    ``2 cumsum(w x) - sum(w x)`` is no longer negative (a weighted median).

    Returns:
        ``(a, loss, index)`` per row: the scale, the loss at it, and the sample it came from.
    """
    x, y, w = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, y, w)))
    sign = np.sign(x)
    x, y = x * sign, y * sign
    ratio = y / np.maximum(x, EPS)
    # an unstable sort, as MoGe's torch.sort: among equal ratios either sample gives the same
    # scale (and the fit recomputes it from the pair), and it is four times faster than stable
    order = np.argsort(ratio, axis=-1)
    wx = np.take_along_axis(x * w, order, axis=-1)
    slope = 2 * np.cumsum(wx, axis=-1) - wx.sum(axis=-1, keepdims=True)
    first = np.minimum((slope < 0).sum(axis=-1), x.shape[-1] - 1)[..., None]
    index = np.take_along_axis(order, first, axis=-1)
    a = np.take_along_axis(ratio, index, axis=-1)
    loss = (w * np.abs(a * x - y)).sum(axis=-1)
    return a[..., 0], loss, index[..., 0]


def _check(p, g, w):
    p, g = np.asarray(p, dtype=np.float64), np.asarray(g, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape != g.shape or w.shape != (p.shape[0],):
        raise ValueError(f"expected Nx3 points and N weights, got {p.shape}, {g.shape}, {w.shape}")
    if p.shape[0] == 0:
        raise ValueError("no points to align")
    return p, g, w


def align_points_scale(p, g, w) -> float:
    """MoGe's ``points_scale_invariant`` fit: ``argmin_s sum_i w_i ‖s p_i - g_i‖_1``.

    Args:
        p / g: Nx3 predicted and true points; w: N non-negative weights (MoGe: ``1 / ‖g‖``).
    """
    p, g, w = _check(p, g, w)
    a, _, _ = l1_scale_rows(p.ravel()[None], g.ravel()[None], np.repeat(w, 3)[None])
    return float(a[0])


def align_points_xyz_shift(p, g, w) -> np.ndarray:
    """MoGe's ``points_metric`` fit: ``argmin_t sum_i w_i ‖p_i + t - g_i‖_1``, per axis the
    weighted median of ``g - p``. Returns the shift (3,)."""
    p, g, w = _check(p, g, w)
    a, _, _ = l1_scale_rows(np.ones((3, p.shape[0])), (g - p).T, w[None, :])
    return a


def align_points_scale_xyz_shift(p, g, w) -> tuple[float, np.ndarray]:
    """MoGe's ``points_affine_invariant`` fit: scale ``s`` and shift ``t`` with
    ``s p + t ≈ g`` in weighted L1, by its anchor search.

    Every point ``k`` with ``w_k > 0`` is tried as an anchor that the fit passes through exactly:
    the scale problem is solved on all coordinates of ``p - p_k`` against ``g - g_k``. The anchor
    with the least loss wins (ties: the last), and the scale is recomputed from the winning
    coordinate pair, ``(g_2 - g_1) / (p_2 - p_1)`` (divided by 1 if the two are equal), with
    ``t = g_k - s p_k``. (This is MoGe's answer, not always the true L1 optimum: the shift is
    restricted to pass through one point in all three axes.)

    Returns:
        ``(scale, shift (3,))``.
    """
    p, g, w = _check(p, g, w)
    anchors = np.flatnonzero(w > 0)
    if anchors.size == 0:
        raise ValueError("no point with a positive weight to anchor the fit")
    pf, gf, wf = p.ravel(), g.ravel(), np.repeat(w, 3)
    losses, partners = [], []
    step = max(1, _ELEMENTS_PER_CHUNK // pf.size)
    for s in range(0, anchors.size, step):
        k = anchors[s:s + step]
        _, loss, index = l1_scale_rows((p[None] - p[k, None]).reshape(k.size, -1),
                                       (g[None] - g[k, None]).reshape(k.size, -1), wf[None])
        losses.append(loss)
        partners.append(index)
    loss, partner = np.concatenate(losses), np.concatenate(partners)
    best = loss.size - 1 - int(np.argmin(loss[::-1]))  # the last of equal minima
    anchor = anchors[best]
    i2 = int(partner[best])
    i1 = anchor * 3 + i2 % 3
    dp = pf[i2] - pf[i1]
    scale = (gf[i2] - gf[i1]) / (dp if dp != 0 else 1.0)
    return float(scale), g[anchor] - scale * p[anchor]


# --- metrics ---------------------------------------------------------------------------------


def rel_point(p, g) -> float:
    """``mean(‖p - g‖ / (‖g‖ + 1e-6))`` over Nx3 points."""
    p, g = np.asarray(p, dtype=np.float64), np.asarray(g, dtype=np.float64)
    return float((np.linalg.norm(p - g, axis=-1) / (np.linalg.norm(g, axis=-1) + 1e-6)).mean())


def delta1_point(p, g) -> float:
    """``mean(‖p - g‖ < 0.25 min(‖g‖, ‖p‖))`` over Nx3 points."""
    p, g = np.asarray(p, dtype=np.float64), np.asarray(g, dtype=np.float64)
    err = np.linalg.norm(p - g, axis=-1)
    return float((err < 0.25 * np.minimum(np.linalg.norm(g, axis=-1), np.linalg.norm(p, axis=-1))).mean())


def _check_maps(pred_points, gt_points, mask):
    pred, gt = np.asarray(pred_points, dtype=np.float64), np.asarray(gt_points, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3 or mask.shape != pred.shape[:2]:
        raise ValueError(f"expected HxWx3 point maps and an HxW mask, got {pred.shape}, {gt.shape}, {mask.shape}")
    if not mask.any():
        raise ValueError("no valid pixel to score")
    return pred, gt, mask


def aligned_spaces(output_space: str, is_metric: bool) -> tuple[str, ...]:
    """The alignments MoGe scores a prediction of ``output_space`` under: its own and every weaker
    one, metric points only where the benchmark is metric."""
    if output_space not in POINT_OUTPUT_SPACES:
        raise ValueError(f"{output_space!r} is not a point-map output space ({', '.join(POINT_OUTPUT_SPACES)})")
    chain = POINT_OUTPUT_SPACES[POINT_OUTPUT_SPACES.index(output_space):]  # metric, scale, affine
    return tuple(s for s in chain if s != POINTS_METRIC or is_metric)


def align_points(pred_points, gt_points, mask, alignment: str, subsample=None) -> np.ndarray:
    """The whole predicted point map aligned as MoGe aligns it under ``alignment`` (a point
    output space), fitted on the 64x64 subsample of ``mask`` with weights ``1 / ‖g‖``.

    Args:
        subsample: ``(rows, cols)`` of the subsample when the caller has it already.
    """
    pred, gt, mask = _check_maps(pred_points, gt_points, mask)
    rows, cols = subsample if subsample is not None else masked_nearest_subsample(mask)
    p, g = pred[rows, cols], gt[rows, cols]
    w = 1.0 / np.linalg.norm(g, axis=-1)
    if alignment == POINTS_METRIC:
        return pred + align_points_xyz_shift(p, g, w)
    if alignment == POINTS_SCALE:
        return pred * align_points_scale(p, g, w)
    if alignment == POINTS_AFFINE:
        scale, shift = align_points_scale_xyz_shift(p, g, w)
        return pred * scale + shift
    raise ValueError(f"unknown point alignment {alignment!r}; known: {', '.join(POINT_OUTPUT_SPACES)}")


def point_metrics(pred_points, gt_points, mask, output_space: str, is_metric: bool) -> dict:
    """MoGe's point metrics of one prediction: ``{alignment: {"rel": ..., "delta1": ...}}`` for
    each of :func:`aligned_spaces` (fractions, not percent)."""
    pred, gt, mask = _check_maps(pred_points, gt_points, mask)
    subsample = masked_nearest_subsample(mask)
    out = {}
    for alignment in aligned_spaces(output_space, is_metric):
        aligned = align_points(pred, gt, mask, alignment, subsample)
        out[alignment] = {"rel": rel_point(aligned[mask], gt[mask]), "delta1": delta1_point(aligned[mask], gt[mask])}
    return out


def local_point_metrics(pred_points, gt_points, mask, segmentation, labels: dict) -> dict:
    """MoGe's local-point metrics: ``{"rel": ..., "delta1": ...}``, the mean over the segments of
    ``labels`` ({label: id}, MoGe's kept segments) with at least 10 subsample cells; ``{}`` when
    no segment qualifies (MoGe's average then leaves the sample out)."""
    pred, gt, mask = _check_maps(pred_points, gt_points, mask)
    segmentation = np.asarray(segmentation)
    if segmentation.shape != mask.shape:
        raise ValueError(f"segmentation {segmentation.shape} and mask {mask.shape} differ in size")
    rows, cols = masked_nearest_subsample(mask)
    seg_cells = segmentation[rows, cols]
    rel, delta1 = [], []
    for seg_id in labels.values():
        cells = seg_cells == seg_id
        if np.count_nonzero(cells) < MIN_SEGMENT_CELLS:
            continue
        pixels = (segmentation == seg_id) & mask
        p, g = pred[pixels], gt[pixels]
        diameter = float((g.max(axis=0) - g.min(axis=0)).max())
        p_lr, g_lr = pred[rows[cells], cols[cells]], gt[rows[cells], cols[cells]]
        # MoGe weighs every cell 1 / diameter: equal weights (the scale of w moves no optimum)
        scale, shift = align_points_scale_xyz_shift(p_lr, g_lr, np.full(p_lr.shape[0], 1.0 / diameter))
        err = np.linalg.norm(p * scale + shift - g, axis=-1)
        rel.append(float((err / diameter).mean()))
        delta1.append(float((err < 0.25 * diameter).mean()))
    if not rel:
        return {}
    return {"rel": sum(rel) / len(rel), "delta1": sum(delta1) / len(delta1)}


def fov_x_error(pred_intrinsics, gt_intrinsics) -> dict:
    """MoGe's ``fov_x``: ``{"mae": |Δ|, "deviation": Δ}`` in degrees, ``Δ`` the predicted minus the
    true horizontal field of view ``2 atan(0.5 / fx)`` of normalised intrinsics."""
    pred = require_intrinsics(pred_intrinsics, "prediction")
    gt = require_intrinsics(gt_intrinsics, "ground truth")
    delta = math.degrees(2 * math.atan(0.5 / pred[0, 0]) - 2 * math.atan(0.5 / gt[0, 0]))
    return {"mae": abs(delta), "deviation": delta}


def _view_plane_samples(points, mask):
    """The 64x64 masked-nearest subsample of ``mask``: its points (n, 3) and their view-plane
    coordinates ``uv`` (n, 2) as MoGe spans them (``±W/diag, ±H/diag`` at the image edges), with
    the image's diagonal and size."""
    points, mask = np.asarray(points, dtype=np.float64), np.asarray(mask, dtype=bool)
    h, w = mask.shape
    diagonal = math.hypot(h, w)
    rows, cols = masked_nearest_subsample(mask)
    uv = np.stack([(2 * (cols + 0.5) / w - 1) * w / diagonal, (2 * (rows + 0.5) / h - 1) * h / diagonal], axis=-1)
    return points[rows, cols], uv, diagonal, (h, w)


def _focal_of(proj, uv) -> float:
    """The least-squares ``f`` of ``f proj ≈ uv`` (a ValueError when every ``proj`` is 0)."""
    spread = np.square(proj).sum()
    if not spread > 0:
        raise ValueError("every point lies on the optical axis: no focal length can be read off them")
    return float((proj * uv).sum() / spread)


def _normalised_intrinsics(focal: float, diagonal: float, h: int, w: int) -> np.ndarray:
    return np.array([[focal * diagonal / (2 * w), 0.0, 0.5], [0.0, focal * diagonal / (2 * h), 0.5],
                     [0.0, 0.0, 1.0]])


def focal_shift_from_points(points, mask, max_steps: int = 100) -> tuple[np.ndarray, float]:
    """Normalised intrinsics and the z-shift of an affine point map (``points_affine_invariant``),
    as MoGe recovers them (``recover_focal_shift``): on the 64x64 masked-nearest subsample, the
    shift ``t`` and focal ``f`` minimising ``sum ‖f (x, y) / (z + t) - uv‖²`` (``uv`` as in
    :func:`intrinsics_from_points`; principal point at the centre, square pixels).

    For a fixed ``t`` the best ``f`` is linear least squares, so only ``t`` is searched: by
    Gauss-Newton on the residual with ``f(t)`` substituted (variable projection), from ``t = 0``,
    halving a step that does not lower the cost or puts a point behind the camera (``z + t <= 0``);
    where no step lowers it (a fronto-parallel plane, whose shift cannot be told from its focal)
    the shift stays where it started.
    MoGe solves the same problem with SciPy's Levenberg-Marquardt at ``ftol = 1e-3``, so its
    shift can stop short of the optimum that this one iterates to.

    Returns:
        ``(intrinsics 3x3 float64, shift)``: add ``shift`` to z to put the points in camera space
        (up to scale).

    Raises:
        ValueError: fewer than two pixels, no point in front of the camera at ``t = 0``, or all on
            the axis.
    """
    p, uv, diagonal, (h, w) = _view_plane_samples(points, mask)
    if p.shape[0] < 2:
        raise ValueError("fewer than two pixels to recover a focal length and shift from")
    xy, z, uv = p[:, :2], p[:, 2], uv

    def cost_at(t):
        proj = xy / (z + t)[:, None]
        focal = _focal_of(proj, uv)
        return float(np.square(focal * proj - uv).sum()), focal, proj

    if not (z > 0).any():
        raise ValueError("no pixel in front of the camera to recover a focal length from")
    t = 0.0 if (z > 0).all() else float(1e-6 - z.min())  # start with every point in front
    cost, focal, proj = cost_at(t)
    for _ in range(max_steps):
        # d proj / dt = -proj / (z + t); with f(t) = <proj, uv> / <proj, proj>, the residual
        # r = f proj - uv has dr/dt = f' proj + f dproj, f' = (<dproj, uv> - 2 f <proj, dproj>) / <proj, proj>
        dproj = -proj / (z + t)[:, None]
        df = ((dproj * uv).sum() - 2 * focal * (proj * dproj).sum()) / np.square(proj).sum()
        jac = df * proj + focal * dproj
        residual = focal * proj - uv
        jj = float(np.square(jac).sum())
        if not jj > 0:
            break
        step = -float((jac * residual).sum()) / jj
        accepted = False
        while abs(step) > 1e-15 * (1 + abs(t)):
            candidate = t + step
            if (z + candidate > 0).all():
                new_cost, new_focal, new_proj = cost_at(candidate)
                # a real decrease only: where the shift is not identifiable (a fronto-parallel
                # plane: every f / (z + t) alike) round-off must not walk it away from 0
                if new_cost < cost * (1 - 1e-12):
                    accepted = True
                    break
            step /= 2
        if not accepted:
            break
        t, cost, focal, proj = candidate, new_cost, new_focal, new_proj
        if abs(step) <= 1e-12 * (1 + abs(t)):
            break
    return _normalised_intrinsics(focal, diagonal, h, w), t


def intrinsics_from_points(points, mask) -> np.ndarray:
    """Normalised intrinsics of a point map without a shift (``points_metric`` or
    ``points_scale_invariant``), as MoGe's models recover them from their points
    (``moge/utils/geometry_numpy.py``: ``solve_optimal_focal_shift``) with the z-shift held at 0:
    on the 64x64 masked-nearest subsample of ``mask``, the least-squares focal ``f`` of
    ``f (x/z, y/z) ≈ uv`` in MoGe's view-plane coordinates (``uv`` spans ``±W/diag, ±H/diag``),
    principal point at the centre, square pixels.

    Args:
        points: HxWx3 points; mask: HxW pixels to use (the scored pixels).

    Returns:
        float64 3x3 normalised intrinsics (``fx = f diag / (2 W)``, ``fy = f diag / (2 H)``).

    Raises:
        ValueError: no usable pixel (none with ``z > 0`` on the subsample, or all on the axis).
    """
    p, uv, diagonal, (h, w) = _view_plane_samples(points, mask)
    keep = p[:, 2] > 0
    if not keep.any():
        raise ValueError("no pixel in front of the camera to recover a focal length from")
    focal = _focal_of(p[keep, :2] / p[keep, 2:], uv[keep])
    return _normalised_intrinsics(focal, diagonal, h, w)


def moge_point_scores(pred_points, gt_depth, mask, intrinsics, output_space: str, is_metric: bool,
                      segmentation=None, labels=None, pred_intrinsics=None, sample_id: str = "sample") -> dict:
    """Every point score MoGe's ``compute_metrics`` gives one point-map prediction.

    Args:
        pred_points: HxWx3 predicted points (``output_space`` says up to what).
        gt_depth / mask: the item's ``depth`` and ``mask``.
        intrinsics: the item's normalised intrinsics (None: :class:`MissingIntrinsicsError`).
        output_space: a point output space.
        is_metric: whether the benchmark's depth is metric (its spec's ``metric``).
        segmentation / labels: the item's segments, for local points (None: not scored).
        pred_intrinsics: the model's normalised intrinsics, for ``fov_x`` (None: not scored).

    Returns:
        ``{alignment: {"rel", "delta1"}, ..., "local_points": {...}, "fov_x": {...}}`` as MoGe
        nests them (``local_points`` only with segments; ``fov_x`` only with predicted intrinsics).
    """
    gt_points = depth_to_points(gt_depth, require_intrinsics(intrinsics, sample_id))
    scores = point_metrics(pred_points, gt_points, mask, output_space, is_metric)
    if segmentation is not None and labels is not None:
        scores["local_points"] = local_point_metrics(pred_points, gt_points, mask, segmentation, labels)
    if pred_intrinsics is not None:
        scores["fov_x"] = fov_x_error(pred_intrinsics, intrinsics)
    return scores


def flatten_scores(scores: dict) -> dict:
    """``{"points_affine_invariant": {"rel": x}}`` -> ``{"points_affine_invariant/rel": x}`` (the
    column names of MoGe's tables)."""
    flat = {}
    for group, values in scores.items():
        if isinstance(values, dict):
            flat.update({f"{group}/{key}": value for key, value in values.items()})
        else:
            flat[group] = values
    return flat


def mean_of_scores(records) -> dict:
    """MoGe's average (``key_average``): per nested key, the mean of the records that have it and
    whose value is not NaN (NaN when none has it). Used per benchmark over samples, then over
    benchmarks for the pack's mean."""
    flat = [flatten_scores(r) for r in records]
    keys = sorted({k for r in flat for k in r})
    out: dict = {}
    for key in keys:
        values = [r[key] for r in flat if r.get(key) is not None and not math.isnan(r[key])]
        value = sum(values) / len(values) if values else float("nan")
        group, _, leaf = key.partition("/")
        if leaf:
            out.setdefault(group, {})[leaf] = value
        else:
            out[group] = value
    return out


__all__ = ["EPS", "LIFTED_SPACE", "MIN_SEGMENT_CELLS", "MissingIntrinsicsError", "align_points", "align_points_scale",
           "align_points_scale_xyz_shift", "align_points_xyz_shift", "aligned_spaces", "delta1_point",
           "depth_to_points", "flatten_scores", "focal_shift_from_points", "fov_x_error", "intrinsics_from_points", "l1_scale_rows", "lift_depth_prediction",
           "local_point_metrics",
           "mean_of_scores", "moge_point_scores", "point_metrics", "rel_point", "require_intrinsics"]
