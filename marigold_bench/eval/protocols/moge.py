"""The ``moge`` protocol: MoGe's fits and metric definitions on the benchmark's own masks.

The algorithms (the 64x64 subsample, the exact weighted-L1 fits, the metrics) are in
`marigold_bench.eval.moge`; this file says which of them each (alignment, fit space) gets and
holds the scorer that runs them on the host (MoGe's fits work on a 64x64 subsample; a GPU would
gain nothing there).
"""

from __future__ import annotations

import numpy as np

from marigold_bench.errors import PredictionError
from marigold_bench.eval.align import fit_median_scale
from marigold_bench.eval.protocols.base import EvaluationProtocol, add_fit_columns, has_sharp_edges
from marigold_bench.output_spaces import (DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE,
                                          POINT_OUTPUT_SPACES, POINTS_AFFINE, POINTS_METRIC, POINTS_SCALE,
                                          is_point_map)

#: (alignment, fit space) -> the output space whose rule MoGe's code applies (`moge_align`);
#: ``median in depth`` is not in MoGe's code (see `align`)
MOGE_RULES = {("affine", "depth"): DEPTH_AFFINE, ("scale", "depth"): DEPTH_SCALE,
              ("affine", "disparity"): DISPARITY_AFFINE, ("none", "depth"): DEPTH_METRIC}

#: a point alignment's word in column names (``rel_point_scale``)
POINT_WORD = {POINTS_METRIC: "metric", POINTS_SCALE: "scale", POINTS_AFFINE: "affine"}

#: the point columns a record may hold, in table order
POINT_COLUMNS = (*(f"{m}_point_{POINT_WORD[a]}" for a in POINT_OUTPUT_SPACES for m in ("rel", "delta1")),
                 "rel_local", "delta1_local", "fov_x_mae", "fov_x_deviation")


def _point_alignments(output_space: str, benchmark) -> tuple:
    from marigold_bench.eval.points import aligned_spaces

    return aligned_spaces(output_space, bool(getattr(benchmark, "metric", False)))


def columns(output_space: str, benchmark) -> tuple:
    """The metric columns of ``output_space`` on ``benchmark``: depth's ``abs_rel`` and ``delta1``
    (of a point map: of its z), and for a point map MoGe's point columns: ``rel_point_<a>`` /
    ``delta1_point_<a>`` per alignment it gets (its own and every weaker one; metric only on a
    metric benchmark), ``rel_local`` / ``delta1_local`` where the benchmark has segments, and
    ``fov_x_mae`` / ``fov_x_deviation`` from the focal read off the points (of affine points
    with their z-shift, as MoGe's ``recover_focal_shift`` does)."""
    keys = ["abs_rel", "delta1"]
    if not is_point_map(output_space):
        return tuple(keys)
    for alignment in _point_alignments(output_space, benchmark):
        keys += [f"rel_point_{POINT_WORD[alignment]}", f"delta1_point_{POINT_WORD[alignment]}"]
    if getattr(benchmark, "segmentation", False):
        keys += ["rel_local", "delta1_local"]
    keys += ["fov_x_mae", "fov_x_deviation"]
    return tuple(keys)


def _inputs(sample_id, pred, depth, valid):
    if not np.isfinite(pred[valid]).all():
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    if not valid.any():
        raise ValueError("no valid pixels to score")
    return np.asarray(pred, np.float64), np.asarray(depth, np.float64)


def _fit(pred64, depth64, valid, scoring):
    """MoGe's alignment of the float64 maps: ``(aligned, scale, shift)``."""
    from marigold_bench.eval.moge import moge_align

    key = (scoring.alignment, scoring.fit_space)
    if key in MOGE_RULES:
        return moge_align(pred64, depth64, valid, MOGE_RULES[key])
    if key == ("median", "depth"):
        scale = float(fit_median_scale(pred64, depth64, valid))
        return scale * pred64, scale, 0.0
    # resolve_scoring refuses these; a hand-made Scoring might not
    raise ValueError(f"protocol moge has no {scoring.alignment} alignment in {scoring.fit_space} space")


