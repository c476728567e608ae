"""Boundary F1 (`marigold_bench.eval.boundary`): step edges and flat maps with values counted by
hand, and a direct transcription of the definition as a second method on random maps."""

import numpy as np
import pytest

from marigold_bench.eval.boundary import THRESHOLDS, boundary_f1, disc_offsets


def step(h, w, col, high=2.0):
    d = np.ones((h, w))
    d[:, col:] = high
    return d


def test_disc_offsets_counted_by_hand():
    assert sorted(disc_offsets(1)) == [(-1, 0), (0, -1), (0, 1), (1, 0)]
    # radius 2: the 4 at distance 1, the 4 diagonals (sqrt 2), the 4 at distance 2
    assert len(disc_offsets(2)) == 12
    # radius 3: 29 lattice points in the disc of radius 3, less the centre
    assert len(disc_offsets(3)) == 28


def test_thresholds():
    np.testing.assert_allclose(THRESHOLDS, 0.05 + np.arange(10) * 0.2 / 9, rtol=1e-6)


def test_a_step_edge_found_exactly_scores_one():
    gt = step(6, 8, 4)
    valid = np.ones_like(gt, bool)
    for r in (1, 2):
        assert boundary_f1(gt.copy(), gt, valid, radius=r) == 1.0


def test_a_step_edge_in_the_wrong_place_scores_zero():
    # radius 1, 6x8, interior centres rows 1-4, cols 1-6. The ground truth's edges are the pairs
    # (r, 3) -> (r, 4) (ratio 2); the prediction's are (r, 4) -> (r, 5): none shared.
    gt, pred = step(6, 8, 4), step(6, 8, 5)
    assert boundary_f1(pred, gt, np.ones_like(gt, bool)) == 0.0


def test_a_half_found_step_edge_by_hand():
    # pred has the step at column 4 in rows 0-2 and at column 5 in rows 3-5. Radius 1 pairs:
    # gt edges: (r, 3) -> (r, 4) for r = 1..4: 4 pairs.
    # pred edges: (1, 3) -> (1, 4), (2, 3) -> (2, 4)  [shared: 2]; (3, 4) -> (3, 5), (4, 4) -> (4, 5);
    # and vertically (3, 4) -> (2, 4) (1 -> 2): 5 pairs.
    # precision 2/5, recall 2/4, F1 = 2 * .4 * .5 / .9 = 4/9 at every threshold (ratio 2 > 1.25).
    gt = step(6, 8, 4)
    pred = gt.copy()
    pred[3:, 4] = 1.0
    assert boundary_f1(pred, gt, np.ones_like(gt, bool)) == pytest.approx(4 / 9, rel=1e-12)


def test_a_weak_step_counts_only_at_the_low_thresholds():
    # the prediction's step is a ratio of 1.1: an edge for t = 0.05, 0.0722, 0.0944 (F1 = 1) and not
    # above (F1 = 0): weighted mean (0.05 + 0.07222 + 0.09444) / 1.5 = 0.144444
    gt, pred = step(6, 8, 4), step(6, 8, 4, high=1.1)
    expected = (0.05 + (0.05 + 0.2 / 9) + (0.05 + 0.4 / 9)) / 1.5
    assert boundary_f1(pred, gt, np.ones_like(gt, bool)) == pytest.approx(expected, rel=1e-6)


def test_flat_maps_score_zero():
    # MoGe's convention: no ground-truth edge at a threshold gives F1 = 0 there, so a flat ground
    # truth scores 0 even for a perfect (flat) prediction
    flat = np.full((10, 12), 3.0)
    valid = np.ones_like(flat, bool)
    assert boundary_f1(flat, flat, valid) == 0.0
    assert boundary_f1(step(10, 12, 6), flat, valid) == 0.0
    # and a flat prediction of a real edge finds none of it
    assert boundary_f1(flat, step(10, 12, 6), valid) == 0.0


def test_invalid_pixels_break_pairs():
    # the ground truth's only edge pairs are (r, 3) -> (r, 4): with column 4 (or 3) invalid it has
    # no edge left, so F1 = 0 whatever the prediction
    gt = step(6, 8, 4)
    for col in (3, 4):
        valid = np.ones_like(gt, bool)
        valid[:, col] = False
        assert boundary_f1(gt.copy(), gt, valid) == 0.0
    # an edge between two valid columns survives a hole beside it: (r, 4) -> (r, 5), column 3 invalid
    valid = np.ones_like(gt, bool)
    valid[:, 3] = False
    assert boundary_f1(step(6, 8, 5), step(6, 8, 5), valid) == 1.0


def test_too_small_an_image_scores_zero_and_bad_input_raises():
    assert boundary_f1(np.ones((2, 5)), np.ones((2, 5)), np.ones((2, 5), bool), radius=1) == 0.0
    with pytest.raises(ValueError, match="shape"):
        boundary_f1(np.ones((4, 4)), np.ones((4, 5)), np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="radius"):
        boundary_f1(np.ones((4, 4)), np.ones((4, 4)), np.ones((4, 4), bool), radius=0)


def _boundary_f1_by_definition(pred, gt, valid, radius):
    """A second method: the definition transcribed pair by pair (one boolean map per offset and
    threshold), float32 ratios as in MoGe."""
    p, g = pred.astype(np.float32), gt.astype(np.float32)
    h, w = p.shape
    r = radius
    total = 0.0
    for t in THRESHOLDS:
        limit = np.float32(1 + t)
        tp = n_p = n_g = 0
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dy * dy + dx * dx > r * r:
                    continue
                c = (slice(r, h - r), slice(r, w - r))
                n = (slice(r + dy, h - r + dy), slice(r + dx, w - r + dx))
                ok = valid[c] & valid[n]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ep, eg = (p[n] / p[c] > limit) & ok, (g[n] / g[c] > limit) & ok
                tp, n_p, n_g = tp + (ep & eg).sum(), n_p + ep.sum(), n_g + eg.sum()
        prec, rec = tp / max(n_g, 1e-12), tp / max(n_p, 1e-12)
        total += t * 2 * prec * rec / max(prec + rec, 1e-12)
    return total / THRESHOLDS.sum()


@pytest.mark.parametrize("noise", [0.0, 0.004, 0.05])  # few edges (binned) and many (counted)
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_equals_the_definition_on_random_maps(noise, radius):
    rng = np.random.default_rng(radius)
    h, w = 57, 83
    yy, xx = np.mgrid[:h, :w]
    gt = 2 + 3 * (xx > 40) + (yy > 20) * 0.5 + rng.uniform(0, 0.03, (h, w))
    pred = gt * rng.uniform(1 - noise, 1 + noise, (h, w))
    pred[rng.uniform(size=(h, w)) < 0.01] *= -1   # negative depths and zeros are used as they are
    pred[5, :10] = 0
    valid = rng.uniform(size=(h, w)) > 0.2
    assert boundary_f1(pred, gt, valid, radius) == pytest.approx(
        _boundary_f1_by_definition(pred, gt, valid, radius), rel=1e-12)
