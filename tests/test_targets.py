"""Training targets and objective (train/targets.py): normalisation, latent mask, v-target, loss."""

import numpy as np
import pytest
import torch

from marigold_bench.model.tiny import build_tiny_components, tiny_scheduler_config
from marigold_bench.train import targets
from marigold_bench.train.export import training_scheduler


def test_known_percentiles_map_to_plus_minus_one():
    # valid depths 1, 2, ..., 101: linear-interpolated 2 % quantile = 1 + 0.02 * 100 = 3,
    # 98 % quantile = 1 + 0.98 * 100 = 99; so 3 -> -1, 99 -> +1, 51 -> 0, 27 -> -0.5
    depth = torch.cat([torch.arange(1, 102, dtype=torch.float32), torch.tensor([1000.0, 0.0])])[None, None, None]
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[..., -2:] = False  # a far outlier and a hole that must not move the quantiles
    out = targets.normalize_depth(depth, valid)
    assert out.shape == depth.shape
    v = out[0, 0, 0]
    assert v[2] == pytest.approx(-1.0) and v[98] == pytest.approx(1.0)
    assert v[50] == pytest.approx(0.0, abs=1e-6) and v[26] == pytest.approx(-0.5)
    assert v[0] == -1.0 and v[100] == 1.0  # clipped
    assert v[101] == 1.0 and v[102] == 1.0  # invalid -> far plane


def test_per_image_normalisation_and_degenerate_images():
    depth = torch.stack([torch.full((4, 4), 2.0), torch.linspace(1, 16, 16).reshape(4, 4)])
    valid = torch.ones_like(depth, dtype=torch.bool)
    out = targets.normalize_depth(depth, valid)  # (B, H, W) input works too
    assert out.shape == (2, 1, 4, 4)
    assert torch.all(out[0] == 0)  # constant depth: no span, middle of the range
    assert out[1].min() == -1 and out[1].max() == 1
    with pytest.raises(ValueError, match="no valid depth"):
        targets.normalize_depth(depth, torch.zeros_like(valid))


def test_latent_mask_needs_every_pixel_valid():
    valid = torch.ones(1, 1, 8, 12, dtype=torch.bool)
    valid[0, 0, 1, 2] = False   # inside latent pixel (0, 0)
    valid[0, 0, 7, 11] = False  # inside latent pixel (1, 2)
    mask = targets.latent_mask(valid, factor=4)
    assert mask.shape == (1, 4, 2, 3)
    expected = torch.tensor([[False, True, True], [True, True, False]])
    for c in range(4):
        assert torch.equal(mask[0, c], expected)


def test_v_target_equals_hand_computed_velocity():
    cfg = tiny_scheduler_config()
    # SD-v2's "scaled_linear" betas, computed by hand
    betas = np.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    scheduler = training_scheduler(cfg)
    torch.manual_seed(0)
    x0, noise = torch.randn(3, 4, 6, 8), torch.randn(3, 4, 6, 8)
    t = torch.tensor([0, 421, 999])
    got = targets.v_target(scheduler, x0, noise, t)
    a = torch.tensor(np.sqrt(alphas_cumprod[t.numpy()]), dtype=torch.float32).view(-1, 1, 1, 1)
    s = torch.tensor(np.sqrt(1 - alphas_cumprod[t.numpy()]), dtype=torch.float32).view(-1, 1, 1, 1)
    torch.testing.assert_close(got, a * noise - s * x0, rtol=1e-5, atol=1e-5)


def test_zero_snr_schedule_makes_the_last_step_pure_noise():
    scheduler = training_scheduler(tiny_scheduler_config(), "trailing", zero_snr=True)
    x0, noise = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    t = torch.tensor([999])
    torch.testing.assert_close(scheduler.add_noise(x0, noise, t), noise, rtol=0, atol=1e-3)
    torch.testing.assert_close(targets.v_target(scheduler, x0, noise, t), -x0, rtol=0, atol=1e-3)


def test_masked_mse_by_hand():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])[None, None]
    mask = torch.tensor([[True, False], [True, True]])[None, None]
    assert float(targets.masked_mse(pred, target, mask)) == pytest.approx((1 + 9 + 16) / 3)
    assert float(targets.masked_mse(pred, target, torch.zeros_like(mask))) == 0.0


def test_encode_uses_posterior_mean_times_scaling_factor():
    vae = build_tiny_components(seed=0)["vae"].eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        moments = vae.quant_conv(vae.encoder(x)) if vae.quant_conv is not None else vae.encoder(x)
    mean = moments[:, :4]
    torch.testing.assert_close(targets.encode(vae, x), mean * vae.config.scaling_factor)
    depth = torch.rand(2, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(targets.encode_depth(vae, depth), targets.encode(vae, depth.repeat(1, 3, 1, 1)))
    assert targets.vae_factor(vae) == 4


def test_rgb_to_unit_range():
    rgb = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 2, 2, 3)
    x = targets.rgb_to_unit_range(rgb)
    assert x.shape == (1, 3, 2, 2)
    assert x[0, 0, 0, 0] == -1 and x[0, 1, 0, 0] == 1 and x[0, 2, 0, 0] == pytest.approx(51 / 127.5 - 1)
