"""Training targets: normalised depth, latents, the latent loss mask and the v-prediction loss.

Marigold's recipe (Ke et al., CVPR 2024, Sec. 3; ``configs/marigold-sd2.yaml`` holds its numbers):

* depth of each image is mapped affinely so that the 2 % / 98 % quantiles of its *valid* pixels
  land on -1 / +1, clipped to [-1, 1]; invalid pixels go to the far plane (+1);
* the normalised depth is repeated to 3 channels and encoded like the image: VAE posterior mean
  times the VAE's scaling factor;
* a latent pixel counts in the loss only when every image pixel under it is valid;
* the UNet predicts v = sqrt(alpha_bar_t) * noise - sqrt(1 - alpha_bar_t) * x0 and the loss is
  the MSE over the valid latent elements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from marigold_bench.model.noise import make_noise


def normalize_depth(depth: torch.Tensor, valid: torch.Tensor, low: float = 0.02, high: float = 0.98,
                    eps: float = 1e-6) -> torch.Tensor:
    """Per-image quantile normalisation of depth to [-1, 1].

    Args:
        depth: (B, 1, H, W) or (B, H, W) metres.
        valid: boolean of the same shape; only these pixels set the quantiles.
        low, high: the quantiles mapped to -1 and +1.

    Returns:
        float32 (B, 1, H, W): clipped to [-1, 1], invalid pixels +1. An image whose valid depth is
        constant maps to 0 there (the span is floored at ``eps``). Images without any valid pixel
        must be removed before (the data pipeline skips and counts them).
    """
    if depth.dim() == 3:
        depth, valid = depth[:, None], valid[:, None]
    depth = depth.to(torch.float32)
    valid = valid.to(torch.bool)
    out = torch.ones_like(depth)
    for b in range(depth.shape[0]):
        values = depth[b][valid[b]]
        if values.numel() == 0:
            raise ValueError(f"image {b} of the batch has no valid depth pixel")
        q = torch.quantile(values, torch.tensor([low, high], dtype=values.dtype, device=values.device))
        lo, hi = q[0], q[1]
        norm = (depth[b] - lo) / torch.clamp(hi - lo, min=eps) * 2.0 - 1.0
        if hi - lo < eps:
            norm = torch.zeros_like(norm)
        out[b] = torch.where(valid[b], norm.clamp(-1.0, 1.0), torch.ones_like(norm))
    return out


def rgb_to_unit_range(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) or (B, 3, H, W) uint8 -> float32 (B, 3, H, W) in [-1, 1]."""
    x = rgb_uint8
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    return x.to(torch.float32) / 127.5 - 1.0


def vae_factor(vae) -> int:
    """Spatial downsampling of an AutoencoderKL (8 for SD's, 4 for the tiny one)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode(vae, x: torch.Tensor) -> torch.Tensor:
    """VAE posterior mean times the scaling factor; ``x`` is (B, 3, H, W) in [-1, 1]."""
    x = x.to(device=vae.device, dtype=vae.dtype)
    return vae.encode(x).latent_dist.mean * vae.config.scaling_factor


def encode_depth(vae, depth_norm: torch.Tensor) -> torch.Tensor:
    """Latent of a normalised (B, 1, H, W) depth map: repeated to 3 channels, then encoded."""
    return encode(vae, depth_norm.repeat(1, 3, 1, 1))


def latent_mask(valid: torch.Tensor, factor: int, channels: int = 4) -> torch.Tensor:
    """Boolean (B, channels, H/f, W/f): True where all f x f pixels under a latent pixel are valid."""
    if valid.dim() == 3:
        valid = valid[:, None]
    invalid = (~valid.to(torch.bool)).to(torch.float32)
    any_invalid = F.max_pool2d(invalid, kernel_size=factor, stride=factor)
    return (any_invalid < 0.5).repeat(1, channels, 1, 1)


def v_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The v-prediction target, as the diffusers scheduler computes it."""
    return scheduler.get_velocity(x0, noise, timesteps)


def v_prediction_step(unet, noise_scheduler, cond_latent: torch.Tensor, x0_latent: torch.Tensor,
                      empty_embedding: torch.Tensor, generator: torch.Generator, noise_kind: str,
                      noise_strength: float, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """One v-prediction step of the Marigold objective, shared by the depth and normals tasks.

    Draws uniform timesteps, then ``noise_kind`` noise for them, from ``generator`` (CPU, in that
    order: resumed runs replay it), noises ``x0_latent``, and has the UNet predict v from
    [``cond_latent``, noisy latent] and the empty prompt.

    Returns:
        ``(prediction, target)``: the UNet's v and the scheduler's velocity of ``x0_latent``.
    """
    device = empty_embedding.device
    n, num_train_timesteps = x0_latent.shape[0], noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, num_train_timesteps, (n,), generator=generator)
    noise = make_noise(noise_kind, x0_latent.shape, timesteps=timesteps, generator=generator,
                       strength=noise_strength, num_train_timesteps=num_train_timesteps)
    timesteps, noise = timesteps.to(device), noise.to(device)
    noisy_latent = noise_scheduler.add_noise(x0_latent, noise, timesteps)
    target = v_target(noise_scheduler, x0_latent, noise, timesteps)
    with autocast():
        pred = unet(torch.cat([cond_latent, noisy_latent], dim=1), timesteps,
                    empty_embedding.expand(n, -1, -1)).sample
    return pred, target


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the elements where ``mask`` is True (0 when none is)."""
    mask = mask.to(torch.bool)
    diff = (pred.float() - target.float())[mask]
    if diff.numel() == 0:
        return pred.sum() * 0.0
    return (diff**2).mean()


__all__ = ["normalize_depth", "rgb_to_unit_range", "vae_factor", "encode", "encode_depth", "latent_mask",
           "v_target", "v_prediction_step", "masked_mse"]
