"""0.3's names for a benchmark's protocol facts, kept so that callers keep working.

A benchmark's facts now live in its :class:`~marigold_bench.data.spec.BenchmarkSpec` (one per
benchmark module, found through :mod:`marigold_bench.data.registry`); ``Protocol`` is that
class, and :func:`get_protocol` is the registry's lookup. New code uses the spec and registry.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.base import masks
from marigold_bench.data.crops import BY_ID
from marigold_bench.data.registry import get_benchmark
from marigold_bench.data.spec import BenchmarkSpec, UnknownCropError

Protocol = BenchmarkSpec


def get_protocol(name: str) -> BenchmarkSpec:
    """The spec of benchmark ``name`` (an unknown name lists the known ones)."""
    return get_benchmark(name)


def eval_mask(kind: str | None, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the crop 0.3 recorded as ``kind`` (``"eigen"``, ``"kitti_eigen"``,
    ``"kitti_garg"``, None) for an image of ``shape`` (H, W)."""
    crop = BY_ID.get("none" if kind is None else kind)
    if crop is None:
        raise UnknownCropError(f"unknown evaluation mask {kind!r}")
    return crop(shape)


def valid_mask(depth: np.ndarray, protocol: BenchmarkSpec, base: np.ndarray | None = None) -> np.ndarray:
    """The pixels a benchmark scores: its own validity (``base``), its range and its default crop."""
    return masks(depth, protocol, base)[0]


def __getattr__(name: str):
    # PROTOCOLS, 0.3's dict of the built-in benchmarks, built on first use (it imports them all)
    if name == "PROTOCOLS":
        from marigold_bench.data.registry import BUILTINS
        return {n: get_benchmark(n) for n in BUILTINS}
    raise AttributeError(name)


__all__ = ["PROTOCOLS", "Protocol", "eval_mask", "get_protocol", "valid_mask"]
