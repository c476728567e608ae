"""MoGe's sample-folder format: one reader for the ten benchmarks of its evaluation pack.

A benchmark folder holds a split file (``.index.txt``; NYUv2 and Spring also ``.test.txt``) that
lists sample folders, one a line. A sample folder holds:

* ``image.jpg``: the RGB image;
* ``depth.png``: 16-bit, log-encoded: ``0`` is unknown, ``65535`` is +inf, and any other value
  ``p`` is ``d = near^(1 - v) * far^v`` with ``v = (p - 1) / 65533``; ``near`` and ``far`` are PNG
  text chunks (a legacy ``unit`` chunk, where present, multiplies the depth);
* ``meta.json``: ``intrinsics``, a 3x3 matrix normalised to the image size (``cx, cy ~ 0.5``);
* ``segmentation.png`` (some benchmarks): 8- or 16-bit segment ids, with a ``labels`` text chunk
  holding a JSON object ``{label name: segment id}``.

This module decodes one sample as stored (:func:`read_sample`); :mod:`.moge_warp` brings it to a
benchmark's target size. Every failure names its file (a :class:`SampleError` subclass).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

from marigold_bench.errors import SampleError

#: the file names inside a sample folder
IMAGE, DEPTH, META, SEGMENTATION = "image.jpg", "depth.png", "meta.json", "segmentation.png"

#: code values of the depth PNG with a fixed meaning
UNKNOWN_CODE, INFINITE_CODE = 0, 65535
#: the number of steps between the first and last finite code (1 and 65534)
LOG_STEPS = 65533


class DepthRangeMissingError(SampleError):
    """A MoGe depth PNG lacks its ``near``/``far`` text chunks, so its codes cannot be decoded."""


class SegmentLabelsMissingError(SampleError):
    """A MoGe segmentation PNG lacks its ``labels`` text chunk (the segment ids mean nothing)."""


class MetaError(SampleError):
    """A sample's ``meta.json`` is unreadable, or its intrinsics are not a 3x3 matrix."""


@dataclass
class RawSample:
    """One sample folder as stored, before any warp.

    Attributes:
        image: uint8 HxWx3 RGB.
        depth: float32 HxW; NaN where unknown, +inf where infinitely far.
        intrinsics: float32 3x3 normalised intrinsics, or None when ``meta.json`` has none.
        segmentation: integer HxW segment ids, or None (not asked for, or not present).
        labels: ``{label name: segment id}`` of the segmentation, or None.
    """

    image: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray | None
    segmentation: np.ndarray | None = None
    labels: dict | None = None