def align(pred, depth, valid, scoring):
    """The whole map aligned as MoGe scores rel and δ1 (no clipping): ``(aligned, scale, shift)``;
    of a point map (3xHxW), its z."""
    valid = np.asarray(valid, dtype=bool)
    if is_point_map(scoring.output_space) and np.ndim(pred) == 3:
        pred = np.asarray(pred)[2]
    pred64, depth64 = _inputs("prediction", np.asarray(pred), np.asarray(depth), valid)
    return _fit(pred64, depth64, valid, scoring)


def point_record(sample_id, points, depth, valid, scoring, item, space: str | None = None) -> dict:
    """MoGe's point columns of one point map (NaN, with a ``message``, where the sample has no
    intrinsics: its depth columns still count).

    Args:
        points: 3xHxW points; or a callable ``intrinsics -> HxWx3 points`` (a depth map lifted
            with the sample's own intrinsics, which exist only once they are checked here).
        space: the point space the points are scored in; None: the scoring's output space.
    """
    from marigold_bench.eval.points import (MissingIntrinsicsError, focal_shift_from_points, intrinsics_from_points,
                                            moge_point_scores, require_intrinsics)

    keys = [k for k in scoring.metric_keys if k in POINT_COLUMNS]
    record = dict.fromkeys(keys, float("nan"))
    lift = points if callable(points) else None
    if lift is None:
        points = np.moveaxis(np.asarray(points, np.float64), 0, -1)
        if not np.isfinite(points[valid]).all():
            raise PredictionError(f"{sample_id}: point map contains NaN or inf")
    item = item or {}
    try:
        intrinsics = require_intrinsics(item.get("intrinsics"), sample_id)
    except MissingIntrinsicsError as exc:
        return {**record, "message": f"point metrics not scored: {exc}"}
    if lift is not None:
        points = lift(intrinsics)
    own = None
    if "fov_x_mae" in keys:
        try:
            # affine points hide their z-shift: it is solved for with the focal
            own = (focal_shift_from_points(points, valid)[0] if (space or scoring.output_space) == POINTS_AFFINE
                   else intrinsics_from_points(points, valid))
        except ValueError:  # no point off the optical axis in front of the camera: no focal, no fov
            pass
    segments = "rel_local" in keys and item.get("segmentation") is not None
    scores = moge_point_scores(
        points, depth, valid, intrinsics, space or scoring.output_space,
        bool(getattr(scoring.benchmark, "metric", False)),
        segmentation=item.get("segmentation") if segments else None, labels=item.get("labels") if segments else None,
        pred_intrinsics=own, sample_id=sample_id)
    for alignment, word in POINT_WORD.items():
        if alignment in scores:
            record[f"rel_point_{word}"] = scores[alignment]["rel"]
            record[f"delta1_point_{word}"] = scores[alignment]["delta1"]
    if scores.get("local_points"):  # no segment qualified: NaN, left out of the mean as MoGe does
        record.update(rel_local=scores["local_points"]["rel"], delta1_local=scores["local_points"]["delta1"])
    if "fov_x" in scores:
        record.update(fov_x_mae=scores["fov_x"]["mae"], fov_x_deviation=scores["fov_x"]["deviation"])
    return {k: v for k, v in record.items() if k in keys or k == "message"}


def depth_record(sample_id, pred, depth, valid, scoring) -> tuple[dict, np.ndarray]:
    """MoGe's depth columns of one HxW prediction (rel, δ1, the fit, boundary F1 where asked)
    and the whole map aligned as they were scored (float64)."""
    from marigold_bench.eval.moge import moge_boundary_depth, moge_metrics

    pred64, depth64 = _inputs(sample_id, pred, depth, valid)
    aligned, scale, shift = _fit(pred64, depth64, valid, scoring)
    record = {k: float(v) for k, v in moge_metrics(aligned, depth64, valid).items()}
    add_fit_columns(record, scoring, float(scale), float(shift), pred, valid)
    if scoring.boundary_f1_radius:
        from marigold_bench.eval.boundary import boundary_f1

        # MoGe's boundary metric reads a disparity fit with its own clamp (see moge_boundary_depth)
        key = (scoring.alignment, scoring.fit_space)
        edges = aligned if key not in MOGE_RULES else moge_boundary_depth(
            pred64, depth64, valid, MOGE_RULES[key], fit=(aligned, scale, shift),
            disparity_floor=scoring.disparity_floor)
        record["boundary_f1"] = float(boundary_f1(edges, depth64, valid, radius=scoring.boundary_f1_radius))
    return record, aligned


