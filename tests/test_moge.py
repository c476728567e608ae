"""MoGe's evaluation (`marigold_bench.eval.moge`): every expected value here was worked out by hand
from MoGe's rules (derivations in the comments), or comes from an independent second method
(a per-cell loop for the subsample, the all-anchors search for the affine fit)."""

import math

import numpy as np
import pytest

from marigold_bench.eval import moge as M

# --- weighted median scale: argmin_a sum w |a p - g| -------------------------------------------


def test_weighted_median_scale_by_hand():
    # ratios g/p = 3, 1, 2 with weights w|p| = 1, 2, 4; sorted 1 (2), 2 (4), 3 (1): the running
    # weight passes half of 7 at ratio 2. Loss at 1, 2, 3: 6, 3, 8.
    assert M.weighted_median_scale([1, 2, 4], [3, 2, 8], [1, 1, 1]) == 2.0


def test_weighted_median_takes_the_lower_end_of_a_flat_optimum():
    # ratios 1, 2, 3, 10 with equal weight: every a in [2, 3] is optimal; MoGe takes 2
    assert M.weighted_median_scale([1, 1, 1, 1], [1, 2, 3, 10], [1, 1, 1, 1]) == 2.0
    # MoGe's weights 1/g: ratios 2, 1, 2 weighted .5, 1, .5: half of 2 is reached at ratio 1 already;
    # the loss is 1 at both a = 1 and a = 2, and the lower one is taken
    assert M.weighted_median_scale([1, 2, 3], [2, 2, 6], [0.5, 0.5, 1 / 6]) == 1.0


def test_weighted_median_with_a_negative_prediction():
    # p = -1 flips sign: ratios -2, 2, 3 weighted 1, 2, 1 -> 2 (loss 5; at 3: 7; at -2: 13)
    assert M.weighted_median_scale([-1, 2, 1], [2, 4, 3], [1, 1, 1]) == 2.0


def test_weighted_median_scale_bad_input():
    with pytest.raises(ValueError, match="length"):
        M.weighted_median_scale([1, 2], [1], [1, 1])
    with pytest.raises(ValueError, match=">= 0"):
        M.weighted_median_scale([1, 2], [1, 2], [1, -1])
    with pytest.raises(ValueError, match="no samples"):
        M.weighted_median_scale([], [], [])


# --- two-point affine L1: argmin_{a,b} sum w |a p + b - g| --------------------------------------


def test_affine_l1_optimum_by_hand():
    # points (0,0) (1,2) (2,3) (4,9), w = 1. Losses of the lines through two points:
    # (0,1): 2, (0,2): 3.5, (0,3) slope 2.25: 1.75, (1,2): 5, (1,3) slope 7/3, shift -1/3:
    # |-1/3| + |14/3 - 1/3 - 3| = 1/3 + 4/3 = 5/3, (2,3): 5. The unique optimum is (7/3, -1/3).
    s, t = M.affine_l1_two_point([0, 1, 2, 4], [0, 2, 3, 9], [1, 1, 1, 1])
    assert s == pytest.approx(7 / 3, rel=1e-14) and t == pytest.approx(-1 / 3, rel=1e-13)


def test_affine_l1_ties_go_to_the_last_anchor():
    # (0,1) (1,2) (2,3) (3,10): every line through (0,1) with slope in [1, 3] has loss 6
    # ((a-1) + 2(a-1) + (9-3a)), so all four anchors tie at 6. Anchors 0-2 find the line
    # (1, 1); anchor 3 (the last, which MoGe keeps) finds its partner (0,1): slope 3, shift 1.
    assert M.affine_l1_two_point([0, 1, 2, 3], [1, 2, 3, 10], [1, 1, 1, 1]) == (3.0, 1.0)


def test_affine_l1_anchor_ignores_samples_with_its_prediction():
    # p = 1, 1, 1, 2; g = 1, 2, 3, 5; w = 1/g. For anchors 0-2 the other two samples at p = 1 have
    # difference 0 and drop out, leaving only (2, 5): loss 0 for each, the last of them (anchor 2,
    # g = 3) wins with partner (2, 5): slope (5 - 3) / (2 - 1) = 2, shift 3 - 2 = 1. (The true L1
    # optimum is the line through (1,2) and (2,5) with a larger loss.)
    g = np.array([1.0, 2.0, 3.0, 5.0])
    assert M.affine_l1_two_point([1, 1, 1, 2], g, 1 / g) == (2.0, 1.0)


