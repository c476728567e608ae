"""The ``moge-lifted`` protocol: ``moge`` for a depth model, plus point columns of its depth lifted
with the ground-truth intrinsics.

MoGe's ``compute_metrics`` scores a depth-only model (``depth_*`` / ``disparity_*`` outputs) with
depth columns only; it lifts such a model's aligned depth with the true intrinsics just for the
point clouds it dumps (``compute_metrics(vis=True)``: ``depth_map_to_point_map(pred_depth_aligned,
gt intrinsics)``), and hands the true intrinsics to a model only under ``eval_baseline.py
--oracle``. Point columns for depth models are therefore a choice of this suite, kept out of
``moge`` so that protocol stays MoGe's: this definition scores the depth exactly as ``moge`` does,
then lifts the depth *as aligned for those columns* through the sample's own intrinsics (so an
affine depth's z-shift and a disparity's inversion are resolved first, as in MoGe's dumps) and
scores the points with MoGe's point alignments and metrics. The protocol's name and its
``metric_definitions`` in ``summary.json["scoring"]`` (and so the protocol hash) say the points were
lifted; the true focal is used, so no ``fov_x`` column is reported.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from marigold_bench.eval.protocols import moge
from marigold_bench.output_spaces import (DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE, POINTS_AFFINE,
                                          POINTS_METRIC, POINTS_SCALE)

#: the point space a depth prediction's lift is scored in: what the depth is known up to carries
#: over (metric stays metric, scale stays scale); an affine depth or a disparity, aligned before
#: the lift, still gets only the affine point fit (its own scale and shift were fitted)
LIFTED_POINT_SPACE = {DEPTH_METRIC: POINTS_METRIC, DEPTH_SCALE: POINTS_SCALE, DEPTH_AFFINE: POINTS_AFFINE,
                      DISPARITY_AFFINE: POINTS_AFFINE}


def columns(output_space: str, benchmark) -> tuple:
    """``moge``'s depth columns, then the point columns of the lifted space
    (:data:`LIFTED_POINT_SPACE`: its alignment and every weaker one, metric only on a metric
    benchmark) and local points where the benchmark has segments; no ``fov_x`` (the lift uses
    the true focal)."""
    return tuple(k for k in moge.columns(LIFTED_POINT_SPACE[output_space], benchmark) if not k.startswith("fov_x"))


def score(sample_id, pred, depth, valid, scoring, device=None, item=None) -> dict:
    """``moge``'s depth record of an HxW prediction, plus the point columns of its aligned depth
    lifted with the item's intrinsics (NaN, with a ``message``, where the sample has none)."""
    from marigold_bench.eval.points import depth_to_points

    record, aligned = moge.depth_record(sample_id, pred, depth, valid, scoring)

    def lift(intrinsics):
        return depth_to_points(aligned, intrinsics)

    record.update(moge.point_record(sample_id, lift, np.asarray(depth, np.float64), valid, scoring, item,
                                    space=LIFTED_POINT_SPACE[scoring.output_space]))
    return record


PROTOCOL = dataclasses.replace(
    moge.PROTOCOL,
    name="moge-lifted",
    description="moge for depth models, plus MoGe's point metrics of the aligned depth lifted with the "
                "ground-truth intrinsics (not in MoGe's tables: its code lifts depth only for its dumps)",
    # the depth output spaces only: a point-map model is scored by moge itself
    default_alignment={space: pair for space, pair in moge.PROTOCOL.default_alignment.items()
                       if space in LIFTED_POINT_SPACE},
    score=score,
    columns=columns,
    metric_definitions="moge; points lifted from the aligned depth with the ground-truth intrinsics",
    notes=(*moge.PROTOCOL.notes[:-1],
           "points lifted from depth: the depth as aligned for rel and δ1 (affine, scale, disparity or none), "
           "times K^-1 (u, v, 1) with the sample's ground-truth intrinsics, then MoGe's point alignment of "
           "the prediction's invariance (metric: xyz shift, scale: scale, affine and disparity: scale and "
           "xyz shift) and every weaker one; local points where the benchmark has segments; no fov_x "
           "(the true focal is used); a sample without intrinsics scores depth only (its message says so)"),
)
