"""The training objective (``trainer.marigold_loss``) against a recomputation by hand.

Spies record what reaches the noise maker, the scheduler and the UNet; the loss is then rebuilt
from the recipe (configs/marigold-sd2.yaml, the paper's Sec. 3) with numpy quantiles, SD-v2's betas written out, the v-target
formula and a block-wise mask -- only the frozen VAE and the UNet themselves are shared.
"""

import numpy as np
import pytest
import torch

from marigold_bench.model.pipeline import training_scheduler
from marigold_bench.model.tiny import build_tiny_components
from marigold_bench.train import targets, trainer

H, W, F = 16, 24, 4  # the tiny VAE halves twice: 4x6 latents


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    c = build_tiny_components(seed=3, in_channels=8)
    c["unet"].eval(), c["vae"].eval()
    schedule = dict(c["scheduler"].config)
    ddpm = training_scheduler(schedule)  # SD-v2's scaled-linear betas, leading spacing, no zero-SNR
    embedding = torch.randn(1, 2, c["unet"].config.cross_attention_dim)
    return c["unet"], c["vae"], ddpm, embedding


def make_batch():
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (2, 3, H, W), dtype=np.uint8)
    depth = rng.uniform(0.5, 9.0, (2, 1, H, W)).astype(np.float32)
    valid = np.ones((2, 1, H, W), bool)
    valid[0, 0, 2, 5] = False       # one pixel knocks out latent (0, 1) of image 0
    valid[1, 0, 8:, 16:] = False    # a block: latents rows 2-3, cols 4-5 of image 1
    return {"rgb": torch.from_numpy(rgb), "depth": torch.from_numpy(depth), "valid": torch.from_numpy(valid)}


class Spy:
    """Wraps a callable and keeps the arguments and result of every call."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kwargs):
        out = self.fn(*args, **kwargs)
        self.calls.append((args, kwargs, out))
        return out


def run_with_spies(monkeypatch, parts, kind="annealed", strength=0.9, seed=5):
    unet, vae, ddpm, embedding = parts
    noise_spy = Spy(targets.make_noise)   # the shared v-prediction step draws the noise
    monkeypatch.setattr(targets, "make_noise", noise_spy)
    add_spy, velocity_spy = Spy(ddpm.add_noise), Spy(ddpm.get_velocity)
    monkeypatch.setattr(ddpm, "add_noise", add_spy)
    monkeypatch.setattr(ddpm, "get_velocity", velocity_spy)
    unet_inputs = []
    hook = unet.register_forward_pre_hook(lambda m, args, kwargs: unet_inputs.append((args, kwargs)),
                                          with_kwargs=True)
    try:
        with torch.no_grad():
            loss = trainer.marigold_loss(unet, vae, ddpm, embedding, make_batch(),
                                         torch.Generator().manual_seed(seed), kind, strength)
    finally:
        hook.remove()
    return loss, noise_spy, add_spy, velocity_spy, unet_inputs


def sd2_alphas_cumprod() -> np.ndarray:
    """SD-v2's schedule by hand: betas linear in sqrt space from 0.00085 to 0.012, 1000 steps."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def normalise_by_hand(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.ones_like(depth, dtype=np.float64)
    for b in range(depth.shape[0]):
        lo, hi = np.quantile(depth[b][valid[b]].astype(np.float64), [0.02, 0.98])
        norm = np.clip((depth[b] - lo) / (hi - lo) * 2 - 1, -1, 1)
        out[b] = np.where(valid[b], norm, 1.0)
    return out


def mask_by_hand(valid: np.ndarray) -> np.ndarray:
    b, _, h, w = valid.shape
    blocks = valid.reshape(b, 1, h // F, F, w // F, F).all(axis=(3, 5))
    return np.repeat(blocks, 4, axis=1)


def test_loss_equals_the_recipe_recomputed_by_hand(monkeypatch, parts):
    unet, vae, ddpm, embedding = parts
    loss, noise_spy, add_spy, velocity_spy, unet_inputs = run_with_spies(monkeypatch, parts, "annealed", 0.9, seed=5)
    batch = make_batch()
    rgb, depth, valid = (batch[k].numpy() for k in ("rgb", "depth", "valid"))

    # timesteps: uniform in [0, 1000) from the step's generator, drawn first
    t = torch.randint(0, 1000, (2,), generator=torch.Generator().manual_seed(5))
    (_, noise_kwargs, noise), = noise_spy.calls
    assert torch.equal(noise_kwargs["timesteps"], t)
    # one noise, one set of timesteps: noise maker, add_noise, the v-target and the UNet agree
    (add_args, _, noisy_seen), = add_spy.calls
    (vel_args, _, _), = velocity_spy.calls
    assert add_args[1] is noise and vel_args[1] is noise
    assert torch.equal(add_args[2], t) and torch.equal(vel_args[2], t)
    assert torch.equal(add_args[0], vel_args[0])  # the same clean depth latent
    (unet_args, _), = unet_inputs
    assert torch.equal(unet_args[1], t)

    with torch.no_grad():
        sf = vae.config.scaling_factor
        rgb_latent = vae.encode(torch.from_numpy(rgb / 127.5 - 1.0).float()).latent_dist.mean * sf
        depth3 = np.repeat(normalise_by_hand(depth, valid), 3, axis=1)
        x0 = vae.encode(torch.from_numpy(depth3).float()).latent_dist.mean * sf
    torch.testing.assert_close(add_args[0], x0, rtol=1e-5, atol=1e-5)

    abar = torch.from_numpy(sd2_alphas_cumprod()[t.numpy()]).float().reshape(-1, 1, 1, 1)
    noisy = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    v = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    torch.testing.assert_close(noisy_seen, noisy, rtol=1e-5, atol=1e-5)
    # image latent first, then the noisy depth latent
    torch.testing.assert_close(unet_args[0], torch.cat([rgb_latent, noisy], dim=1), rtol=1e-5, atol=1e-5)

    mask = torch.from_numpy(mask_by_hand(valid))
    assert not mask[0, :, 0, 1].any() and not mask[1, :, 2:, 4:].any() and mask.sum() == 4 * (48 - 1 - 4)
    with torch.no_grad():
        pred = unet(torch.cat([rgb_latent, noisy], dim=1), t, embedding.expand(2, -1, -1)).sample
        swapped = unet(torch.cat([noisy, rgb_latent], dim=1), t, embedding.expand(2, -1, -1)).sample
    expected = ((pred - v)[mask] ** 2).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    # and the recomputation could tell: the other order, or no mask, give other numbers
    assert abs(float(((swapped - v)[mask] ** 2).mean()) - float(loss)) > 1e-3 * float(loss)
    assert abs(float(((pred - v) ** 2).mean()) - float(loss)) > 1e-4 * float(loss)


@pytest.mark.parametrize("kind,strength", [("gaussian", 0.9), ("multires", 0.7), ("annealed", 0.5)])
def test_the_configured_noise_kind_reaches_the_noise_maker(monkeypatch, parts, kind, strength):
    _, noise_spy, add_spy, _, _ = run_with_spies(monkeypatch, parts, kind, strength)
    (args, kwargs, noise), = noise_spy.calls
    assert args[0] == kind and kwargs["strength"] == strength and kwargs["num_train_timesteps"] == 1000
    assert tuple(args[1]) == (2, 4, H // F, W // F)
    assert add_spy.calls[0][0][1] is noise
