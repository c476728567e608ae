"""Least-squares alignment: exact recovery of known transforms and the protocol's order."""

import numpy as np
import pytest

from marigold_bench.data.protocol import get_protocol
from marigold_bench.eval.align import align_and_clip, align_least_squares

rng = np.random.default_rng(0)


def test_depth_space_recovers_scale_and_shift():
    pred = rng.uniform(0, 1, (30, 40))
    gt = 2.5 * pred + 0.7
    aligned, s, t = align_least_squares(pred, gt, np.ones_like(gt, bool))
    assert s == pytest.approx(2.5) and t == pytest.approx(0.7)
    np.testing.assert_allclose(aligned, gt, rtol=1e-10)


def test_invalid_pixels_do_not_enter_the_fit():
    pred = rng.uniform(0, 1, (20, 20))
    gt = 3.0 * pred + 1.0
    valid = np.ones_like(gt, bool)
    gt[:5] = 1000.0  # garbage where invalid
    valid[:5] = False
    _, s, t = align_least_squares(pred, gt, valid)
    assert (s, t) == pytest.approx((3.0, 1.0))


def test_disparity_space_recovers_inverse_depth():
    pred = rng.uniform(0.1, 1, (30, 40))
    gt = 1.0 / (2.0 * pred + 0.5)
    aligned, s, t = align_least_squares(pred, gt, np.ones_like(gt, bool), space="disparity")
    assert (s, t) == pytest.approx((2.0, 0.5))
    np.testing.assert_allclose(aligned, gt, rtol=1e-9)


def test_disparity_is_clipped_before_inversion():
    pred = np.array([[0.0, 1.0, 2.0, 3.0]])
    gt = 1.0 / np.array([[0.5, 1.0, 1.5, 2.0]])  # disparity = 0.5 p + 0.5
    pred_far = pred.copy()
    pred_far[0, 0] = -10.0  # would give a negative disparity -> clipped to 1e-3 -> 1000 m
    valid = np.array([[False, True, True, True]])
    aligned, _, _ = align_least_squares(pred_far, gt, valid, space="disparity")
    assert aligned[0, 0] == pytest.approx(1000.0)


@pytest.mark.parametrize("mode", ["width_only", "2d"])
def test_max_resolution_exact_when_affine(mode):
    pred = rng.uniform(0, 1, (60, 90))
    gt = 4.0 * pred - 1.0
    aligned, s, t = align_least_squares(pred, gt, np.ones_like(gt, bool), max_resolution=30, downsample=mode)
    assert (s, t) == pytest.approx((4.0, -1.0))
    assert aligned.shape == (60, 90)


def test_width_only_quirk_keeps_every_row():
    # with a noisy relation the fit depends on which pixels are kept: the official quirk keeps
    # every row and every 3rd column (nearest, factor 1/3); a true 2-D downsample also drops rows
    pred = rng.uniform(0, 1, (60, 90))
    gt = 2.0 * pred + rng.normal(0, 0.3, pred.shape) + 5
    valid = np.ones_like(gt, bool)

    def lstsq(p, g):
        A = np.stack([p.ravel(), np.ones(p.size)], 1)
        return np.linalg.lstsq(A, g.ravel(), rcond=None)[0]

    _, s, t = align_least_squares(pred, gt, valid, max_resolution=30, downsample="width_only")
    assert (s, t) == pytest.approx(tuple(lstsq(pred[:, ::3], gt[:, ::3])))
    _, s2, t2 = align_least_squares(pred, gt, valid, max_resolution=30, downsample="2d")
    assert (s2, t2) == pytest.approx(tuple(lstsq(pred[::3, ::3], gt[::3, ::3])))


def test_protocol_clips_to_range_after_fit():
    nyu = get_protocol("nyu")  # 1e-3 < d < 10
    pred = np.array([[0.0, 1.0, 2.0]])
    gt = np.array([[1.0, 6.0, 11.0]])  # s = 5, t = 1 fits exactly
    aligned, s, t = align_and_clip(pred, gt, np.ones_like(gt, bool), nyu)
    assert (s, t) == pytest.approx((5.0, 1.0))
    np.testing.assert_allclose(aligned, [[1.0, 6.0, 10.0]])


def test_clip_to_positive_when_range_allows_zero():
    eth3d = get_protocol("eth3d")  # 1e-5 < d < inf
    pred = np.array([[0.0, 1.0, 2.0]])
    gt = np.array([[-1.0, 1.0, 3.0]])  # s = 2, t = -1
    aligned, _, _ = align_and_clip(pred, gt, np.array([[True, True, True]]), eth3d)
    assert aligned[0, 0] == pytest.approx(1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        align_least_squares(np.ones((2, 2)), np.ones((2, 3)), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="space"):
        align_least_squares(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2), bool), space="log")
    with pytest.raises(ValueError, match="fewer than 2"):
        align_least_squares(np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2), bool))


def test_closed_form_fit_equals_lstsq():
    # a second method: numpy's general least-squares solver on the design matrix
    from marigold_bench.eval.align import _fit
    x = rng.uniform(0, 1, 1000)
    y = 3.0 * x + rng.normal(0, 0.5, 1000) - 2
    expected = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    assert _fit(x, y) == pytest.approx(tuple(expected), rel=1e-10)
    # constant prediction: the minimum-norm solution, as lstsq gives
    c = np.full(50, 0.5)
    expected = np.linalg.lstsq(np.stack([c, np.ones_like(c)], 1), y[:50], rcond=None)[0]
    assert _fit(c, y[:50]) == pytest.approx(tuple(expected), rel=1e-10)