def test_affine_l1_constant_prediction_is_degenerate_as_in_moge():
    # every difference is 0: all anchors have loss 0, the last (g = 6) wins, its partner is
    # sample 0 (g = 1), and the zero difference is replaced by 1e-7:
    # scale (1 - 6) / 1e-7 = -5e7, shift 6 - scale * 0.5 = 25000006
    g = np.arange(1.0, 7.0)
    s, t = M.affine_l1_two_point(np.full(6, 0.5), g, 1 / g)
    assert s == pytest.approx(-5e7) and t == pytest.approx(25000006.0)


def test_affine_l1_exact_line_is_recovered():
    p = np.linspace(0, 1, 50)
    g = 3 * p + 2
    assert M.affine_l1_two_point(p, g, 1 / g) == (pytest.approx(3.0), pytest.approx(2.0))


@pytest.mark.parametrize("seed", range(6))
def test_affine_l1_search_equals_trying_every_anchor(seed):
    # a second method: MoGe's search literally, every sample as an anchor
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    g = rng.uniform(1, 10, n)
    p = (g - 1) / 9 + rng.normal(0, 0.05, n)
    if seed % 2:  # clipped and quantised: many equal predictions (quirk 2)
        p = np.round(np.clip(p, 0.1, 0.9) * 40) / 40
    if seed == 4:
        g[: n // 3] = np.round(g[: n // 3])  # repeated ground truth too
    fast = M.affine_l1_two_point(p, g, 1 / g)
    slow = M._affine_l1_all_anchors(p, g, 1 / g)
    assert fast == pytest.approx(slow, rel=1e-12, abs=1e-12)
    # and a third method written here: the weighted L1 loss of every line through two samples.
    # Its minimum is the true optimum (an L1 optimum passes through two samples); MoGe's search
    # reaches it when predictions do not tie, and never goes below it
    w = 1 / g
    i, j = np.triu_indices(n, 1)
    keep = p[i] != p[j]
    i, j = i[keep], j[keep]
    a = (g[j] - g[i]) / (p[j] - p[i])
    b = g[i] - a * p[i]
    best = min(float((w * np.abs(a[k:k + 2000, None] * p + b[k:k + 2000, None] - g)).sum(1).min())
               for k in range(0, len(a), 2000))
    loss = float((w * np.abs(fast[0] * p + fast[1] - g)).sum())
    assert loss >= best * (1 - 1e-9)
    if len(np.unique(p)) == n:
        assert loss == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("n_on,n_off", [(60, 40), (40, 60), (35, 5)])
def test_affine_l1_many_samples_on_one_line_equals_trying_every_anchor(n_on, n_off):
    # more than 32 samples exactly on one line take a shortcut (one anchor stands for them all)
    rng = np.random.default_rng(n_on)
    p = rng.uniform(0, 1, n_on + n_off)
    g = 4 * p + 1
    g[n_on:] += rng.uniform(0.5, 3, n_off) * rng.choice([-1, 1], n_off)
    g = np.abs(g) + 0.1
    fast = M.affine_l1_two_point(p, g, 1 / g)
    assert fast == pytest.approx(M._affine_l1_all_anchors(p, g, 1 / g), rel=1e-12)


def test_affine_l1_bad_input():
    with pytest.raises(ValueError, match="positive weight"):
        M.affine_l1_two_point([1, 2], [1, 2], [0, 0])
    with pytest.raises(ValueError, match="finite"):
        M.affine_l1_two_point([1, np.nan], [1, 2], [1, 1])


# --- the 64x64 masked-nearest subsample ---------------------------------------------------------


def test_subsample_8x8_to_4x4_by_hand():
    # cell size 2: cell (i, j) has centre (2j + 1, 2i + 1) and window rows 2i..2i+1, cols 2j..2j+1.
    # All four pixel centres are 0.5 from it (squared distance 0.5): a tie, so the first valid one
    # in row-major window order is taken.
    valid = np.zeros((8, 8), bool)
    valid[1, 1] = True                  # cell (0, 0): only (1, 1)
    valid[0, 3] = valid[1, 2] = True    # cell (0, 1): (0, 3) comes before (1, 2)
    valid[2:4, 2:4] = True              # cell (1, 1): full, -> (2, 2)
    valid[7, 6] = True                  # cell (3, 3): only (7, 6)
    rows, cols = M.masked_nearest_subsample(valid, size=(4, 4))
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 1), (0, 3), (2, 2), (7, 6)]