def _png(data: bytes, where: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # text chunks after the image data are only read by load()
    except Exception as err:  # Pillow raises many types for bad files
        raise SampleError(f"cannot decode {where}: {err}", path=where) from None
    return image


def _text_number(image: Image.Image, key: str, where: str, error=SampleError) -> float:
    try:
        value = float(image.info[key])
    except KeyError:
        raise error(f"{where}: no {key!r} text chunk; a MoGe depth PNG stores its log range in "
                    f"'near' and 'far'", path=where) from None
    except (TypeError, ValueError):
        raise error(f"{where}: its {key!r} text chunk is not a number: {image.info[key]!r}",
                    path=where) from None
    return value


def decode_depth_codes(codes: np.ndarray, near: float, far: float, unit: float | None = None) -> np.ndarray:
    """Depth from the 16-bit codes of a MoGe depth PNG.

    Args:
        codes: integer HxW codes (``0`` unknown, ``65535`` +inf, else log-encoded).
        near / far: the ``near`` and ``far`` text chunks: the depths of codes 1 and 65534.
        unit: the legacy ``unit`` chunk, a factor on the depth (None: none).

    Returns:
        float32 HxW depth: NaN where unknown, +inf where infinite. Computed in float32, as the
        format's own reader does, so values agree with it to the last bit.
    """
    codes = np.asarray(codes)
    # v in [0, 1] along the log range; float32 throughout, the precision the format was read with
    v = (codes.astype(np.float32) - 1) / LOG_STEPS
    depth = near ** (1 - v) * far ** v
    if unit is not None:
        depth = depth * unit
    depth = depth.astype(np.float32, copy=False)
    depth[codes == UNKNOWN_CODE] = np.nan
    depth[codes == INFINITE_CODE] = np.inf
    return depth


def read_depth_png(data: bytes, where: str) -> np.ndarray:
    """Decode a MoGe ``depth.png`` (bytes) to float32 depth (NaN unknown, +inf infinite).

    Raises:
        DepthRangeMissingError: no ``near``/``far`` chunk (or not a number).
        SampleError: not a 16-bit single-channel PNG.
    """
    image = _png(data, where)
    if not image.mode.startswith("I"):
        raise SampleError(f"cannot decode {where}: expected a 16-bit depth PNG, got mode {image.mode}",
                          path=where)
    near = _text_number(image, "near", where, DepthRangeMissingError)
    far = _text_number(image, "far", where, DepthRangeMissingError)
    unit = _text_number(image, "unit", where) if "unit" in image.info else None
    codes = np.asarray(image)
    if codes.min(initial=0) < 0 or codes.max(initial=0) > 65535:
        raise SampleError(f"cannot decode {where}: values outside the 16-bit range", path=where)
    return decode_depth_codes(codes, near, far, unit)


def read_segmentation_png(data: bytes, where: str) -> tuple[np.ndarray, dict]:
    """Decode a MoGe ``segmentation.png``: ``(segment ids HxW, {label: id})``.

    Raises:
        SegmentLabelsMissingError: no ``labels`` chunk, or it is not a JSON object of integers.
    """
    image = _png(data, where)
    text = image.info.get("labels")
    if text is None:
        raise SegmentLabelsMissingError(f"{where}: no 'labels' text chunk; a MoGe segmentation PNG "
                                        "names its segments in one (JSON {label: id})", path=where)
    try:
        labels = json.loads(text)
        ok = isinstance(labels, dict) and all(isinstance(v, int) for v in labels.values())
    except json.JSONDecodeError:
        ok = False
    if not ok:
        raise SegmentLabelsMissingError(f"{where}: its 'labels' chunk is not a JSON object of "
                                        f"integer ids: {text[:80]!r}", path=where)
    ids = np.asarray(image)
    if ids.ndim != 2:
        raise SampleError(f"cannot decode {where}: expected one channel of segment ids, got shape "
                          f"{ids.shape}", path=where)
    return ids, labels


def read_intrinsics(data: bytes, where: str) -> np.ndarray | None:
    """The normalised intrinsics of a ``meta.json`` (bytes) as float32 3x3, None if it has none.

    Raises:
        MetaError: not JSON, not an object, or intrinsics that are not a 3x3 matrix of numbers
            with non-zero focal lengths.
    """
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetaError(f"cannot read {where}: {err}", path=where) from None
    if not isinstance(meta, dict):
        raise MetaError(f"{where}: expected a JSON object, got {type(meta).__name__}", path=where)
    if meta.get("intrinsics") is None:
        return None
    try:
        k = np.array(meta["intrinsics"], dtype=np.float32)
    except (TypeError, ValueError):
        k = None
    if k is None or k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] == 0 or k[1, 1] == 0:
        raise MetaError(f"{where}: 'intrinsics' must be a 3x3 matrix of numbers with non-zero focal "
                        f"lengths, got {meta['intrinsics']!r}", path=where)
    return k


def read_image_jpg(data: bytes, where: str) -> np.ndarray:
    """Decode ``image.jpg`` (bytes) to uint8 HxWx3 RGB."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return np.asarray(image.convert("RGB"))
    except Exception as err:  # Pillow raises many types for bad files
        raise SampleError(f"cannot decode {where}: {err}", path=where) from None


def read_sample(source, folder: str, segmentation: bool = False) -> RawSample:
    """Read sample ``folder`` of a benchmark through ``source`` (a :class:`~.source.Source`).

    Args:
        source: where the benchmark's files are (folder or tar).
        folder: the sample folder as the split file lists it.
        segmentation: whether to read ``segmentation.png`` too (benchmarks that have one).

    Returns:
        A :class:`RawSample`; its depth has the image's size.

    Raises:
        SampleError (or a subclass above): a file is missing, undecodable or inconsistent.
    """
    def rel(name):
        return f"{folder}/{name}"

    image = read_image_jpg(source.read(rel(IMAGE)), source.where(rel(IMAGE)))
    depth = read_depth_png(source.read(rel(DEPTH)), source.where(rel(DEPTH)))
    if depth.shape != image.shape[:2]:
        where = source.where(rel(DEPTH))
        raise SampleError(f"{where}: depth is {depth.shape[1]}x{depth.shape[0]} but image.jpg is "
                          f"{image.shape[1]}x{image.shape[0]}", path=where)
    intrinsics = read_intrinsics(source.read(rel(META)), source.where(rel(META)))
    seg = labels = None
    if segmentation:
        seg, labels = read_segmentation_png(source.read(rel(SEGMENTATION)), source.where(rel(SEGMENTATION)))
        if seg.shape != image.shape[:2]:
            where = source.where(rel(SEGMENTATION))
            raise SampleError(f"{where}: segmentation is {seg.shape[1]}x{seg.shape[0]} but image.jpg is "
                              f"{image.shape[1]}x{image.shape[0]}", path=where)
    return RawSample(image, depth, intrinsics, seg, labels)


__all__ = ["DEPTH", "IMAGE", "META", "SEGMENTATION", "DepthRangeMissingError", "MetaError", "RawSample",
           "SegmentLabelsMissingError", "decode_depth_codes", "read_depth_png", "read_image_jpg",
           "read_intrinsics", "read_sample", "read_segmentation_png"]
