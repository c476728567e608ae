"""Noise for the diffusion forward process: Gaussian, multi-resolution and annealed multi-resolution.

Marigold trains with *annealed multi-resolution noise* (paper Sec. 3.3, Table 2): a pyramid of
Gaussian noise at decreasing resolutions, upsampled and summed, whose low-frequency share grows
with the timestep. At inference the starting noise is plain Gaussian.

Every function draws from ``generator`` when one is given (on the generator's device) and then
moves the result to ``device``/``dtype``, so a seed gives the same noise whatever the target
device. The order of the draws is part of the contract (tests replay it):

1. one full-resolution standard normal tensor of ``shape``;
2. for each level ``i = 0, 1, ...``: one uniform scalar ``u`` (``r = 2 + 2u``), then one standard
   normal tensor of the level's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NOISE_KINDS = ("gaussian", "multires", "annealed")

#: Most pyramid levels drawn (level 0 included); the loop stops earlier once a side reaches 1.
MAX_LEVELS = 10


def _draw_device(generator: torch.Generator | None, device) -> torch.device:
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def gaussian_noise(shape, generator: torch.Generator | None = None, device=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` (B, C, H, W)."""
    noise = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, device))
    return noise.to(device=device or noise.device, dtype=dtype)


def _pyramid(shape, strength: torch.Tensor, generator, draw_device) -> torch.Tensor:
    """Sum of the noise pyramid (float32, on ``draw_device``), before normalisation.

    ``strength`` is a tensor broadcastable to (B, 1, 1, 1): one value or one per sample.
    """
    b, c, height, width = shape
    noise = torch.randn((b, c, height, width), generator=generator, device=draw_device)
    h, w = height, width
    for i in range(MAX_LEVELS):
        r = 2.0 + 2.0 * torch.rand((), generator=generator, device=draw_device).item()  # [2, 4)
        h, w = max(1, int(h / r**i)), max(1, int(w / r**i))
        level = torch.randn((b, c, h, w), generator=generator, device=draw_device)
        level = F.interpolate(level, size=(height, width), mode="bilinear", align_corners=False)
        noise = noise + level * strength**i
        if h == 1 or w == 1:
            break
    return noise


def multi_resolution_noise(shape, generator: torch.Generator | None = None, strength: float = 0.9,
                           device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Multi-resolution (pyramid) noise, normalised by the standard deviation of the whole tensor.

    Start from a full-resolution Gaussian; for level ``i = 0 .. 9`` draw ``r`` uniformly in
    [2, 4) (one draw for the whole batch), shrink the running size to ``floor(size / r**i)``
    (at least 1, so sizes shrink cumulatively), add a bilinearly upsampled Gaussian of that size
    weighted by ``strength**i``, and stop once a side reaches 1. Level 0 adds a second
    full-resolution Gaussian.

    Args:
        shape: (B, C, H, W).
        generator: source of randomness; its device is where the noise is drawn.
        strength: the discount ``s`` of coarser levels (0.9 in Marigold).
        device, dtype: of the returned tensor.
    """
    draw_device = _draw_device(generator, device)
    noise = _pyramid(shape, torch.tensor(float(strength), device=draw_device), generator, draw_device)
    noise = noise / noise.std()
    return noise.to(device=device or draw_device, dtype=dtype)


def annealed_multi_resolution_noise(shape, timesteps, num_train_timesteps: int = 1000,
                                    generator: torch.Generator | None = None, strength: float = 0.9,
                                    device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Multi-resolution noise whose strength for sample ``b`` is ``strength * t_b / T``.

    At ``t = 0`` only the two full-resolution Gaussians have weight (``0**0 = 1``), so the noise
    is Gaussian; at ``t -> T`` it approaches :func:`multi_resolution_noise`.
    """
    draw_device = _draw_device(generator, device)
    t = torch.as_tensor(timesteps, device=draw_device).reshape(-1).to(torch.float32)
    if t.numel() not in (1, shape[0]):
        raise ValueError(f"need one timestep per sample ({shape[0]}), got {t.numel()}")
    per_sample = (strength * t / num_train_timesteps).reshape(-1, 1, 1, 1)
    noise = _pyramid(shape, per_sample, generator, draw_device)
    noise = noise / noise.std()
    return noise.to(device=device or draw_device, dtype=dtype)


# The paper's name for it.
annealed_multires_noise = annealed_multi_resolution_noise


def make_noise(kind: str, shape, timesteps=None, generator: torch.Generator | None = None,
               strength: float = 0.9, num_train_timesteps: int = 1000, device=None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Noise of the named kind: ``"gaussian"``, ``"multires"`` or ``"annealed"`` (needs ``timesteps``)."""
    if kind == "gaussian":
        return gaussian_noise(shape, generator=generator, device=device, dtype=dtype)
    if kind == "multires":
        return multi_resolution_noise(shape, generator=generator, strength=strength, device=device,
                                      dtype=dtype)
    if kind == "annealed":
        if timesteps is None:
            raise ValueError("annealed multi-resolution noise needs the timesteps")
        return annealed_multi_resolution_noise(shape, timesteps, num_train_timesteps, generator=generator,
                                               strength=strength, device=device, dtype=dtype)
    raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")


__all__ = ["NOISE_KINDS", "gaussian_noise", "multi_resolution_noise", "annealed_multi_resolution_noise",
           "annealed_multires_noise", "make_noise"]
