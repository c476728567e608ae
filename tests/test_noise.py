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


def test_tiny_sides_stop_the_pyramid():
    x = multi_resolution_noise((1, 1, 3, 5), generator=torch.Generator().manual_seed(0))
    assert x.shape == (1, 1, 3, 5) and torch.isfinite(x).all()


def test_make_noise_selects_and_rejects():
    shape = (2, 4, 8, 8)
    t = torch.tensor([10, 900])
    for kind, fn in (("gaussian", lambda g: gaussian_noise(shape, generator=g)),
                     ("multires", lambda g: multi_resolution_noise(shape, generator=g)),
                     ("annealed", lambda g: annealed_multi_resolution_noise(shape, t, generator=g))):
        got = make_noise(kind, shape, timesteps=t, generator=torch.Generator().manual_seed(9))
        assert torch.equal(got, fn(torch.Generator().manual_seed(9))), kind
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
