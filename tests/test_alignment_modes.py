"""Alignment modes of `marigold_bench.eval.align`: values worked out by hand, and the numpy
fit-downsample checked against torch's own ``interpolate`` (the path it replaced)."""

import subprocess
import sys

import numpy as np
import pytest

from marigold_bench.eval import align as A


def test_align_module_imports_without_torch():
    code = "import marigold_bench.eval.align, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("shape,max_res", [((4032, 6048), 1024), ((6048, 4032), 1024), ((480, 640), 100),
                                           ((1537, 2049), 333), ((375, 1242), 97), ((59, 61), 7)])
@pytest.mark.parametrize("mode", ["width_only", "2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, bool])
def test_numpy_downsample_picks_torch_pixels(shape, max_res, mode, dtype):
    # a second method: torch's nearest interpolate, as the fit used before 0.3
    torch = pytest.importorskip("torch")
    h, w = shape
    factor = min(max_res / h, max_res / w)
    rows, cols = np.indices(shape)
    if dtype is bool:
        arrays = [np.random.default_rng(1).uniform(size=shape) > 0.5]
    else:  # pixel coordinates as values (exact in float32): equal outputs = the same pixels read
        arrays = [rows.astype(dtype), cols.astype(dtype)]
    for a in arrays:
        (ours,) = A._downsample([a], max_res, mode)
        x = torch.from_numpy(a).float() if dtype is bool else torch.from_numpy(a)
        x = x[None] if mode == "width_only" else x[None, None]
        ref = torch.nn.functional.interpolate(x, scale_factor=factor, mode="nearest")
        ref = (ref[0] if mode == "width_only" else ref[0, 0]).numpy()
        ref = ref.astype(bool) if dtype is bool else ref
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        np.testing.assert_array_equal(ours, ref)


ONES = np.ones((1, 3), bool)


def test_least_squares_scale_by_hand():
    # sum(p g) = 1*2 + 2*3 + 3*7 = 29, sum(p^2) = 1 + 4 + 9 = 14
    p, g = np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 3.0, 7.0]])
    assert A.fit_scale_least_squares(p, g, ONES) == pytest.approx(29 / 14, rel=1e-15)
    aligned, s, t = A.align(p, g, ONES, "scale")
    assert (s, t) == (pytest.approx(29 / 14), 0.0)
    np.testing.assert_allclose(aligned, 29 / 14 * p, rtol=1e-15)
    # an invalid pixel does not count, whatever it holds
    p2, g2 = np.array([[1.0, 2.0, 3.0, 50.0]]), np.array([[2.0, 3.0, 7.0, -9.0]])
    assert A.fit_scale_least_squares(p2, g2, np.array([[1, 1, 1, 0]], bool)) == pytest.approx(29 / 14)


def test_least_squares_scale_in_disparity_by_hand():
    # target disparity 1/g = [1, 4]: sum(p t) = 1 + 8 = 9, sum(p^2) = 5 -> s = 1.8
    p, g = np.array([[1.0, 2.0]]), np.array([[1.0, 0.25]])
    aligned, s, t = A.align(p, g, np.ones((1, 2), bool), "scale", space="disparity")
    assert (s, t) == (pytest.approx(1.8), 0.0)
    np.testing.assert_allclose(aligned, [[1 / 1.8, 1 / 3.6]], rtol=1e-14)


def test_median_scale_by_hand():
    # valid: p = 1, 2, 4, 8 (median 3), g = 3, 5, 6, 100 (median 5.5); the 5th pixel is invalid
    p = np.array([[1.0, 2.0, 4.0, 8.0, 1e6]])
    g = np.array([[3.0, 5.0, 6.0, 100.0, 1.0]])
    valid = np.array([[1, 1, 1, 1, 0]], bool)
    assert A.fit_median_scale(p, g, valid) == pytest.approx(5.5 / 3, rel=1e-15)
    aligned, s, t = A.align(p, g, valid, "median")
    assert (s, t) == (pytest.approx(5.5 / 3), 0.0)
    np.testing.assert_allclose(aligned, 5.5 / 3 * p, rtol=1e-15)


