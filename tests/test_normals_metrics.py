"""Normals metrics (marigold_bench.eval.normals) on vectors whose angles are known by hand.

(Compared in a scratch venv with the official ``src/util/metric.py`` of prs-eth/Marigold b1dffaa
on 30 random images, 2 % zero predictions and non-unit ground truth: per image within 1e-4 (its
4-decimal rounding), the mean over images within 5e-6; DSINE's ``compute_normal_metrics`` on the
pooled errors within 1e-6.)
"""

from __future__ import annotations

import numpy as np
import pytest

from marigold_bench.eval.normals import (angular_errors, n_zero_predictions, per_image_metrics, pooled_metrics,
                                         scored_mask)


def field(*vectors):
    """A 3 x 1 x N map from N vectors."""
    return np.asarray(vectors, dtype=np.float32).T[:, None, :]


def test_angles_known_by_hand():
    gt = field((0, 0, 1), (0, 0, 1), (0, 0, 1), (0, 0, 2), (0, 1, 0))
    pred = field((0, 0, 1), (1, 0, 1), (1, 0, 0), (0, 0, 1), (0, -1, 0))
    # same, 45°, 90°, same direction with a non-unit ground truth, opposite
    np.testing.assert_allclose(angular_errors(pred, gt), [0, 45, 90, 0, 180], atol=1e-4)


def test_zero_vectors_ground_truth_is_not_scored_and_prediction_is_90_degrees_and_counted():
    gt = field((0, 0, 1), (0, 0, 0), (1, 0, 0))
    pred = field((0, 0, 0), (1, 0, 0), (1, 0, 0))
    errors = angular_errors(pred, gt)
    np.testing.assert_allclose(errors, [90, 0], atol=1e-4)   # the zero-gt pixel is left out
    assert n_zero_predictions(pred, gt) == 1
    assert scored_mask(gt).tolist() == [[True, False, True]]


def test_official_rounds_each_image_and_dsine_pools_pixels():
    # image A: one pixel at 10°; image B: three pixels at 20°
    a = np.deg2rad(10.0)
    b = np.deg2rad(20.0)
    gt_a, pred_a = field((0, 0, 1)), field((np.sin(a), 0, np.cos(a)))
    gt_b, pred_b = field(*[(0, 0, 1)] * 3), field(*[(np.sin(b), 0, np.cos(b))] * 3)
    rec_a, rec_b = per_image_metrics(pred_a, gt_a), per_image_metrics(pred_b, gt_b)
    assert rec_a["mean_angle"] == pytest.approx(10.0, abs=1e-4) and rec_a["pct_11_25"] == 100.0
    assert rec_b["pct_11_25"] == 0.0 and rec_b["pct_22_5"] == 100.0
    assert (rec_a["mean_angle"] + rec_b["mean_angle"]) / 2 == pytest.approx(15.0, abs=1e-4)  # per image
    pooled = pooled_metrics(np.concatenate([angular_errors(pred_a, gt_a), angular_errors(pred_b, gt_b)]))
    assert pooled["mean_angle"] == pytest.approx((10 + 3 * 20) / 4, abs=1e-4)       # 17.5: per pixel
    assert pooled["pct_11_25"] == pytest.approx(25.0)
    assert pooled["rmse_angle"] == pytest.approx(np.sqrt((100 + 3 * 400) / 4), abs=1e-3)


def test_rounding_is_to_four_decimals():
    angle = np.deg2rad(1.234567)
    rec = per_image_metrics(field((np.sin(angle), 0, np.cos(angle))), field((0, 0, 1)))
    assert rec["mean_angle"] == round(rec["mean_angle"], 4)
    assert rec["mean_angle"] == pytest.approx(1.2346, abs=1e-4)


def test_layouts_and_bad_input():
    gt = np.zeros((2, 2, 3), np.float32)
    gt[..., 2] = 1
    assert per_image_metrics(gt.copy(), gt)["mean_angle"] == 0.0   # H x W x 3 accepted
    with pytest.raises(ValueError, match="3 x H x W or H x W x 3"):
        per_image_metrics(np.zeros((2, 2)), gt)
    with pytest.raises(ValueError, match="differ in size"):
        per_image_metrics(np.zeros((3, 2, 3)), gt)
    bad = gt.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        per_image_metrics(bad, gt)
    with pytest.raises(ValueError, match="no pixel with a ground-truth normal"):
        per_image_metrics(gt, np.zeros_like(gt))
    with pytest.raises(ValueError, match="no scored pixel"):
        pooled_metrics(np.zeros(0))


def test_official_records_round_as_numpy_rounds_the_float32_mean():
    """The official record is ``round(np.average(errors), 4)`` on float32 errors: numpy's round
    of a float32, which differs from Python's round of the same value read as float64 at some
    4th-decimal edges (35.73234939... is 35.7324 there, 35.7323 in Python)."""
    from marigold_bench.eval.normals import rounded_summary

    errors = np.array([35.73234939575195], dtype=np.float32)
    assert round(float(errors[0]), 4) == 35.7323        # what a float64 round would record
    record = rounded_summary(errors)
    assert record["mean_angle"] == 35.7324 and record["median_angle"] == 35.7324
    for value in np.random.default_rng(3).uniform(0, 180, 2000).astype(np.float32):
        official = round(np.average(np.array([value], np.float32)), 4)   # the reference's expression
        # equal up to the float32 spelling of the decimal; a different 4th decimal is 1e-4 away
        assert rounded_summary(np.array([value], np.float32))["mean_angle"] == pytest.approx(float(official), abs=1e-5)
