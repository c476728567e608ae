"""Benchmark loaders: one small module per dataset, found through :data:`LOADERS`.

>>> ds = load_dataset("synthetic")
>>> item = ds[0]; sorted(item)
['depth', 'id', 'rgb', 'valid']

:func:`to_hf_dataset` gives the same samples as a Hugging Face ``datasets.Dataset``.
"""

from __future__ import annotations

from marigold_bench.data.hf import to_hf_dataset
from marigold_bench.data.loaders import DATASETS, LOADERS, load_dataset
from marigold_bench.data.protocol import PROTOCOLS, Protocol, get_protocol

__all__ = ["DATASETS", "LOADERS", "PROTOCOLS", "Protocol", "get_protocol", "load_dataset", "to_hf_dataset"]
