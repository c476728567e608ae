"""The ``unidepth`` protocol: UniDepth's depth evaluation.

Read from lpiccinelli-eth/UniDepth ``unidepth/utils/evaluation_depth.py`` (``eval_depth``,
``DICT_METRICS``, ``ssi``, ``d_auc``) and ``unidepth/datasets/*.py`` (each dataset's
``max_depth`` and ``eval_mask``; the ``AnnotationMask`` in ``pipelines/formating.py``): the
prediction is resized to the ground truth (bilinear, corners not aligned), NOT clipped, and
scored where ``0 < g < max_depth`` (and ``g <= max_depth`` again in ``eval_depth``) inside the
dataset's crop (NYUv2: rows 45:-9, columns 41:-39; KITTI: Garg, the training script's default
``crop``); metrics per image, then the mean over images.

``silog`` here is ``100 * std(e)`` with Bessel's correction (key ``silog_std``, not ZoeDepth's
``silog_rmse``); ``medianlog`` takes torch's lower median; ``tau`` at 3 % is ``delta_103``.
``d1_ssi`` is δ1 after a plain least-squares scale and shift on every scored pixel, as the
code's ``ssi`` does; a written description of the protocol says the fit leaves out the 5 % largest residuals, which the
code read does not do.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.crops import KITTI_GARG, NONE, Crop
from marigold_bench.errors import PredictionError
from marigold_bench.eval.metric_depth import unidepth_metrics
from marigold_bench.eval.metric_scoring import MetricRow, fitted, row_for, scored_mask
from marigold_bench.eval.protocols.base import EvaluationProtocol, add_fit_columns
from marigold_bench.output_spaces import DEPTH_METRIC

METRIC_KEYS = ("delta1", "delta2", "delta3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10",
               "silog_std", "medianlog", "d_auc", "delta_103", "d1_ssi")


def _border_45_9_41_39(h: int, w: int):
    # nyuv2.py eval_mask: border_mask[..., 45:-9, 41:-39] (= 45:471, 41:601 on 480x640)
    return 45, h - 9, 41, w - 39


#: UniDepth's NYUv2 crop, counted from the frame's far edges
UNIDEPTH_NYU = Crop("unidepth_nyu", _border_45_9_41_39, "UniDepth's NYUv2 eval_mask: rows 45:-9, columns 41:-39")


def _row(crop, max_depth, where):
    return MetricRow(crop, 0.0, max_depth, f"unidepth/datasets/{where}")


#: benchmark name -> row: the dataset class's max_depth and eval_mask (min: g > 0)
TABLE = {
    "nyu": _row(UNIDEPTH_NYU, 10.0, "nyuv2.py"),
    "kitti": _row(KITTI_GARG, 80.0, "kitti.py (crop 'garg', scripts/train.py's default)"),
    "ibims": _row(NONE, 25.0, "ibims.py"),
    "sunrgbd": _row(NONE, 8.0, "sunrgbd.py"),
    "ddad": _row(NONE, 120.0, "ddad.py"),
    "hypersim_test": _row(NONE, 50.0, "hypersim.py"),
    "vkitti2": _row(NONE, 255.0, "vkitti.py"),
    "diml_indoor": _row(NONE, 100.0, "diml.py"),
    "diml_outdoor": _row(NONE, 100.0, "diml.py"),
    "eth3d": _row(NONE, 50.0, "eth3d.py"),
    "diode": {"indoor": _row(NONE, 25.0, "diode.py DiodeIndoor"),
              "outdoor": _row(NONE, 80.0, "diode.py DiodeOutdoor")},
}


def _prepare(sample_id, pred, depth, valid, scoring):
    from marigold_bench.eval.resize import resize

    row = row_for(TABLE, scoring.benchmark or scoring.dataset, sample_id)
    if pred.shape != depth.shape:
        pred = resize(np.asarray(pred, np.float64), depth.shape, "bilinear")
    keep = scored_mask(np.asarray(valid, bool), depth, row, scoring, inclusive_max=False)
    if not keep.any():
        raise ValueError("no valid pixels to score")
    aligned, scale, shift = fitted(sample_id, pred, depth, keep, scoring)
    if not np.isfinite(aligned[keep]).all():
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    return keep, aligned, scale, shift


def align(pred, depth, valid, scoring):
    """The whole map as UniDepth scores it (fitted where an alignment was chosen, not clipped)."""
    _, aligned, scale, shift = _prepare("prediction", pred, depth, valid, scoring)
    return aligned, scale, shift


def score(sample_id, pred, depth, valid, scoring, device=None) -> dict:
    """UniDepth's metrics of one prediction (host, float64; ``device`` unused)."""
    keep, aligned, scale, shift = _prepare(sample_id, pred, depth, valid, scoring)
    with np.errstate(divide="ignore", invalid="ignore"):
        record = unidepth_metrics(aligned[keep], np.asarray(depth, np.float64)[keep])
    return add_fit_columns(record, scoring, scale, shift, pred, keep)


PROTOCOL = EvaluationProtocol(
    name="unidepth",
    source="Piccinelli et al., UniDepth, CVPR 2024; https://github.com/lpiccinelli-eth/UniDepth "
           "unidepth/utils/evaluation_depth.py, unidepth/datasets/*.py",
    description="metric depth as predicted, not clipped, 0 < g < the dataset's max; Bessel silog, "
                "medianlog, d_auc, tau at 3 %, d1_ssi",
    default_alignment={DEPTH_METRIC: ("none", "depth")},
    realisations={
        ("none", "depth"): "none (UniDepth's evaluation)",
        ("median", "depth"): "median(g) / median(p) (UniDepth's 'si' rescaling uses the same ratio)",
        ("scale", "depth"): "least-squares scale (not in UniDepth's code)",
        ("affine", "depth"): "least-squares scale and shift (UniDepth's 'ssi', without its 1e-9 ridge)",
        ("affine", "disparity"): "least-squares scale and shift of p onto 1/g, clipped at 1e-3, inverted "
                                 "(not in UniDepth's code)",
    },
    metric_keys=METRIC_KEYS,
    align=align,
    score=score,
    fit_resolution="full",
    clip_to_range=False,
    crop="none",
    metric_definitions="unidepth",
    notes=("max depth and crop per dataset from UniDepth's dataset classes (TABLE); a benchmark "
           "outside it is scored with its own default crop and range",
           "silog_std = 100 std(ln p - ln g, ddof=1); medianlog uses torch's lower median",
           "d1_ssi: plain least squares on every scored pixel (the code's ssi), not the 5 % trimmed "
           "fit that description gives",
           "a --crop of the benchmark replaces the table's crop"),
)
