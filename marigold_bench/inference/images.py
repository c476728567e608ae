"""Input images for inference: reading, conversion to RGB, and the geometry of the recipe.

Two geometries, chosen per run with ``padding`` (recorded in its settings):

* ``"replicate"`` (default) follows `diffusers.MarigoldDepthPipeline`: the image is mapped to
  [-1, 1], its longer side resized to the processing resolution (bilinear with antialiasing,
  other side ``h * res // long``), then padded on the bottom and right by repeating the edge
  until both sides are multiples of the VAE's downsampling factor; the padding is cut off the
  decoded map, which is resized to the output size (bilinear, no antialiasing). Unlike diffusers,
  a processing resolution that is not such a multiple is accepted (e.g. ETH3D's 756).
* ``"none"`` follows the official pipeline (``marigold/marigold_depth_pipeline.py`` of
  prs-eth/Marigold): the 8-bit image is resized (other side ``int(w * min(res / w, res / h))``,
  bilinear with antialiasing, rounded back to 8-bit levels as torchvision does for uint8
  tensors), mapped to [-1, 1] and given to the VAE as it is. For a side that is not a multiple
  of the VAE factor the latent covers a little less (ETH3D at 756: 756x504 in, 752x504 decoded
  with SD-v2's factor 8), and the decoded map is stretched back to the output size (bilinear
  with antialiasing, the official output step).

At processing resolution 0 on images whose sides are multiples of the factor the two agree.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputImageError

#: File suffixes that `list_images` picks up from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".npy")

#: How an image can be brought to the VAE: padded to a multiple of its factor by repeating the
#: edge (diffusers) or given as it is (the official pipeline); see the module docstring.
PADDING_MODES = ("replicate", "none")

#: The default of `PADDING_MODES` (and the ``F.pad`` mode of the replicate path).
PADDING_MODE = "replicate"


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an array with its own bit depth kept.

    8-bit files give uint8, 16-bit grayscale PNG/TIFF give uint16, float TIFFs give float32,
    ``.npy`` files are returned as stored. EXIF orientation is applied. Use `to_float_rgb` next.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputImageError(f"cannot read {path}: {exc}") from exc
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
            elif img.mode == "1":
                img = img.convert("L")
            array = np.array(img)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputImageError(f"cannot read image {path}: {exc}") from exc
    # PIL reads 16-bit grayscale as 32-bit signed "I"; its values are still 0..65535.
    if array.dtype == np.int32 and array.size and array.min() >= 0 and array.max() <= 65535:
        array = array.astype(np.uint16)
    return array


def to_float_rgb(image, name: str = "image") -> np.ndarray:
    """Any supported image array as float32 H x W x 3 RGB in [0, 1].

    Accepted: H x W (grayscale), H x W x 1, H x W x 2 (grayscale + alpha), H x W x 3, H x W x 4
    (alpha is dropped, as PIL's ``convert("RGB")``); unsigned integers of any width (divided by
    their dtype's maximum, as diffusers does: 255 for uint8, 65535 for uint16); floats in [0, 1];
    booleans. Torch tensors in H x W x C layout are accepted too.

    Raises:
        InputImageError: for other layouts, signed integers, NaN/inf, or floats outside [0, 1].
    """
    if torch.is_tensor(image):
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[..., None]
    elif array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., : 1 if array.shape[-1] == 2 else 3]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise InputImageError(f"{name}: expected an H x W or H x W x {{1,2,3,4}} image, got shape {array.shape}")
    if min(array.shape[:2]) < 1:
        raise InputImageError(f"{name}: empty image of shape {array.shape}")
    if array.dtype == bool:
        out = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.unsignedinteger):
        out = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    elif np.issubdtype(array.dtype, np.floating):
        out = array.astype(np.float32)
        if not np.isfinite(out).all():
            raise InputImageError(f"{name}: contains NaN or inf values")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise InputImageError(
                f"{name}: float images must hold values in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                "(divide 8-bit values by 255, 16-bit values by 65535)")
    else:
        raise InputImageError(f"{name}: unsupported pixel type {array.dtype} (use unsigned integers or floats in [0, 1])")
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def to_uint8_rgb(image, name: str = "image") -> np.ndarray:
    """Any supported image array as uint8 H x W x 3 (see `to_float_rgb`); uint8 RGB passes through."""
    array = np.asarray(image) if not torch.is_tensor(image) else image
    if isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim == 3 and array.shape[-1] == 3:
        return array
    return np.round(to_float_rgb(image, name) * 255.0).astype(np.uint8)


def to_model_tensor(image, name: str = "image", device: str | torch.device | None = None) -> torch.Tensor:
    """1 x 3 x H x W float32 tensor in [0, 1] from anything `to_float_rgb` takes, on ``device``.

    uint8 RGB is divided in float32 exactly as diffusers does, so results match it bit for bit.
    It travels to an accelerator as uint8 and is converted there: a quarter of the bytes, and
    no host time on large frames (ETH3D's are 24 M pixels).
    """
    array = np.asarray(image) if not torch.is_tensor(image) else image
    if isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim == 3 and array.shape[-1] == 3:
        if device is not None and torch.device(device).type != "cpu":
            pixels = torch.from_numpy(np.ascontiguousarray(array)).to(device)
            # a device tensor, not a Python scalar: CUDA turns division by a scalar into a
            # multiplication by its float32 reciprocal, 1 ulp off the host's division for half of
            # the 256 levels
            return (pixels.permute(2, 0, 1)[None].float() / torch.full((), 255.0, device=pixels.device)).contiguous()
        rgb = array.astype(np.float32) / 255.0
    else:
        rgb = to_float_rgb(image, name)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    return tensor if device is None else tensor.to(device)


def processing_size(height: int, width: int, processing_res: int) -> tuple[int, int]:
    """Size after resizing the longer side to ``processing_res`` (0 keeps the size)."""
    if not processing_res:
        return height, width
    long_side = max(height, width)
    size = (height * processing_res // long_side, width * processing_res // long_side)
    if min(size) < 1:
        raise InputImageError(f"extreme aspect ratio {width}x{height} for processing resolution {processing_res}")
    return size


def official_processing_size(height: int, width: int, processing_res: int) -> tuple[int, int]:
    """Size after the official pipeline's resize: both sides times ``min(res / w, res / h)``,
    truncated (0 keeps the size). It is one pixel short of `processing_size` for some sizes
    (a 330 x 1080 image at 756: 230 rows, not 231), where the float product falls just below."""
    if not processing_res:
        return height, width
    factor = min(processing_res / width, processing_res / height)
    size = (int(height * factor), int(width * factor))
    if min(size) < 1:
        raise InputImageError(f"extreme aspect ratio {width}x{height} for processing resolution {processing_res}")
    return size


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The next multiples of ``multiple``: what the VAE sees."""
    return height + (-height % multiple), width + (-width % multiple)


def resize_long_side(image: torch.Tensor, processing_res: int) -> torch.Tensor:
    """Bilinear, antialiased resize of a B x C x H x W tensor to `processing_size`."""
    size = processing_size(*image.shape[-2:], processing_res)
    if tuple(size) == tuple(image.shape[-2:]):
        # diffusers resizes even to the same size; bilinear to the same grid is the identity.
        return image
    return F.interpolate(image, size, mode="bilinear", antialias=True)


def pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right edges by replication; returns the tensor and (rows, cols) added."""
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode=PADDING_MODE)
    return image, (pad_h, pad_w)


def unpad(image: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """Undo `pad_to_multiple` on a ... x H x W tensor."""
    pad_h, pad_w = padding
    return image[..., : image.shape[-2] - pad_h, : image.shape[-1] - pad_w]


def prepare_image(image: torch.Tensor, processing_res: int, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """1 x 3 x H x W in [0, 1] -> the padded VAE input in [-1, 1] and its padding."""
    image = image * 2.0 - 1.0
    if processing_res:
        image = resize_long_side(image, processing_res)
    return pad_to_multiple(image, multiple)


def prepare_image_unpadded(image: torch.Tensor, processing_res: int, eight_bit: bool = True) -> torch.Tensor:
    """1 x 3 x H x W in [0, 1] -> the official pipeline's VAE input in [-1, 1], not padded.

    Args:
        image: the image as `to_model_tensor` gives it.
        processing_res: longer side after resizing (`official_processing_size`), 0 = native.
        eight_bit: the image came as uint8: after the resize it is rounded back to 8-bit levels,
            as the official pipeline's torchvision resize of a uint8 tensor does. Other bit
            depths are resized without rounding (the official code takes 8-bit images only).
    """
    if processing_res:
        size = official_processing_size(*image.shape[-2:], processing_res)
        if tuple(size) != tuple(image.shape[-2:]):
            if eight_bit:
                # back to the 0..255 levels (exact: k / 255 * 255 rounds to k), resized like them
                levels = F.interpolate(torch.round(image * 255.0), size, mode="bilinear", antialias=True,
                                       align_corners=False)
                image = torch.round(levels).clamp(0, 255) / 255.0
            else:
                image = F.interpolate(image, size, mode="bilinear", antialias=True, align_corners=False)
    return image * 2.0 - 1.0


def resize_prediction(maps: torch.Tensor, size: tuple[int, int], antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of B x 1 x h x w maps: without antialiasing as diffusers' output step
    (``padding="replicate"``), with it as the official pipeline's (``padding="none"``)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, tuple(size), mode="bilinear", antialias=antialias)


def list_images(path: str | os.PathLike) -> list[Path]:
    """One image file, or the image files of a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputImageError(f"input {path} does not exist")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {path}")
    return files


__all__ = ["IMAGE_SUFFIXES", "PADDING_MODE", "PADDING_MODES", "InputImageError", "load_image", "to_float_rgb",
           "to_uint8_rgb", "to_model_tensor", "processing_size", "official_processing_size", "padded_size",
           "resize_long_side", "pad_to_multiple", "unpad", "prepare_image", "prepare_image_unpadded",
           "resize_prediction", "list_images"]