def test_subsample_8x8_to_2x2_prefers_the_central_pixels():
    # cell size 4: centre (4j + 2, 4i + 2), window 4x4 from (4i, 4j). The four central pixels are at
    # squared distance 0.5, the eight edge-middle ones at 2.5, the corners at 4.5.
    valid = np.zeros((8, 8), bool)
    valid[0, 0] = valid[3, 3] = valid[1, 3] = True   # cell (0,0): corner, corner, edge (1,3) -> (1,3)
    valid[0:4, 4:8] = True
    valid[1:3, 5:7] = False                          # cell (0,1): no centre pixel; first edge pixel (0,5)
    valid[6, 5] = valid[5, 6] = True                 # cell (1,1): two central pixels; (5,6) is first
    rows, cols = M.masked_nearest_subsample(valid, size=(2, 2))
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 3), (0, 5), (5, 6)]


def test_subsample_rounds_the_window_start_half_to_even():
    # 6 -> 4: cell size 1.5, window 2, centres 0.75, 2.25, 3.75, 5.25; window starts
    # round(0, 1.5, 3, 4.5) = 0, 2, 3, 4 (half to even): nearest columns 0, 2, 3, 5.
    rows, cols = M.masked_nearest_subsample(np.ones((1, 6), bool), size=(1, 4))
    assert cols.tolist() == [0, 2, 3, 5] and rows.tolist() == [0] * 4
    # without column 5 the last cell's window [4, 5] still has column 4 (rounding 4.5 up to 5
    # would give the window [5, 6] and drop the cell)
    valid = np.ones((1, 6), bool)
    valid[0, 5] = False
    assert M.masked_nearest_subsample(valid, size=(1, 4))[1].tolist() == [0, 2, 3, 4]


def test_subsample_of_a_small_mask_repeats_pixels():
    # 2 -> 4: cell size 1, centres 0.25, 0.75, 1.25, 1.75, starts round(-.25, .25, .75, 1.25) = 0, 0, 1, 1
    rows, cols = M.masked_nearest_subsample(np.ones((2, 2), bool), size=(4, 4))
    assert rows.reshape(4, 4)[:, 0].tolist() == [0, 0, 1, 1]
    assert cols.reshape(4, 4)[0].tolist() == [0, 0, 1, 1]


def _subsample_per_cell(valid, size):
    """A second method: the rule written cell by cell in plain Python (exact rationals, no float32)."""
    from fractions import Fraction as F
    h, w = valid.shape
    out = []
    fh, fw = max(F(1), F(h, size[0])), max(F(1), F(w, size[1]))
    for i in range(size[0]):
        for j in range(size[1]):
            cy, cx = (i + F(1, 2)) * h / size[0], (j + F(1, 2)) * w / size[1]
            r0, c0 = round(cy - fh / 2), round(cx - fw / 2)  # Python rounds half to even
            best = None
            for r in range(r0, r0 + math.ceil(fh)):
                for c in range(c0, c0 + math.ceil(fw)):
                    if 0 <= r < h and 0 <= c < w and valid[r, c]:
                        d = (c + F(1, 2) - cx) ** 2 + (r + F(1, 2) - cy) ** 2
                        if best is None or d < best[0]:
                            best = (d, r, c)
            if best:
                out.append(best[1:])
    return out


@pytest.mark.parametrize("shape,size", [((48, 64), (8, 8)), ((37, 53), (8, 8)), ((120, 160), (64, 64)),
                                        ((30, 19), (64, 64)), ((75, 103), (16, 16))])
