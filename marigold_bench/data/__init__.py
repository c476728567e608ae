"""Benchmarks: one module per benchmark declaring its :class:`BenchmarkSpec`, found by name
through :mod:`marigold_bench.data.registry` (built-ins and plugins).

>>> ds = load_dataset("synthetic")
>>> item = ds[0]; sorted(item)
['depth', 'id', 'mask', 'rgb', 'valid']

:func:`to_hf_dataset` gives the same samples as a Hugging Face ``datasets.Dataset``.
"""

from __future__ import annotations

from marigold_bench.data.hf import to_hf_dataset
from marigold_bench.data.loaders import LOADERS
from marigold_bench.data.protocol import Protocol, get_protocol
from marigold_bench.data.registry import (DATASETS, all_benchmarks, benchmark_names, get_benchmark,
                                          load_dataset)
from marigold_bench.data.spec import BenchmarkSpec


def __getattr__(name: str):
    if name == "PROTOCOLS":  # 0.3's dict of built-in specs, built on first use
        from marigold_bench.data import protocol
        return protocol.PROTOCOLS
    raise AttributeError(name)


__all__ = ["DATASETS", "LOADERS", "PROTOCOLS", "BenchmarkSpec", "Protocol", "all_benchmarks", "benchmark_names",
           "get_benchmark", "get_protocol", "load_dataset", "to_hf_dataset"]
