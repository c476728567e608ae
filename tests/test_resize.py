"""The numpy resize of the compact cache against torch's interpolate, an independent implementation."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from marigold_bench.eval.resize import RESIZE_MODES, interpolation_matrix, resize

# odd sizes, up and down, in both axes at once and one axis at a time, extreme aspect ratios
SIZES = [((37, 53), (101, 75)), ((37, 53), (12, 19)), ((64, 48), (64, 97)), ((101, 75), (37, 75)),
         ((5, 3), (17, 2)), ((1, 9), (3, 31)), ((63, 94), (504, 756)), ((96, 64), (95, 65))]


def _torch_resize(x: np.ndarray, size, mode: str) -> np.ndarray:
    kwargs = {"mode": "bilinear", "antialias": True} if mode == "bilinear-antialias" else {"mode": mode}
    t = torch.from_numpy(np.ascontiguousarray(x))[None, None]
    return F.interpolate(t, size=size, align_corners=False, **kwargs)[0, 0].numpy()


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("shapes", SIZES, ids=lambda s: f"{s[0][0]}x{s[0][1]}-{s[1][0]}x{s[1][1]}")
def test_resize_matches_torch_interpolate(mode, shapes):
    src, dst = shapes
    x = np.random.default_rng(sum(src) + sum(dst)).random(src).astype(np.float32)
    ours = resize(x, dst, mode)
    assert ours.shape == dst and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _torch_resize(x, dst, mode), rtol=0, atol=1e-6)


def test_long_axis_positions_follow_torchs_float32_rounding():
    # On a 6048-pixel axis a float32 coordinate is 5e-4 px coarse; a ramp shows the exact position
    x = np.tile(np.arange(504, dtype=np.float32)[:, None], (1, 3))
    np.testing.assert_allclose(resize(x, (4032, 3)), _torch_resize(x, (4032, 3), "bilinear"), rtol=0, atol=1e-4)
    ramp = np.tile(np.linspace(0, 1, 756, dtype=np.float32)[None], (2, 1))
    np.testing.assert_allclose(resize(ramp, (2, 6048)), _torch_resize(ramp, (2, 6048), "bilinear"), rtol=0, atol=1e-6)


def test_hand_values():
    # [0, 1] stretched to 4 samples: centres at -0.25, 0.25, 0.75, 1.25 in input pixels
    np.testing.assert_allclose(resize(np.array([[0.0, 1.0]]), (1, 4)), [[0, 0.25, 0.75, 1]], atol=1e-7)
    # halving 4 samples with the antialiasing triangle: weights (1/4, 3/4, 3/4, 1/4) / 2 per pair,
    # the taps beyond the edge dropped and the rest renormalised
    out = resize(np.array([[0.0, 4.0, 8.0, 12.0]]), (1, 2), "bilinear-antialias")
    np.testing.assert_allclose(out, [[(0 * 3 + 4 * 3 + 8 * 1) / 7, (4 * 1 + 8 * 3 + 12 * 3) / 7]], atol=1e-5)
    # Keys' cubic (a = -0.75) at t = 0.5: weights (-3/32, 19/32, 19/32, -3/32)
    assert np.allclose(interpolation_matrix(6, 3, "bicubic").toarray()[1], [0, -3 / 32, 19 / 32, 19 / 32, -3 / 32, 0])
    # every interpolation row sums to one
    for mode in RESIZE_MODES:
        assert np.allclose(interpolation_matrix(13, 40, mode).sum(1), 1)
        assert np.allclose(interpolation_matrix(40, 13, mode).sum(1), 1)


def test_same_size_and_errors():
    x = np.random.default_rng(0).random((6, 7))
    assert np.array_equal(resize(x, (6, 7)), x.astype(np.float32))
    with pytest.raises(ValueError, match="unknown resize mode"):
        resize(x, (3, 3), "lanczos")
    with pytest.raises(ValueError, match="H x W"):
        resize(x[None, None], (3, 3))


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_channel_first_maps_resize_like_torch(mode):
    """A C x H x W map (normals, point maps) is resized channel by channel, as torch's
    interpolate resizes the channels of one image."""
    x = np.random.default_rng(1).standard_normal((3, 9, 14)).astype(np.float32)
    ours = resize(x, (5, 23), mode)
    theirs = np.stack([_torch_resize(channel, (5, 23), mode) for channel in x])
    assert ours.shape == (3, 5, 23)
    assert np.allclose(ours, theirs, atol=1e-5)


def test_resize_imports_no_torch():
    code = ("import sys, numpy as np; from marigold_bench.eval.resize import resize; "
            "resize(np.ones((3, 5)), (7, 2), 'bicubic'); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