def score(sample_id, pred, depth, valid, scoring, device=None, item=None) -> dict:
    """MoGe's alignment and metrics on the whole map (host, float64; ``device`` is not used).

    A point map (3xHxW, a point output space) is scored as MoGe scores its model's output: its z
    as depth under the scoring's alignment, its points under every point alignment of
    :func:`columns`, with the item's intrinsics (and segments, for local points)."""
    points = None
    if is_point_map(scoring.output_space):
        points, pred = pred, np.asarray(pred)[2]
    record, _ = depth_record(sample_id, pred, depth, valid, scoring)
    if points is not None:
        record.update(point_record(sample_id, points, np.asarray(depth, np.float64), valid, scoring, item))
    return record


PROTOCOL = EvaluationProtocol(
    name="moge",
    source="Wang et al., MoGe, CVPR 2025; https://github.com/microsoft/MoGe "
           "(moge/test/metrics.py, moge/utils/alignment.py; utils3d 3fab839 masked_nearest_resize)",
    description="exact weighted-L1 fits (w = 1/g) on a 64x64 masked-nearest subsample; disparity "
                "by full-resolution least squares; no clipping; rel and δ1 as MoGe defines them",
    default_alignment={
        DEPTH_AFFINE: ("affine", "depth"),
        DISPARITY_AFFINE: ("affine", "disparity"),
        DEPTH_SCALE: ("scale", "depth"),
        DEPTH_METRIC: ("none", "depth"),
        # a point map: its z as the depth of the same invariance (as MoGe's models report it)
        POINTS_AFFINE: ("affine", "depth"),
        POINTS_SCALE: ("scale", "depth"),
        POINTS_METRIC: ("none", "depth"),
    },
    realisations={
        ("affine", "depth"): "argmin sum w|a p + b - g| by MoGe's two-point anchor search (its result, also "
                             "where ties in the data make it miss the true L1 optimum), 64x64 subsample, w = 1/g",
        ("affine", "disparity"): "least squares of p onto 1/g on all valid pixels, "
                                 "depth = 1 / max(disparity, 1 / max(g))",
        ("scale", "depth"): "argmin sum w|a p - g| exactly (weighted median), 64x64 subsample, w = 1/g",
        ("median", "depth"): "median(g) / median(p) on all valid pixels (not in MoGe's code; "
                             "Monodepth2's rule under MoGe's metrics)",
        ("none", "depth"): "none",
    },
    metric_keys=("abs_rel", "delta1"),
    align=align,
    score=score,
    wants_item=True,
    columns=columns,
    fit_resolution="64x64 masked-nearest subsample",
    subsampled_fits=frozenset({("affine", "depth"), ("scale", "depth")}),
    clip_to_range=False,
    # rel and δ1 invert at 1 / max(g) (moge_align); the boundary metric clamps at 1e-6
    disparity_floor=1e-6,
    crop=None,
    metric_definitions="moge",
    boundary_f1_radius=1,
    # MoGe reports boundary F1 only where the ground truth has sharp edges (its
    # has_sharp_boundary: iBims-1, Sintel, Spring, HAMMER): the benchmark spec's sharp_edges
    boundary_f1_on=has_sharp_edges,
    notes=("rel = mean(|p - g| / (g + 1e-6)); δ1 = mean(max(g/p, p/g) < 1.25), so a negative "
           "aligned depth makes both ratios negative and counts as an inlier",
           "no clipping to the dataset's range",
           "boundary F1 (radius 1) on benchmarks whose ground truth has sharp edges "
           "(their spec's sharp_edges)",
           "point maps (points_* output spaces, 3xHxW, OpenCV axes): z scored as depth; points against the "
           "ground truth lifted with the item's intrinsics under MoGe's point alignments; local points "
           "where the benchmark has segments; fov_x from the focal read off the points (affine "
           "points: focal and z-shift solved together, as MoGe's recover_focal_shift); a sample without intrinsics scores depth only (its message says so)"),
)
