"""Metric-depth protocols (zoedepth, unidepth, monodepth2): metric values by hand on tiny arrays,
crops by hand, and the bad inputs (a metric protocol asked of an affine-invariant model)."""

import math

import numpy as np
import pytest

from marigold_bench.data.crops import KITTI_GARG, NYU_EIGEN
from marigold_bench.eval.metric_depth import (clip_zoedepth, d_auc, least_squares_fit, lower_median,
                                              monodepth2_metrics, resize_align_corners, unidepth_metrics,
                                              zoedepth_metrics)

LN2 = math.log(2)
G = np.array([1.0, 2.0, 4.0, 8.0])
P = np.array([1.0, 4.0, 4.0, 2.0])   # ratios max(p/g, g/p) = 1, 2, 1, 4; e = 0, ln2, 0, -2 ln2


def test_zoedepth_metrics_by_hand():
    m = zoedepth_metrics(P, G)
    assert m["delta1"] == m["delta2"] == m["delta3"] == m["delta_103"] == 0.5
    assert m["abs_rel"] == pytest.approx((0 + 1 + 0 + 0.75) / 4)
    assert m["sq_rel"] == pytest.approx((0 + 4 / 2 + 0 + 36 / 8) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(10))
    assert m["rmse_log"] == pytest.approx(LN2 * math.sqrt(5) / 2)
    assert m["log10"] == pytest.approx(0.75 * math.log10(2))
    # mean(e^2) - mean(e)^2 = 5/4 ln2^2 - 1/16 ln2^2 = 19/16 ln2^2 (no Bessel)
    assert m["silog_rmse"] == pytest.approx(100 * LN2 * math.sqrt(19) / 4)


def test_unidepth_metrics_by_hand():
    m = unidepth_metrics(P, G)
    # Bessel: 4/3 of the population variance
    assert m["silog_std"] == pytest.approx(100 * LN2 * math.sqrt(19 / 12))
    assert m["medianlog"] == pytest.approx(0.0)   # sorted e: -2ln2, 0, 0, ln2 -> lower median 0
    assert m["delta_103"] == 0.5 and m["delta1"] == 0.5
    # δ(1.25^x) is 1/2 until 1.25^x > 2 (x > ln2 / ln1.25), then 3/4; 4 is never reached (x <= 5)
    x0 = LN2 / math.log(1.25)
    exact = (0.5 * (5 - 0.01) + 0.25 * (5 - x0)) / 5
    assert m["d_auc"] == pytest.approx(exact, abs=2e-3)  # the trapezoid over 100 steps, within a step


def test_medianlog_takes_the_lower_median():
    g = np.ones(4)
    p = np.array([1.0, 2.0, 4.0, 8.0])  # e = 0, ln2, 2ln2, 3ln2: lower median ln2 (numpy's: 1.5 ln2)
    assert unidepth_metrics(p, g)["medianlog"] == pytest.approx(100 * LN2)
    assert lower_median(np.array([3.0, 1.0, 2.0])) == 2.0


def test_d1_ssi_fits_scale_and_shift():
    g = np.array([1.0, 2.0, 3.0, 5.0, 7.0])
    p = (g - 1.0) / 2.0                     # an exact affine copy: after the fit every pixel is an inlier
    assert unidepth_metrics(p + 1e-9, g)["d1_ssi"] == 1.0
    rng = np.random.default_rng(1)
    p = rng.uniform(1, 5, 50); g = rng.uniform(1, 5, 50)
    scale, shift = np.polyfit(p, g, 1)     # a second method for the same least squares
    assert least_squares_fit(p, g) == pytest.approx(scale * p + shift, rel=1e-6)


def test_monodepth2_has_seven_metrics():
    m = monodepth2_metrics(P, G)
    assert set(m) == {"abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"}
    assert m["rmse"] == pytest.approx(math.sqrt(10))


def test_zoedepth_clipping_order():
    out = clip_zoedepth(np.array([np.nan, np.inf, -np.inf, 5e-4, 50.0, 3.0]), 1e-3, 10.0)
    assert out.tolist() == [1e-3, 10.0, 1e-3, 1e-3, 10.0, 3.0]


def test_resize_with_corners_aligned_by_hand():
    out = resize_align_corners(np.array([[0.0, 1.0], [2.0, 3.0]]), (3, 3))
    assert out.tolist() == [[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]]
    # shrinking 5 -> 3 samples positions 0, 2, 4 exactly
    row = np.arange(5.0)[None, :].repeat(2, 0)
    assert resize_align_corners(row, (2, 3))[0].tolist() == [0.0, 2.0, 4.0]


def test_crops_by_hand():
    garg = KITTI_GARG((352, 1216))
    # int(0.40810811*352)=143, int(0.99189189*352)=349, int(0.03594771*1216)=43, int(0.96405229*1216)=1172
    expected = np.zeros((352, 1216), bool); expected[143:349, 43:1172] = True
    assert (garg == expected).all()
    # ZoeDepth's Eigen crop is NYU's window on every frame size (evaluate.py passes no dataset=)
    eigen = NYU_EIGEN((768, 1024))
    assert eigen.sum() == 426 * 560 and eigen[45, 41] and not eigen[471, 41]
