"""Training noise: Gaussian, multi-resolution and annealed multi-resolution (model/noise.py)."""

import pytest
import torch
import torch.nn.functional as F

from marigold_bench.model.noise import (annealed_multi_resolution_noise, gaussian_noise, make_noise,
                                        multi_resolution_noise)

SHAPE = (4, 4, 48, 64)


def neighbour_correlation(x: torch.Tensor) -> float:
    """Pearson correlation of horizontally adjacent values."""
    a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def test_gaussian_is_standard_normal():
    x = gaussian_noise(SHAPE, generator=torch.Generator().manual_seed(0))
    assert x.shape == SHAPE and x.dtype == torch.float32
    assert abs(float(x.mean())) < 0.02
    assert abs(float(x.std()) - 1.0) < 0.02


def test_multires_has_unit_variance_and_is_seeded():
    x = multi_resolution_noise(SHAPE, generator=torch.Generator().manual_seed(1))
    assert x.shape == SHAPE
    assert abs(float(x.std()) - 1.0) < 1e-5  # divided by the std of the whole tensor
    y = multi_resolution_noise(SHAPE, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, y)
    z = multi_resolution_noise(SHAPE, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(x, z)


def test_multires_is_spatially_correlated_unlike_gaussian():
    g = gaussian_noise(SHAPE, generator=torch.Generator().manual_seed(3))
    m = multi_resolution_noise(SHAPE, generator=torch.Generator().manual_seed(3))
    assert abs(neighbour_correlation(g)) < 0.05
    assert neighbour_correlation(m) > 0.3
    # low frequencies: a 8x8 average keeps far more of the multi-resolution noise's energy
    assert F.avg_pool2d(m, 8).var() > 5 * F.avg_pool2d(g, 8).var()


def replay_two_full_resolution_gaussians(shape, seed):
    """What the noise module documents it draws first: a Gaussian, r for level 0, a second
    full-resolution Gaussian (level 0 has weight s**0 = 1)."""
    g = torch.Generator().manual_seed(seed)
    first = torch.randn(shape, generator=g)
    torch.rand((), generator=g)
    second = torch.randn(shape, generator=g)
    total = first + second
    return total / total.std()


def test_annealed_at_t0_is_gaussian_as_defined():
    shape = (2, 4, 24, 32)
    x = annealed_multi_resolution_noise(shape, torch.zeros(2, dtype=torch.long),
                                        generator=torch.Generator().manual_seed(5))
    expected = replay_two_full_resolution_gaussians(shape, 5)
    torch.testing.assert_close(x, expected, rtol=1e-6, atol=1e-6)
    assert abs(neighbour_correlation(x)) < 0.05


def test_annealed_at_t_max_matches_multires_and_strength_is_per_sample():
    shape = (2, 4, 24, 32)
    full = annealed_multi_resolution_noise(shape, torch.full((2,), 1000), generator=torch.Generator().manual_seed(6))
    ref = multi_resolution_noise(shape, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(full, ref, rtol=1e-5, atol=1e-5)
    mixed = annealed_multi_resolution_noise((2, 4, 48, 64), torch.tensor([0, 999]),
                                            generator=torch.Generator().manual_seed(7))
    assert neighbour_correlation(mixed[1]) > neighbour_correlation(mixed[0]) + 0.2


def replay_pyramid(shape, per_sample_strength, seed):
    """Multi-resolution noise written out from the paper's description, with its own loop: a Gaussian; per
    level i an r = 2 + 2u in [2, 4), the running size shrunk to floor(size / r**i) (at least 1),
    a Gaussian of that size upsampled bilinearly and weighted by s_b ** i; stop when a side is 1;
    divide by the std of the whole batch. Draws in the order the noise module documents."""
    b, c, height, width = shape
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(per_sample_strength, dtype=torch.float64).reshape(b, 1, 1, 1)
    total = torch.randn(shape, generator=g).double()
    h, w = height, width
    for i in range(10):
        r = 2 + 2 * torch.rand((), generator=g).item()
        h, w = max(1, int(h / r**i)), max(1, int(w / r**i))
        coarse = torch.randn((b, c, h, w), generator=g)
        total = total + F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False).double() * s**i
        if h == 1 or w == 1:
            break
    return (total / total.std()).float()


def test_annealed_strength_is_0_9_t_over_T_per_sample():
    """The strength schedule itself: sample b at timestep t_b gets s = 0.9 * t_b / 1000, checked
    against the replay above at several timesteps (and the replay tells neighbouring schedules apart)."""
    shape = (5, 4, 40, 56)
    t = torch.tensor([0, 1, 250, 500, 999])
    got = annealed_multi_resolution_noise(shape, t, num_train_timesteps=1000, strength=0.9,
                                          generator=torch.Generator().manual_seed(21))
    expected = replay_pyramid(shape, [0.9 * float(x) / 1000 for x in t], 21)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # another strength or another T give other noise: the comparison above can fail
    for wrong in ([0.9 * (float(x) + 1) / 1000 for x in t], [0.9 * float(x) / 999 for x in t],
                  [0.9] * 5):
        assert (replay_pyramid(shape, wrong, 21) - expected).abs().max() > 1e-3
    # the configured strength and T reach it too
    got = annealed_multi_resolution_noise(shape, t, num_train_timesteps=500, strength=0.6,
                                          generator=torch.Generator().manual_seed(21))
    torch.testing.assert_close(got, replay_pyramid(shape, [0.6 * float(x) / 500 for x in t], 21),
                               rtol=1e-5, atol=1e-5)


def test_multires_matches_the_replay():
    shape = (2, 4, 24, 32)
    got = multi_resolution_noise(shape, generator=torch.Generator().manual_seed(8), strength=0.9)
    torch.testing.assert_close(got, replay_pyramid(shape, [0.9, 0.9], 8), rtol=1e-5, atol=1e-5)


def test_tiny_sides_stop_the_pyramid():
    x = multi_resolution_noise((1, 1, 3, 5), generator=torch.Generator().manual_seed(0))
    assert x.shape == (1, 1, 3, 5) and torch.isfinite(x).all()


def test_make_noise_selects_and_rejects():
    shape = (2, 4, 8, 8)
    t = torch.tensor([10, 900])
    # each kind against an independent construction, not the function make_noise calls
    for kind, expected in (("gaussian", torch.randn(shape, generator=torch.Generator().manual_seed(9))),
                           ("multires", replay_pyramid(shape, [0.9, 0.9], 9)),
                           ("annealed", replay_pyramid(shape, [0.9 * 10 / 1000, 0.9 * 900 / 1000], 9))):
        got = make_noise(kind, shape, timesteps=t, generator=torch.Generator().manual_seed(9))
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=kind)
    with pytest.raises(ValueError, match="unknown noise kind"):
        make_noise("pink", shape)
    with pytest.raises(ValueError, match="timesteps"):
        make_noise("annealed", shape)
    with pytest.raises(ValueError, match="one timestep per sample"):
        annealed_multi_resolution_noise(shape, torch.tensor([1, 2, 3]))


def test_dtype_and_device_of_result():
    x = make_noise("multires", (1, 4, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.bfloat16,
                   device="cpu")
    assert x.dtype == torch.bfloat16 and x.device.type == "cpu"
