"""Benchmark loaders: one small module per dataset, found through :data:`LOADERS`.

>>> ds = load_dataset("synthetic")
>>> item = ds[0]; sorted(item)
['depth', 'id', 'rgb', 'valid']
"""

from __future__ import annotations

import importlib

from marigold_bench.data.protocol import PROTOCOLS, Protocol, get_protocol

#: dataset name -> "module:factory"; the factory is called as factory(root, split, protocol).
LOADERS = {
    "nyu": "marigold_bench.data.nyu:load",
    "kitti": "marigold_bench.data.kitti:load",
    "eth3d": "marigold_bench.data.eth3d:load",
    "scannet": "marigold_bench.data.scannet:load",
    "diode": "marigold_bench.data.diode:load",
    "synthetic": "marigold_bench.data.synthetic:load",
}

DATASETS = tuple(LOADERS)


def to_hf_dataset(name: str, root=None, split=None, max_samples: int | None = None, cache_dir=None):
    """Benchmark ``name`` as a Hugging Face ``datasets.Dataset`` (columns ``id``, ``image``,
    ``depth``, ``valid``); see :func:`marigold_bench.data.hf.to_hf_dataset`."""
    from marigold_bench.data.hf import to_hf_dataset as convert

    return convert(name, root, split, max_samples, cache_dir)


def load_dataset(name: str, root=None, split=None, protocol: Protocol | None = None):
    """Open benchmark ``name``.

    Args:
        name: one of :data:`DATASETS`.
        root: base folder of the official download (holding ``nyuv2/``, ``kitti/``, ...), the
            benchmark's own folder, or its ``.tar`` archive; falls back to ``$MARIGOLD_DATA``.
            Ignored for ``synthetic``.
        split: None (the test split), a split name, or the path of a split file in the
            official format.
        protocol: override of the benchmark's default protocol (e.g. another fit space).

    Returns:
        A :class:`~marigold_bench.data.base.DepthDataset`.
    """
    protocol = protocol or get_protocol(name)  # raises the list of known names
    module, factory = LOADERS[name].split(":")
    return getattr(importlib.import_module(module), factory)(root, split, protocol)


__all__ = ["DATASETS", "LOADERS", "PROTOCOLS", "Protocol", "get_protocol", "load_dataset", "to_hf_dataset"]
