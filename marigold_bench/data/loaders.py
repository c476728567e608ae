"""Which module opens which benchmark (:data:`LOADERS`) and :func:`load_dataset`, the one entry point.

Kept out of the package's ``__init__`` so that modules of this package (e.g. :mod:`.hf`) can use
:func:`load_dataset` without importing the package they are part of.
"""

from __future__ import annotations

import importlib

from marigold_bench.data.protocol import Protocol, get_protocol

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


__all__ = ["DATASETS", "LOADERS", "load_dataset"]