def test_median_scale_in_disparity_is_monodepth2s():
    # disparity p = 1, 2, 4 -> depth 1/p = 1, .5, .25 (median .5); g = 2, 3, 10 (median 3):
    # depth scale 3 / .5 = 6, i.e. disparity scale 1/6, aligned depth 6/p. The 4th pixel has
    # p <= 0: left out of the fit, and its fitted disparity is clipped to 1e-3 (depth 1000 m).
    p = np.array([[1.0, 2.0, 4.0, -1.0]])
    g = np.array([[2.0, 3.0, 10.0, 5.0]])
    valid = np.ones((1, 4), bool)
    aligned, s, t = A.align(p, g, valid, "median", space="disparity")
    assert (s, t) == (pytest.approx(1 / 6), 0.0)
    np.testing.assert_allclose(aligned, [[6.0, 3.0, 1.5, 1000.0]], rtol=1e-14)
    # even count: the depth medians average the middle values, (0.5 + 0.25) / 2 and (3 + 10) / 2
    p, g = np.array([[1.0, 2.0, 4.0, 8.0]]), np.array([[2.0, 3.0, 10.0, 11.0]])
    s = A.fit_median_scale(p, g, np.ones((1, 4), bool), space="disparity")
    assert s == pytest.approx(0.375 / 6.5, rel=1e-15)


def test_none_scores_the_prediction_as_it_is():
    p, g = np.array([[1.5, 2.0, 4.0]], np.float32), np.array([[1.0, 2.0, 3.0]])
    aligned, s, t = A.align(p, g, ONES, "none")
    assert (s, t) == (1.0, 0.0) and aligned.dtype == np.float64
    np.testing.assert_array_equal(aligned, p.astype(np.float64))
    aligned, _, _ = A.align(p, g, ONES, "none", space="disparity")  # metric disparity, 1/m
    np.testing.assert_allclose(aligned, 1 / p.astype(np.float64))


def test_affine_is_todays_least_squares():
    rng = np.random.default_rng(3)
    p, g = rng.uniform(0, 1, (40, 50)), rng.uniform(1, 5, (40, 50))
    valid = rng.uniform(size=p.shape) > 0.3
    for space in ("depth", "disparity"):
        ours = A.align(p, g, valid, "affine", space=space, max_resolution=20)
        ref = A.align_least_squares(p, g, valid, space=space, max_resolution=20)
        np.testing.assert_array_equal(ours[0], ref[0])
        assert ours[1:] == ref[1:]
    # and, at full resolution, against numpy's least squares on [p, 1] (disparity: onto 1/g,
    # the fitted disparity clipped at 1e-3 and inverted)
    for space, target in (("depth", g), ("disparity", 1.0 / g)):
        design = np.stack([p[valid], np.ones(int(valid.sum()))], axis=1)
        (s, t), *_ = np.linalg.lstsq(design, target[valid], rcond=None)
        aligned, scale, shift = A.align(p, g, valid, "affine", space=space)
        assert scale == pytest.approx(s, rel=1e-9) and shift == pytest.approx(t, rel=1e-9, abs=1e-12)
        expected = s * p + t if space == "depth" else 1.0 / np.maximum(s * p + t, 1e-3)
        np.testing.assert_allclose(aligned, expected, rtol=1e-9)


def test_bad_alignment_space_or_mode_lists_the_accepted_values():
    p = np.ones((1, 3))
    with pytest.raises(ValueError, match="affine, scale, median, none"):
        A.align(p, p, ONES, "l1")
    with pytest.raises(ValueError, match="depth, disparity"):
        A.align(p, p, ONES, "scale", space="log")
    with pytest.raises(ValueError, match="width_only, 2d"):
        A.align(p, p, ONES, "median", downsample="bilinear")
    with pytest.raises(ValueError, match="shapes"):
        A.align(p, np.ones((1, 2)), ONES, "none")
    with pytest.raises(ValueError, match="no valid pixel"):
        A.align(p, p, np.zeros((1, 3), bool), "scale")
    with pytest.raises(ValueError, match="median"):
        A.fit_median_scale(np.array([[0.0, 0.0, 1.0]]), p, ONES)


@pytest.mark.parametrize("alignment", ["scale", "median", "none", "affine"])
@pytest.mark.parametrize("space", ["depth", "disparity"])
@pytest.mark.parametrize("n_valid_parity", [0, 1])
def test_tensor_path_equals_numpy_path(alignment, space, n_valid_parity):
    # a second method: the same fit by masked reductions on a tensor (the GPU path)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    p, g = rng.uniform(-0.1, 1, (31, 37)), rng.uniform(0.5, 5, (31, 37))
    valid = rng.uniform(size=p.shape) > 0.4
    if valid.sum() % 2 != n_valid_parity:  # even and odd counts: torch's median differs there
        valid[0, 0] = not valid[0, 0]
    ours_np = A.align(p, g, valid, alignment, space=space)
    ours_t = A.align(torch.from_numpy(p), torch.from_numpy(g), torch.from_numpy(valid), alignment, space=space)
    assert torch.is_tensor(ours_t[0]) and ours_t[0].dtype == torch.float64
    np.testing.assert_allclose(ours_t[0].numpy(), ours_np[0], rtol=1e-12)
    assert ours_t[1:] == pytest.approx(ours_np[1:], rel=1e-12)
