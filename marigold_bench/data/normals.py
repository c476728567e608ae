"""Surface-normals ground truth: the item contract, its decoders, and the split-file dataset.

An item of a normals benchmark is a dict with ``id`` (str), ``rgb`` (uint8 H x W x 3),
``normals`` (float32 H x W x 3, in the benchmark's camera frame), ``frame`` (that frame's name,
see :mod:`marigold_bench.frames`), ``mask`` and ``valid`` (bool H x W, equal: the pixels whose
ground-truth vector is finite and not the zero vector; normals benchmarks have no crops) and,
where the layout ships them, ``intrins`` (float32 3 x 3, pixel centres at integer coordinates).

Ground truth is handed over as read: a vector that is not unit length (8-bit quantisation,
resampling in the benchmark's own preprocessing) is kept as is, because whether it is
renormalised is a scoring decision each protocol states, not a loading one.

The two decoders name the file in a :class:`~marigold_bench.errors.SampleError` for anything
that is not a normal map (wrong shape, wrong dtype, an unreadable file), so a bad sample is never
a bare numpy or Pillow traceback.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.split_dataset import Benchmark, SplitDataset, read_npy
from marigold_bench.data.split_dataset import _open_image  # one image reader for the package
from marigold_bench.data.source import Source
from marigold_bench.errors import SampleError
from marigold_bench.frames import check_frame

ITEM_KEYS = ("id", "rgb", "normals", "frame", "mask", "valid")


def normals_valid(normals: np.ndarray) -> np.ndarray:
    """Pixels with ground truth: every component finite and the vector not zero.

    The official evaluation masks ``‖gt‖ > 0``; a non-finite vector is left out too (it could
    only turn a score into NaN).
    """
    finite = np.isfinite(normals).all(axis=-1)
    nonzero = (normals != 0).any(axis=-1)
    return finite & nonzero


def make_normals_item(sample_id: str, rgb: np.ndarray, normals: np.ndarray, frame: str,
                      valid: np.ndarray | None = None, intrins: np.ndarray | None = None) -> dict:
    """Validate and package one normals item in the contract's dtypes.

    Args:
        sample_id: the item's id.
        rgb: uint8 H x W x 3.
        normals: H x W x 3 in ``frame`` (cast to float32; values are not renormalised).
        frame: a name of :data:`marigold_bench.frames.FRAMES`.
        valid: the benchmark's own validity (DSINE's 8-bit rule); None: :func:`normals_valid`.
            Either way a pixel whose vector is zero or not finite is never valid.
        intrins: optional 3 x 3 camera matrix.
    """
    check_frame(frame)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{sample_id}: rgb must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    normals = np.asarray(normals, dtype=np.float32)
    if normals.shape != rgb.shape[:2] + (3,):
        raise ValueError(f"{sample_id}: normals {normals.shape} must be HxWx3 of the rgb's size "
                         f"{rgb.shape[:2]}")
    mask = normals_valid(normals)
    if valid is not None:
        mask &= np.asarray(valid, dtype=bool).reshape(mask.shape)
    item = {"id": sample_id, "rgb": rgb, "normals": normals, "frame": frame,
            "mask": mask, "valid": mask.copy()}
    if intrins is not None:
        item["intrins"] = np.asarray(intrins, dtype=np.float32)
    return item


# --- decoders --------------------------------------------------------------------------------

def read_normals_npy(source: Source, rel: str) -> np.ndarray:
    """A float ``.npy`` normal map, H x W x 3, as float32 (the official evaluation archive's format).

    Raises:
        SampleError: not a readable ``.npy``, not floating point, or not H x W x 3 (a 3 x H x W
            map is refused too: the archive stores channels last); the message names the file.
    """
    array = read_npy(source, rel)
    where = source.where(rel)
    if array.ndim != 3 or array.shape[2] != 3:
        raise SampleError(f"{where}: a normals map must be HxWx3 (channels last), got shape "
                          f"{array.shape}", path=where)
    if not np.issubdtype(array.dtype, np.floating):
        raise SampleError(f"{where}: a normals map must hold floats, got {array.dtype}", path=where)
    return array.astype(np.float32)


def read_png8_normals(source: Source, rel: str) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit RGB normal map (DSINE's ``_normal.png``): ``(normals, valid)``.

    Each channel ``c`` in 0..255 decodes to ``c / 255 * 2 - 1``; a pixel is valid where the
    three 8-bit values do not sum to 0 (black marks no ground truth). The decoded vectors are
    close to, not exactly, unit length.

    Raises:
        SampleError: not an 8-bit RGB PNG; the message names the file.
    """
    image = _open_image(source, rel)
    where = source.where(rel)
    if image.mode != "RGB":  # a 16-bit or grey map would decode to other numbers
        raise SampleError(f"{where}: expected an 8-bit RGB normal map, got mode {image.mode}", path=where)
    raw = np.asarray(image)
    valid = raw.sum(axis=-1, dtype=np.int64) > 0
    normals = raw.astype(np.float32) / 255.0 * 2.0 - 1.0
    return normals, valid


# --- the split-file dataset -------------------------------------------------------------------

class NormalsBenchmark(Benchmark):
    """A :class:`~marigold_bench.data.split_dataset.Benchmark` whose records decode to normals.

    ``decode(source, record)`` returns ``(rgb, normals, own_valid or None, intrins or None)``.
    """

    def open(self, root, split, protocol) -> "NormalsSplitDataset":
        """Resolve split and root as for depth (same checks and count warning); items are normals."""
        opened = super().open(root, split, protocol)
        return NormalsSplitDataset(self, opened.source, opened.split_file, opened.records, protocol,
                                   opened.root, opened.expected_count)


class NormalsSplitDataset(SplitDataset):
    """Samples of a normals split file; items follow this module's contract."""

    def load(self, index: int) -> dict:
        record = self.records[index]
        rgb, normals, own_valid, intrins = self.benchmark.decode(self.source, record)
        if normals.shape[:2] != rgb.shape[:2]:
            where = self.source.where(record[1] if len(record) > 1 else record[0])
            raise SampleError(f"{where}: normals are {normals.shape[0]}x{normals.shape[1]} but its RGB "
                              f"image is {rgb.shape[0]}x{rgb.shape[1]}", path=where)
        return make_normals_item(self.ids[index], rgb, normals, self.protocol.frame, own_valid, intrins)

    def describe(self) -> dict:
        return {**super().describe(), "task": self.protocol.task, "frame": self.protocol.frame}


__all__ = ["ITEM_KEYS", "NormalsBenchmark", "NormalsSplitDataset", "make_normals_item", "normals_valid",
           "read_normals_npy", "read_png8_normals"]
