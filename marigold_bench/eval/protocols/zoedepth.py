"""The ``zoedepth`` protocol: ZoeDepth's (and Depth Anything's ``metric_depth``) evaluation.

Read from LiheYoung/Depth-Anything ``metric_depth/zoedepth/utils/config.py`` (the per-dataset
``eigen_crop``/``garg_crop``/``min_depth_eval``/``max_depth_eval``), ``utils/misc.py``
(``compute_metrics``, ``compute_errors``) and ``evaluate.py``: the prediction is resized to the
ground truth (bilinear, ``align_corners=True``), clipped to the evaluation range (below min ->
min, above max -> max, +inf -> max, NaN -> min), and scored where ``min < g < max`` inside the
crop; nine metrics per image, then the mean over images.

Two facts of that code that its table does not show: ``evaluate.py`` calls ``compute_metrics``
without ``dataset=``, so the Eigen crop is NYU's fixed pixel window (rows 45:471, columns
41:601) on every frame size (DIODE 768x1024, HyperSim); and its DIODE loader reads the validity
mask but the evaluation never uses it (here the benchmark's mask is kept: DIODE's invalid
pixels are 0 in the depth map, which the range leaves out anyway).
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.crops import KITTI_GARG, NYU_EIGEN
from marigold_bench.eval.metric_depth import clip_zoedepth, resize_align_corners, zoedepth_metrics
from marigold_bench.eval.metric_scoring import MetricRow, fitted, row_for, scored_mask
from marigold_bench.eval.protocols.base import EvaluationProtocol, add_fit_columns
from marigold_bench.output_spaces import DEPTH_METRIC

#: metric columns, in ZoeDepth's order of meaning (a1-a3, abs_rel, sq_rel, rmse, rmse_log,
#: log_10, silog) in the suite's keys, and δ at 1.03
METRIC_KEYS = ("delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10",
               "silog_rmse", "delta_103")

_EIGEN = "config.py eigen_crop=True (NYU's fixed window)"
_GARG = "config.py garg_crop=True (after the loader's KB crop where do_kb_crop)"

#: benchmark name -> its row (DIODE: per subset), from config.py's DATASETS_CONFIG
TABLE = {
    "nyu": MetricRow(NYU_EIGEN, 1e-3, 10.0, _EIGEN),
    "ibims": MetricRow(NYU_EIGEN, 0.0, 10.0, _EIGEN),
    "diml_indoor": MetricRow(NYU_EIGEN, 0.0, 10.0, _EIGEN),
    "sunrgbd": MetricRow(NYU_EIGEN, 0.0, 8.0, _EIGEN),
    "hypersim_test": MetricRow(NYU_EIGEN, 1e-3, 80.0, _EIGEN),
    "kitti": MetricRow(KITTI_GARG, 1e-3, 80.0, _GARG),
    "vkitti2": MetricRow(KITTI_GARG, 1e-3, 80.0, _GARG),
    "ddad": MetricRow(KITTI_GARG, 1e-3, 80.0, _GARG),
    "diml_outdoor": MetricRow(KITTI_GARG, 2.0, 80.0, _GARG),
    "diode": {"indoor": MetricRow(NYU_EIGEN, 1e-3, 10.0, "diode_indoor: " + _EIGEN),
              "outdoor": MetricRow(KITTI_GARG, 1e-3, 80.0, "diode_outdoor: " + _GARG)},
}


def score_arrays(pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, row: MetricRow,
                 crop: bool = True) -> dict:
    """ZoeDepth's ``compute_metrics`` on one image: ``pred`` (any size: resized with corners
    aligned) against ``depth``, scored where ``valid``, the row's range and (``crop``) its crop.

    Raises:
        ValueError: no pixel left to score.
    """
    p = resize_align_corners(pred, depth.shape) if pred.shape != depth.shape else np.asarray(pred, np.float64)
    p = clip_zoedepth(p, row.min_depth, row.max_depth)
    keep = np.asarray(valid, bool)
    with np.errstate(invalid="ignore"):
        keep = keep & (depth > row.min_depth) & (depth < row.max_depth)
    if crop:
        keep &= row.crop(depth.shape)
    if not keep.any():
        raise ValueError("no valid pixels to score")
    with np.errstate(divide="ignore", invalid="ignore"):
        return zoedepth_metrics(p[keep], np.asarray(depth, np.float64)[keep])


def _prepare(sample_id, pred, depth, valid, scoring):
    row = row_for(TABLE, scoring.benchmark or scoring.dataset, sample_id)
    pred = resize_align_corners(pred, depth.shape) if pred.shape != depth.shape else pred
    keep = scored_mask(np.asarray(valid, bool), depth, row, scoring)
    aligned, scale, shift = fitted(sample_id, pred, depth, keep, scoring)
    return row, keep, aligned, scale, shift


def align(pred, depth, valid, scoring):
    """The whole map as ZoeDepth scores it: fitted (where an alignment was chosen), clipped to the
    row's range: ``(depth, scale, shift)``."""
    row, _, aligned, scale, shift = _prepare("prediction", pred, depth, valid, scoring)
    return clip_zoedepth(aligned, row.min_depth, row.max_depth), scale, shift


def score(sample_id, pred, depth, valid, scoring, device=None) -> dict:
    """ZoeDepth's metrics of one prediction (host, float64; ``device`` unused)."""
    row, keep, aligned, scale, shift = _prepare(sample_id, pred, depth, valid, scoring)
    record = score_arrays(aligned, depth, keep, row, crop=False)
    return add_fit_columns(record, scoring, scale, shift, pred, keep)


PROTOCOL = EvaluationProtocol(
    name="zoedepth",
    source="Bhat et al., ZoeDepth, 2023; Yang et al., Depth Anything, CVPR 2024; "
           "https://github.com/LiheYoung/Depth-Anything metric_depth/zoedepth/utils/{config,misc}.py, evaluate.py",
    description="metric depth as predicted: resized with corners aligned, clipped to the dataset's "
                "eval range, ZoeDepth's crop per dataset, nine metrics and δ at 1.03",
    default_alignment={DEPTH_METRIC: ("none", "depth")},
    realisations={
        ("none", "depth"): "none (ZoeDepth's evaluation)",
        ("median", "depth"): "median(g) / median(p) before clipping (not in ZoeDepth's code)",
        ("scale", "depth"): "least-squares scale before clipping (not in ZoeDepth's code)",
        ("affine", "depth"): "least-squares scale and shift before clipping (not in ZoeDepth's code)",
        ("affine", "disparity"): "least-squares scale and shift of p onto 1/g, clipped at 1e-3, "
                                 "inverted, then clipped (not in ZoeDepth's code)",
    },
    metric_keys=METRIC_KEYS,
    align=align,
    score=score,
    fit_resolution="full",
    clip_to_range=True,
    # the crop comes from TABLE per dataset: the items' uncropped mask is handed over
    crop="none",
    metric_definitions="zoedepth",
    notes=("crop and eval range per dataset from ZoeDepth's config.py (TABLE); a benchmark outside "
           "it is scored with its own default crop and range",
           "the Eigen crop is NYU's fixed window on every frame size, as evaluate.py runs it",
           "silog = 100 sqrt(mean(e^2) - mean(e)^2) (the population deviation; UniDepth's differs)",
           "a --crop of the benchmark replaces the table's crop; the recorded crop is 'none' when "
           "the table's was used"),
)