def test_subsample_equals_the_rule_cell_by_cell(shape, size):
    rng = np.random.default_rng(sum(shape))
    valid = rng.uniform(size=shape) > 0.6
    valid[: shape[0] // 3, : shape[1] // 3] = False  # a hole larger than a cell
    rows, cols = M.masked_nearest_subsample(valid, size=size)
    assert list(zip(rows.tolist(), cols.tolist())) == _subsample_per_cell(valid, size)


# --- alignment by output space and the metrics --------------------------------------------------


def test_disparity_fit_and_its_clamp_at_the_smallest_gt_disparity():
    # valid: g = 1, 2, 4, 8 (disparity 1, .5, .25, .125) and pred = 2/g - 0.1 exactly, so the least
    # squares is scale 0.5, shift 0.05 and the aligned depth is g. The invalid 5th pixel has pred
    # -1: disparity -0.45, clamped at 1/max(g) = 1/8 -> depth 8.
    g = np.array([[1.0, 2.0, 4.0, 8.0, 3.0]])
    pred = np.array([[1.9, 0.9, 0.4, 0.15, -1.0]])
    valid = np.array([[1, 1, 1, 1, 0]], bool)
    aligned, s, t = M.moge_align(pred, g, valid, "disparity_affine_invariant")
    assert (s, t) == (pytest.approx(0.5), pytest.approx(0.05))
    np.testing.assert_allclose(aligned, [[1, 2, 4, 8, 8]], rtol=1e-12)


def test_scale_and_affine_spaces_fit_on_the_subsample():
    # 64x64: the subsample is every pixel once (cell size 1). pred = g/2 except a few outliers:
    # the weighted-L1 scale is exactly 2 (the outliers carry little weight) and the affine fit
    # is exactly (2, 0).
    rng = np.random.default_rng(0)
    g = rng.uniform(1, 5, (64, 64))
    pred = g / 2
    pred[:3, :3] = 100.0
    valid = np.ones_like(g, bool)
    aligned, s, t = M.moge_align(pred, g, valid, "depth_scale_invariant")
    assert (s, t) == (pytest.approx(2.0, rel=1e-14), 0.0)
    aligned, s, t = M.moge_align(pred, g, valid, "depth_affine_invariant")
    assert s == pytest.approx(2.0, rel=1e-12) and t == pytest.approx(0.0, abs=1e-11)
    np.testing.assert_allclose(aligned[3:], g[3:], rtol=1e-12)


def test_metric_depth_is_scored_as_it_is():
    pred = np.array([[1.0, 2.0]], np.float32)
    aligned, s, t = M.moge_align(pred, np.ones((1, 2)), np.ones((1, 2), bool), "depth_metric")
    assert (s, t) == (1.0, 0.0) and aligned.dtype == np.float64
    np.testing.assert_array_equal(aligned, pred)


def test_moge_metrics_by_hand_with_the_negative_inlier_quirk():
    # p = 1, 2, -1, 0 against g = 1, 1, 2, 2:
    # rel = (0 + 1/(1+1e-6) + 3/(2+1e-6) + 2/(2+1e-6)) / 4
    # delta1: max(1,1) = 1 yes; max(.5, 2) = 2 no; max(-2, -.5) = -.5 yes (quirk); p = 0: inf no -> 0.5
    p = np.array([[1.0, 2.0, -1.0, 0.0, 7.0]])
    g = np.array([[1.0, 1.0, 2.0, 2.0, 1.0]])
    valid = np.array([[1, 1, 1, 1, 0]], bool)
    m = M.moge_metrics(p, g, valid)
    assert m["abs_rel"] == pytest.approx((1 / (1 + 1e-6) + 3 / (2 + 1e-6) + 2 / (2 + 1e-6)) / 4, rel=1e-14)
    assert m["delta1"] == 0.5


def test_moge_align_bad_input():
    ones = np.ones((2, 2))
    with pytest.raises(ValueError, match="depth_affine_invariant"):
        M.moge_align(ones, ones, ones.astype(bool), "affine")
    with pytest.raises(ValueError, match="shape"):
        M.moge_align(ones, np.ones((2, 3)), ones.astype(bool), "depth_metric")
    with pytest.raises(ValueError, match="no valid pixel"):
        M.moge_align(ones, ones, np.zeros((2, 2), bool), "depth_scale_invariant")
    with pytest.raises(ValueError, match="no valid pixel"):
        M.moge_metrics(ones, ones, np.zeros((2, 2), bool))


def test_moge_module_imports_without_torch():
    import subprocess
    import sys
    code = "import marigold_bench.eval.moge, marigold_bench.eval.boundary, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_boundary_depth_of_a_disparity_fit_clamps_at_1e_minus_6():
    # as in test_disparity_fit...: scale 0.5, shift 0.05; the 5th pixel's disparity -0.45 is clamped
    # at 1e-6 (depth 1e6) for the boundary metric, at 1/8 for rel and delta1
    g = np.array([[1.0, 2.0, 4.0, 8.0, 3.0]])
    pred = np.array([[1.9, 0.9, 0.4, 0.15, -1.0]])
    valid = np.array([[1, 1, 1, 1, 0]], bool)
    depth = M.moge_boundary_depth(pred, g, valid, "disparity_affine_invariant")
    np.testing.assert_allclose(depth, [[1, 2, 4, 8, 1e6]], rtol=1e-9)
    affine = M.moge_boundary_depth(g, g, valid, "depth_affine_invariant")
    np.testing.assert_allclose(affine, g, rtol=1e-12)
