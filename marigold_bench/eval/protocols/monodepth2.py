"""The ``monodepth2`` protocol: Monodepth2's KITTI evaluation (``evaluate_depth.py``).

Read from Godard et al.'s Monodepth2 as mattpoggi/mono-uncertainty carries it (``evaluate.py``):
ground truth scored where ``1e-3 < g < 80`` inside Garg's crop, the prediction median-scaled
(``median(g) / median(p)`` over those pixels; its ``--disable_median_scaling`` is ``--alignment
none``), clipped to ``[1e-3, 80]``, seven metrics per image, then the mean over images. The
range and crop are the protocol's, on every benchmark (it was written for KITTI's Eigen split).
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.crops import KITTI_GARG
from marigold_bench.eval.metric_depth import monodepth2_metrics
from marigold_bench.eval.metric_scoring import MetricRow, fitted, scored_mask
from marigold_bench.eval.protocols.base import EvaluationProtocol, add_fit_columns
from marigold_bench.output_spaces import DEPTH_METRIC, DEPTH_SCALE

METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")

#: MIN_DEPTH, MAX_DEPTH and the Garg crop of evaluate_depth.py
ROW = MetricRow(KITTI_GARG, 1e-3, 80.0, "evaluate_depth.py: MIN_DEPTH 1e-3, MAX_DEPTH 80, Garg crop")


def _prepare(sample_id, pred, depth, valid, scoring):
    keep = scored_mask(np.asarray(valid, bool), depth, ROW, scoring)
    if not keep.any():
        raise ValueError("no valid pixels to score")
    aligned, scale, shift = fitted(sample_id, pred, depth, keep, scoring)
    return keep, np.clip(aligned, ROW.min_depth, ROW.max_depth), scale, shift


def align(pred, depth, valid, scoring):
    """The whole map as Monodepth2 scores it: median-scaled (by default) and clipped."""
    _, aligned, scale, shift = _prepare("prediction", pred, depth, valid, scoring)
    return aligned, scale, shift


def score(sample_id, pred, depth, valid, scoring, device=None) -> dict:
    """Monodepth2's metrics of one prediction (host, float64; ``device`` unused)."""
    keep, aligned, scale, shift = _prepare(sample_id, pred, depth, valid, scoring)
    record = monodepth2_metrics(aligned[keep], np.asarray(depth, np.float64)[keep])
    return add_fit_columns(record, scoring, scale, shift, pred, keep)


PROTOCOL = EvaluationProtocol(
    name="monodepth2",
    source="Godard et al., Monodepth2, ICCV 2019; evaluate_depth.py (as in "
           "https://github.com/mattpoggi/mono-uncertainty evaluate.py)",
    description="median scaling, Garg crop, 1e-3 < g < 80, prediction clipped to [1e-3, 80], seven metrics",
    default_alignment={
        DEPTH_SCALE: ("median", "depth"),
        DEPTH_METRIC: ("median", "depth"),          # the code median-scales unless told not to
    },
    realisations={
        ("median", "depth"): "median(g) / median(p) over the scored pixels",
        ("median", "disparity"): "depth 1/p median-scaled: median(g) / median(1/p)",
        ("none", "depth"): "none (--disable_median_scaling)",
        ("affine", "depth"): "least-squares scale and shift (not in Monodepth2's code)",
        ("affine", "disparity"): "least-squares scale and shift of p onto 1/g (not in Monodepth2's code)",
    },
    metric_keys=METRIC_KEYS,
    align=align,
    score=score,
    fit_resolution="full",
    clip_to_range=True,
    crop="none",
    metric_definitions="monodepth2",
    notes=("range 1e-3-80 m and the Garg crop on every benchmark, as evaluate_depth.py",
           "affine-invariant outputs have no default (median scaling cannot remove a shift): "
           "--alignment median (disparity: 1/p median-scaled, as Monodepth2 treats its own disparity) "
           "or affine",
           "a --crop of the benchmark replaces Garg's"),
)
