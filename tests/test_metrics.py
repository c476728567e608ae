"""Metrics against values worked out by hand on a four-pixel image."""

import math

import numpy as np
import pytest
import torch

from marigold_bench.eval.metrics import METRIC_KEYS, compute_metrics, mean_metrics

P = np.array([[1.0, 2.0], [3.0, 4.0]])
G = np.array([[1.0, 1.0], [2.0, 8.0]])
LN2, LN15 = math.log(2), math.log(1.5)

# per pixel: ratio p/g = 1, 2, 1.5, 0.5
EXPECTED = {
    "abs_rel": (0 + 1 + 0.5 + 0.5) / 4,
    "sq_rel": (0 + 1 / 1 + 1 / 2 + 16 / 8) / 4,
    "rmse": math.sqrt((0 + 1 + 1 + 16) / 4),
    "rmse_log": math.sqrt((0 + LN2**2 + LN15**2 + LN2**2) / 4),
    "log10": (0 + math.log10(2) + math.log10(1.5) + math.log10(2)) / 4,
    "delta1": 1 / 4,   # only the exact pixel has max ratio < 1.25
    "delta2": 2 / 4,   # 1 and 1.5 are < 1.5625
    "delta3": 2 / 4,   # 2 is not < 1.953125
    "i_rmse": math.sqrt((0 + 0.5**2 + (1 / 3 - 1 / 2) ** 2 + (1 / 4 - 1 / 8) ** 2) / 4),
    "silog_rmse": 100 * math.sqrt((2 * LN2**2 + LN15**2) / 4 - (LN15 / 4) ** 2),
}


@pytest.mark.parametrize("key", METRIC_KEYS)
def test_each_metric_matches_hand_value(key):
    assert compute_metrics(P, G)[key] == pytest.approx(EXPECTED[key], rel=1e-12)


def test_torch_inputs_and_mask():
    # the masked-out pixel would change every metric if it were used
    pred = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    gt = torch.tensor([[1.0, 1.0], [2.0, 8.0]])
    valid = torch.tensor([[True, True], [True, False]])
    m = compute_metrics(pred, gt, valid)
    assert m["abs_rel"] == pytest.approx((0 + 1 + 0.5) / 3)
    assert m["delta1"] == pytest.approx(1 / 3)


def test_perfect_prediction():
    g = np.random.default_rng(0).uniform(0.5, 10, (8, 8))
    m = compute_metrics(g, g)
    assert m["abs_rel"] == 0 and m["rmse"] == 0 and m["delta1"] == 1 and m["silog_rmse"] == 0


def test_default_mask_is_positive_ground_truth():
    pred = np.array([[2.0, 5.0]])
    gt = np.array([[1.0, 0.0]])
    assert compute_metrics(pred, gt)["abs_rel"] == pytest.approx(1.0)


def test_mean_is_per_image_not_per_pixel():
    # image A: 1 pixel, AbsRel 1; image B: 3 pixels, AbsRel 0 -> mean 0.5 (per-pixel would be 0.25)
    a = compute_metrics(np.array([2.0]), np.array([1.0]))
    b = compute_metrics(np.ones(3), np.ones(3))
    assert mean_metrics([a, b])["abs_rel"] == pytest.approx(0.5)


@pytest.mark.parametrize("pred,gt,valid,match", [
    (np.ones((2, 2)), np.ones((2, 3)), None, "shape"),
    (np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2), bool), "no valid"),
    (np.full((2, 2), np.nan), np.ones((2, 2)), None, "finite"),
    (np.zeros((2, 2)), np.ones((2, 2)), None, "> 0"),
])
def test_bad_input_is_refused(pred, gt, valid, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(pred, gt, valid)


def test_fast_path_equals_the_one_metric_functions():
    # compute_metrics shares intermediate terms; each metric function states one formula alone
    from marigold_bench.eval import metrics as M
    rng = np.random.default_rng(3)
    p, g = rng.uniform(0.1, 20, 5000), rng.uniform(0.1, 20, 5000)
    fast = compute_metrics(p, g)
    alone = {"abs_rel": M.abs_rel(p, g), "sq_rel": M.sq_rel(p, g), "rmse": M.rmse(p, g),
             "rmse_log": M.rmse_log(p, g), "log10": M.log10(p, g), "delta1": M.delta(p, g, 1),
             "delta2": M.delta(p, g, 2), "delta3": M.delta(p, g, 3), "i_rmse": M.i_rmse(p, g),
             "silog_rmse": M.silog_rmse(p, g)}
    for key in METRIC_KEYS:
        assert fast[key] == pytest.approx(alone[key], rel=1e-12), key
