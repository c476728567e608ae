"""Augmentations of the normals recipe (``config/train_marigold_normals.yaml``, ``augmentation:``).

In the official order, each from the micro-batch's own numpy generator:

1. horizontal flip with probability ``flip_p`` (0.5): image, normals and mask mirrored, and the
   **x component of the normals negated** (a surface facing right faces left in the mirror; y and
   z are unchanged);
2. Gaussian blur of the image with probability 0.3, sigma uniform in [0, 4), 33-tap kernel --
   only for Hypersim-size frames (768 rows: the official loader augments before resizing and
   tells Hypersim by its height);
3. motion blur of the image with probability 0.3: a line of odd length 3..11 at an angle uniform
   in [0, 360) degrees, normalised to sum 1 -- Hypersim-size frames only, as 2.;
4. colour jitter with probability 0.3: brightness, contrast and saturation factors uniform in
   [0.5, 1.5] and a hue shift uniform in [-0.2, 0.2] turns, applied in a random order.

Only the image changes in 2.-4.; the ground truth is untouched. Blurred and jittered values are
truncated to integers as the official code does (``.int()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from marigold_bench.train.config import NormalsAugmentConfig

#: rows of a Hypersim frame as stored (768 x 1024): the only frames that are blurred
HYPERSIM_ROWS = 768

_OFFICIAL = NormalsAugmentConfig()


@dataclass(frozen=True)
class NormalsAugmentation:
    """The probabilities and ranges of the augmentations (defaults: the official config)."""

    flip_p: float = 0.5
    # the official values are written once, in the training config's section
    color_jitter_p: float = _OFFICIAL.color_jitter_p
    gaussian_blur_p: float = _OFFICIAL.gaussian_blur_p
    motion_blur_p: float = _OFFICIAL.motion_blur_p
    gaussian_blur_sigma: float = _OFFICIAL.gaussian_blur_sigma
    motion_blur_kernel_size: int = _OFFICIAL.motion_blur_kernel_size
    motion_blur_angle_range: float = _OFFICIAL.motion_blur_angle_range
    brightness: float = _OFFICIAL.brightness
    contrast: float = _OFFICIAL.contrast
    saturation: float = _OFFICIAL.saturation
    hue: float = _OFFICIAL.hue
    #: frames with this many rows are blurred (None: every frame)
    blur_rows: int | None = HYPERSIM_ROWS


def flip_normals(rgb: np.ndarray, normals: np.ndarray, mask: np.ndarray):
    """Mirror left-right; the normals' x component changes sign (H x W x 3, channels last)."""
    normals = normals[:, ::-1].copy()
    normals[..., 0] *= -1.0
    return rgb[:, ::-1].copy(), normals, mask[:, ::-1].copy()


def _conv_rgb(rgb: np.ndarray, kernel: np.ndarray, pad_mode: str) -> np.ndarray:
    """Depth-wise 2-D convolution of a uint8 H x W x 3 image; the result truncated to uint8."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].double()
    k = torch.from_numpy(kernel).double()
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    x = F.pad(x, (pw, pw, ph, ph), mode=pad_mode) if pad_mode != "constant" else F.pad(x, (pw, pw, ph, ph))
    out = F.conv2d(x, k.expand(3, 1, *k.shape), groups=3)
    return out[0].permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy()


def gaussian_blur(rgb: np.ndarray, sigma: float, size: int = 33) -> np.ndarray:
    """Separable Gaussian blur (reflected borders); ``sigma`` <= 0 returns the image unchanged."""
    if sigma <= 0:
        return rgb
    t = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    h, w = rgb.shape[:2]
    mode = "reflect" if min(h, w) > size // 2 else "replicate"  # reflection needs a wider image
    return _conv_rgb(rgb, np.outer(g, g), mode)


def motion_kernel(size: int, angle_deg: float) -> np.ndarray:
    """A ``size`` x ``size`` line through the centre at ``angle_deg``, summing to 1.

    The line is sampled densely and each sample marks its nearest pixel, so every angle gives a
    connected line of ``size`` pixels' length.
    """
    kernel = np.zeros((size, size))
    c, a = size // 2, np.deg2rad(angle_deg)
    for t in np.linspace(-c, c, 4 * size):
        x, y = int(round(c + t * np.cos(a))), int(round(c - t * np.sin(a)))
        kernel[y, x] = 1.0
    return kernel / kernel.sum()


def motion_blur(rgb: np.ndarray, size: int, angle_deg: float) -> np.ndarray:
    """Blur along a line (zero-padded borders, as the official ``conv2d`` with padding)."""
    return _conv_rgb(rgb, motion_kernel(size, angle_deg), "constant")


def _grey(x: np.ndarray) -> np.ndarray:
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def _shift_hue(x: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue of [0, 1] RGB by ``shift`` turns (through HSV)."""
    mx, mn = x.max(-1), x.min(-1)
    delta = mx - mn
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    safe = np.where(delta > 0, delta, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    h = np.where(delta > 0, h, 0.0)
    s = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    h = (h + shift) % 1.0
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6) % 6  # the standard HSV -> RGB formula
    return mx[..., None] - mx[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def color_jitter(rgb: np.ndarray, rng: np.random.Generator, aug: NormalsAugmentation) -> np.ndarray:
    """Brightness, contrast, saturation and hue changes in a random order (uint8 in and out)."""
    x = rgb.astype(np.float64) / 255.0
    factors = {"brightness": rng.uniform(1 - aug.brightness, 1 + aug.brightness),
               "contrast": rng.uniform(1 - aug.contrast, 1 + aug.contrast),
               "saturation": rng.uniform(1 - aug.saturation, 1 + aug.saturation),
               "hue": rng.uniform(-aug.hue, aug.hue)}
    for name in rng.permutation(list(factors)):
        f = factors[name]
        if name == "brightness":
            x = np.clip(x * f, 0, 1)
        elif name == "contrast":
            x = np.clip(f * x + (1 - f) * _grey(x).mean(), 0, 1)
        elif name == "saturation":
            x = np.clip(f * x + (1 - f) * _grey(x)[..., None], 0, 1)
        else:
            x = _shift_hue(x, f)
    return (x * 255.0).astype(np.uint8)


def augment_normals(rgb: np.ndarray, normals: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                    aug: NormalsAugmentation):
    """Steps 1.-4. of the module docstring; returns ``(rgb, normals, mask)``."""
    if rng.random() < aug.flip_p:
        rgb, normals, mask = flip_normals(rgb, normals, mask)
    blur_ok = aug.blur_rows is None or rgb.shape[0] == aug.blur_rows
    if rng.random() < aug.gaussian_blur_p and blur_ok:
        rgb = gaussian_blur(rgb, rng.uniform(0.0, aug.gaussian_blur_sigma))
    if rng.random() < aug.motion_blur_p and blur_ok:
        size = int(rng.choice([k for k in range(3, aug.motion_blur_kernel_size + 1) if k % 2 == 1]))
        rgb = motion_blur(rgb, size, rng.uniform(0.0, aug.motion_blur_angle_range))
    if rng.random() < aug.color_jitter_p:
        rgb = color_jitter(rgb, rng, aug)
    return rgb, normals, mask


__all__ = ["HYPERSIM_ROWS", "NormalsAugmentation", "augment_normals", "color_jitter", "flip_normals",
           "gaussian_blur", "motion_blur", "motion_kernel"]
