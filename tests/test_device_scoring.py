"""Scoring with torch on a device (``--score-device``) against the default numpy path.

The torch path exists for speed on a GPU; here it runs on the CPU (and on CUDA when present) and
must give the numpy path's numbers to float64 round-off, failure handling included.
"""

import math

import numpy as np
import pytest
import torch

from marigold_bench.data.protocol import get_protocol, valid_mask
from marigold_bench.errors import BenchError
from marigold_bench.eval.evaluator import FAILED, OK, resolve_score_device, score_sample
from marigold_bench.eval.metrics import METRIC_KEYS, compute_metrics

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _case(name, shape, density, seed, fit_space=None):
    rng = np.random.default_rng(seed)
    protocol = get_protocol(name)
    if fit_space:
        protocol = protocol.replace(fit_space=fit_space)
    h, w = shape
    depth = (rng.uniform(0.5, 9.0, (h, w)) * np.linspace(1.0, 0.3, h)[:, None]).astype(np.float32)
    valid = valid_mask(depth, protocol, rng.random((h, w)) < density)
    # an affine-invariant prediction in [0, 1]: roughly affine in depth, with noise
    pred = (depth / depth.max() * 0.7 + 0.1 + rng.normal(0, 0.02, (h, w))).clip(0, 1).astype(np.float32)
    return protocol, {"id": f"{name}/x", "rgb": None, "depth": depth, "valid": valid}, pred


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,shape,density,fit_space", [
    ("nyu", (480, 640), 1.0, None),            # Eigen crop, depth space
    ("kitti", (352, 1216), 0.16, None),         # sparse LiDAR, Eigen crop
    ("eth3d", (1500, 2250), 0.6, None),          # fit on the width-only downsampled copy
    ("eth3d", (1500, 2250), 0.6, "disparity"),
    ("diode", (96, 128), 0.8, "disparity"),
])
def test_torch_scoring_equals_numpy(device, name, shape, density, fit_space):
    protocol, item, pred = _case(name, shape, density, seed=shape[0] + len(fit_space or ""), fit_space=fit_space)
    host = score_sample(item, pred, protocol)
    moved = score_sample(item, pred, protocol, device=device)
    assert host["status"] == moved["status"] == OK
    assert host["n_valid"] == moved["n_valid"]
    for key in (*METRIC_KEYS, "scale", "shift"):
        assert moved[key] == pytest.approx(host[key], rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("device", DEVICES)
def test_torch_metrics_match_hand_values(device):
    # the four-pixel image of test_metrics: ratios p/g = 1, 2, 1.5, 0.5
    p = torch.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    g = torch.tensor([[1.0, 1.0], [2.0, 8.0]], device=device)
    m = compute_metrics(p, g)
    ln2, ln15 = math.log(2), math.log(1.5)
    mean_log, mean_sq_log = ln15 / 4, (2 * ln2**2 + ln15**2) / 4  # log ratios 0, ln 2, ln 1.5, -ln 2
    hand = {
        "abs_rel": (0 + 1 + 0.5 + 0.5) / 4,                       # |p - g| / g
        "sq_rel": (0 + 1 / 1 + 1 / 2 + 16 / 8) / 4,               # (p - g)^2 / g
        "rmse": math.sqrt((0 + 1 + 1 + 16) / 4),
        "rmse_log": math.sqrt(mean_sq_log),
        "log10": (0 + 2 * math.log10(2) + math.log10(1.5)) / 4,
        "delta1": 0.25,                                            # max(p/g, g/p) = 1, 2, 1.5, 2 < 1.25
        "delta2": 0.5,                                             # ... < 1.5625: 1 and 1.5
        "delta3": 0.5,                                             # ... < 1.953125: still 1 and 1.5
        "i_rmse": math.sqrt((0.25 + (1 / 6) ** 2 + (1 / 8) ** 2) / 4),  # 1/p - 1/g = 0, -1/2, -1/6, 1/8
        "silog_rmse": 100 * math.sqrt(mean_sq_log - mean_log**2),
    }
    assert set(hand) == set(METRIC_KEYS) and set(m) >= set(METRIC_KEYS)  # all ten, none forgotten
    for key, value in hand.items():
        assert m[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    # a mask leaves out the pixel with ratio 0.5: three pixels, ratios 1, 2, 1.5
    keep = torch.tensor([[True, True], [True, False]], device=device)
    masked = compute_metrics(p, g, keep)
    assert masked["abs_rel"] == pytest.approx(1.5 / 3, rel=1e-12)
    assert masked["sq_rel"] == pytest.approx(1.5 / 3, rel=1e-12)
    assert masked["delta1"] == pytest.approx(1 / 3) and masked["delta3"] == pytest.approx(2 / 3)
    assert masked["silog_rmse"] == pytest.approx(
        100 * math.sqrt((ln2**2 + ln15**2) / 3 - ((ln2 + ln15) / 3) ** 2), rel=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_path_fails_a_bad_prediction_like_numpy(device):
    protocol, item, pred = _case("nyu", (48, 64), 1.0, seed=1)
    bad = pred.copy()
    row, col = np.argwhere(item["valid"])[0]
    bad[row, col] = np.nan
    host, moved = score_sample(item, bad, protocol), score_sample(item, bad, protocol, device=device)
    assert host["status"] == moved["status"] == FAILED
    assert "NaN" in moved["message"]
    empty = {**item, "valid": np.zeros_like(item["valid"])}
    assert score_sample(empty, pred, protocol, device=device)["status"] == "no_valid"


def test_score_device_resolution():
    class OnCuda:
        device = torch.device("cuda")

    class OnCpu:
        device = torch.device("cpu")

    assert resolve_score_device("auto", OnCpu()) is None
    assert resolve_score_device("auto", object()) is None          # e.g. a baseline predictor
    assert resolve_score_device("auto", OnCuda()) == torch.device("cuda")
    assert resolve_score_device("cpu", OnCuda()) is None
    class OnMps:
        device = torch.device("mps")

    assert resolve_score_device("auto", OnMps()) is None           # no float64 on MPS
    with pytest.raises(BenchError, match="not a device"):
        resolve_score_device("gpu0")
    with pytest.raises(BenchError, match="cpu or cuda"):
        resolve_score_device("mps")
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="CUDA is not available"):
            resolve_score_device("cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,fit_space", [("eth3d", None), ("nyu", "disparity")])
def test_values_outside_the_mask_never_enter(device, name, fit_space):
    # the masked sums of the torch path must not let NaN * 0 or inf in from invalid pixels
    protocol, item, pred = _case(name, (480, 640), 0.7, seed=5, fit_space=fit_space)
    clean = score_sample(item, pred, protocol, device=device)
    dirty_pred, dirty_depth = pred.copy(), item["depth"].copy()
    invalid = ~item["valid"]
    dirty_pred[invalid] = np.nan
    dirty_depth[invalid] = np.where(np.arange(invalid.sum()) % 2, np.inf, -1.0)
    dirty = score_sample({**item, "depth": dirty_depth}, dirty_pred, protocol, device=device)
    assert clean["status"] == dirty["status"] == OK
    for key in (*METRIC_KEYS, "scale", "shift"):
        assert dirty[key] == pytest.approx(clean[key], rel=1e-12), key


def test_mixed_numpy_and_torch_inputs_score_on_the_host():
    rng = np.random.default_rng(4)
    p, g = rng.uniform(0.5, 5, (8, 8)), rng.uniform(0.5, 5, (8, 8))
    v = rng.random((8, 8)) < 0.7
    expected = compute_metrics(p, g, v)
    for args in ((p, torch.from_numpy(g), v), (p, g, torch.from_numpy(v)), (p, torch.from_numpy(g), None)):
        got = compute_metrics(*args)
        reference = expected if args[2] is not None else compute_metrics(p, g)
        for key in METRIC_KEYS:
            assert got[key] == pytest.approx(reference[key], rel=1e-12), key


def test_out_of_memory_on_the_device_falls_back_to_the_host(monkeypatch):
    from marigold_bench.eval.protocols import marigold

    protocol, item, pred = _case("nyu", (48, 64), 1.0, seed=2)

    def no_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(marigold, "_on_device", no_memory)
    with pytest.warns(UserWarning, match="out of GPU memory"):
        record = score_sample(item, pred, protocol, device="cpu")
    host = score_sample(item, pred, protocol)
    assert record["status"] == OK and record["abs_rel"] == host["abs_rel"]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("name,fit_space", [("eth3d", None), ("kitti", "disparity")])
def test_host_scoring_in_row_blocks_equals_whole_frame_scoring(name, fit_space, threads):
    # the host path masks, aligns and sums blocks of rows in threads; the reference aligns the
    # whole frame (align_and_clip) and scores it in one call (compute_metrics)
    from marigold_bench.eval.align import align_and_clip
    from marigold_bench.eval.scoring import align_and_score

    protocol, item, pred = _case(name, (1500, 2250), 0.6, seed=9, fit_space=fit_space)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = align_and_score("x", pred, item["depth"], item["valid"], protocol)
    finally:
        torch.set_num_threads(before)
    aligned, scale, shift = align_and_clip(pred, item["depth"], item["valid"], protocol)
    expected = compute_metrics(aligned, item["depth"], item["valid"])
    assert got["scale"] == scale and got["shift"] == shift
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key
