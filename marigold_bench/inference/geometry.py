"""How an image is brought to the VAE and its prediction back: one object per ``padding`` mode.

The Marigold adapter asks its geometry three things and never which one it has:

* `prepare`: the image tensor (1 x 3 x H x W in [0, 1]) -> the VAE input in [-1, 1] and what
  `restore` needs to undo it;
* `latent_size`: the latent an H x W image becomes (to draw starting noise of the right size);
* `restore`: a decoded map -> the member as `predict` returns it; `resize`: that member (or an
  ensemble of them) -> the output size.

`PaddedGeometry` (``padding="replicate"``) is diffusers' geometry, `StretchGeometry`
(``padding="none"``) the official pipeline's; `images` has the pixel-level functions and the
module docstring there says what each does.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InferenceSettingsError
from . import images as imgs


def _latent_hw(vae_input_hw, factor: int) -> tuple[int, int]:
    # each of the encoder's stride-2 convolutions (input padded by one row and column) halves a
    # side rounding down, so an unpadded side that is no multiple of the factor loses its
    # remainder (ETH3D's 756 at factor 8: 94 latent rows, 752 decoded)
    return vae_input_hw[0] // factor, vae_input_hw[1] // factor


class PaddedGeometry:
    """diffusers' geometry: resize the long side, pad bottom/right to a multiple of the VAE factor
    by repeating the edge, cut the padding off the decoded map, resize back without antialiasing."""

    name = "replicate"
    #: how the run records its resampling (settings ``resample_input`` / ``resample_output``)
    resample_input = "bilinear-antialias"
    resample_output = "bilinear"
    #: normal maps resized by `resize` are made unit length again (diffusers' normals pipeline);
    #: otherwise only clipped to [-1, 1] (the official one)
    renormalises_normals = True

    def __init__(self, processing_res: int, vae_scale_factor: int):
        self.processing_res = int(processing_res)
        self.factor = int(vae_scale_factor)

    def prepare(self, image: torch.Tensor, eight_bit: bool = True) -> tuple[torch.Tensor, tuple[int, int]]:
        """The padded VAE input in [-1, 1] and the (rows, columns) of padding added."""
        return imgs.prepare_image(image, self.processing_res, self.factor)

    def vae_input_size(self, height: int, width: int) -> tuple[int, int]:
        """The size `prepare` gives an H x W image."""
        return imgs.padded_size(*imgs.processing_size(height, width, self.processing_res), self.factor)

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """Latent height and width for an input image of ``height`` x ``width``."""
        return self.latent_of(self.vae_input_size(height, width))

    def latent_of(self, vae_input_hw) -> tuple[int, int]:
        """The latent size the VAE encoder makes of an input of ``vae_input_hw``."""
        return _latent_hw(vae_input_hw, self.factor)

    def restored_size(self, latent_hw, info) -> tuple[int, int]:
        """The size `restore` gives a map decoded from ``latent_hw``."""
        return latent_hw[0] * self.factor - info[0], latent_hw[1] * self.factor - info[1]

    def restore(self, decoded: torch.Tensor, info: tuple[int, int]) -> torch.Tensor:
        """A decoded ... x h x w map without the padding `prepare` added."""
        return imgs.unpad(decoded, info)

    def resize(self, maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """B x C x h x w maps resized (bilinear, no antialiasing: diffusers' output step)."""
        return imgs.resize_prediction(maps, size, antialias=False)


class StretchGeometry(PaddedGeometry):
    """The official pipeline's geometry: resize (8-bit images back to 8-bit levels), give the VAE
    the image as it is, stretch the decoded map back with antialiasing."""

    name = "none"
    resample_input = "bilinear-antialias-8bit"
    resample_output = "bilinear-antialias"
    renormalises_normals = False

    def prepare(self, image: torch.Tensor, eight_bit: bool = True) -> tuple[torch.Tensor, tuple[int, int]]:
        """The unpadded VAE input in [-1, 1]; nothing to undo (``(0, 0)``)."""
        return imgs.prepare_image_unpadded(image, self.processing_res, eight_bit), (0, 0)

    def vae_input_size(self, height: int, width: int) -> tuple[int, int]:
        return imgs.official_processing_size(height, width, self.processing_res)

    def resize(self, maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """B x C x h x w maps resized (bilinear with antialiasing: the official output step)."""
        return imgs.resize_prediction(maps, size, antialias=True)


#: ``padding`` -> its geometry
GEOMETRIES = {cls.name: cls for cls in (PaddedGeometry, StretchGeometry)}


def make_geometry(padding: str, processing_res: int, vae_scale_factor: int) -> PaddedGeometry:
    """The geometry of ``padding`` (a key of `GEOMETRIES`, as `images.PADDING_MODES`).

    Raises:
        InferenceSettingsError: an unknown padding mode.
    """
    if padding not in GEOMETRIES:
        raise InferenceSettingsError(f"padding must be one of {', '.join(imgs.PADDING_MODES)}, got {padding!r}")
    return GEOMETRIES[padding](processing_res, vae_scale_factor)


def is_eight_bit(image) -> bool:
    """Whether ``image`` came as an 8-bit array (the official geometry rounds back to its levels)."""
    return isinstance(image, np.ndarray) and image.dtype == np.uint8


__all__ = ["PaddedGeometry", "StretchGeometry", "GEOMETRIES", "make_geometry", "is_eight_bit"]
