"""A protocol in one file: ``median-scale`` (docs/adding-a-protocol.md).

Every prediction, whatever its output space, is scaled so that its median over the scored
pixels equals the ground truth's (no shift, no clipping), then AbsRel and δ1 are computed on
those pixels. Use it with ``marigold-bench --include docs/examples rescore RUN --protocol
median-scale ...``. Nothing in the package is edited: this module-level ``PROTOCOL`` is the
whole protocol.
"""

import numpy as np

from marigold_bench.eval.protocols.base import EvaluationProtocol
from marigold_bench.output_spaces import DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE


def align(pred, depth, valid, scoring):
    """The whole map aligned as `score` scores it, with (scale, shift); pictures use it too."""
    p = np.asarray(pred, np.float64)
    if scoring.alignment == "none":
        return p, 1.0, 0.0
    scale = float(np.median(np.asarray(depth, np.float64)[valid]) / np.median(p[valid]))
    return scale * p, scale, 0.0


def score(sample_id, pred, depth, valid, scoring, device=None):
    """One sample's metrics: every key of ``metric_keys``, plus the fitted scale and shift.
    ``valid`` is already the benchmark's mask inside the crop the protocol scores."""
    aligned, scale, shift = align(pred, depth, valid, scoring)
    a, g = aligned[valid], np.asarray(depth, np.float64)[valid]
    if a.size == 0:
        raise ValueError(f"{sample_id}: no valid pixel to score")
    return {"abs_rel": float(np.mean(np.abs(a - g) / g)),
            "delta1": float(np.mean(np.maximum(a / g, g / a) < 1.25)),
            "scale": scale, "shift": shift}


MEDIAN = ("median", "depth")   # (alignment, fit space)

PROTOCOL = EvaluationProtocol(
    name="median-scale",
    source="docs/examples/median_scale.py",
    description="median scaling for every output space, no clipping, AbsRel and δ1",
    # output space -> (alignment, fit space) used when --alignment is not given
    default_alignment={DEPTH_AFFINE: MEDIAN, DEPTH_SCALE: MEDIAN, DISPARITY_AFFINE: MEDIAN, DEPTH_METRIC: MEDIAN},
    # the (alignment, fit space) pairs this protocol can do, and how (recorded in summary.json)
    realisations={MEDIAN: "scale = median(g) / median(p)", ("none", "depth"): "as predicted"},
    metric_keys=("abs_rel", "delta1"),
    align=align,
    score=score,
    clip_to_range=False,
)
