"""The dataset interface every benchmark loader implements.

An item is a dict with ``id`` (str), ``rgb`` (uint8 HxWx3), ``depth`` (float32 metres HxW),
``valid`` (bool HxW: the pixels the benchmark's own protocol scores: validity, range and its
default crop) and ``mask`` (bool HxW: validity and range without any crop, so that a protocol can
apply another of the benchmark's crops at scoring time). Datasets are sized and indexable and
know their :class:`~marigold_bench.data.spec.BenchmarkSpec` (as ``protocol``) and where their
samples came from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.errors import BenchError


class DepthDataset(Sequence):
    """Sized, indexable collection of RGB-D evaluation samples."""

    protocol: BenchmarkSpec
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        if isinstance(index, slice):
            raise TypeError("slice a dataset with subset(), not []")
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.load(index)

    def load(self, index: int) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict:
        """Where the samples come from (root, split file and its sha256), for summary.json."""
        return {}

    def subset(self, n: int | None) -> "DepthDataset":
        """The first ``n`` samples (all when ``n`` is None), for ``--max-samples``.

        Raises:
            BenchError: ``n`` below 1 (a negative one would slice from the end, 0 scores nothing).
        """
        if n is not None and int(n) < 1:
            raise BenchError(f"max_samples {n}: a subset holds at least 1 sample")
        return self if n is None or n >= len(self) else _Subset(self, n)


class _Subset(DepthDataset):
    def __init__(self, parent: DepthDataset, n: int):
        self.parent, self.protocol, self.ids = parent, parent.protocol, parent.ids[:n]

    def load(self, index: int) -> dict:
        return self.parent.load(index)

    def describe(self) -> dict:
        return {**self.parent.describe(), "max_samples": len(self.ids)}


def masks(depth: np.ndarray, spec: BenchmarkSpec, base: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(valid, mask)`` of a depth map: ``mask`` is the benchmark's own validity (``base``), finite
    depth and (when the spec says so) its range; ``valid`` is ``mask`` inside the default crop."""
    mask = np.isfinite(depth) if base is None else base.astype(bool) & np.isfinite(depth)
    if spec.range_in_valid:
        mask &= (depth > spec.min_depth) & (depth < spec.max_depth)
    return mask & spec.crop_mask(None, depth.shape), mask


def make_item(sample_id: str, rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray,
              mask: np.ndarray | None = None) -> dict:
    """Validate and package one item in the contract's dtypes (``mask`` defaults to ``valid``)."""
    mask = valid if mask is None else mask
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{sample_id}: rgb must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    if depth.shape != rgb.shape[:2] or valid.shape != depth.shape or mask.shape != depth.shape:
        raise ValueError(f"{sample_id}: rgb {rgb.shape[:2]}, depth {depth.shape}, valid "
                         f"{valid.shape} and mask {mask.shape} must have the same size")
    return {"id": sample_id, "rgb": rgb, "depth": depth.astype(np.float32, copy=False),
            "valid": valid.astype(bool, copy=False), "mask": mask.astype(bool, copy=False)}
