"""0.3's entry points for opening a benchmark, now answered by :mod:`marigold_bench.data.registry`.

``DATASETS`` is a live view of the registry's names (plugins included); ``LOADERS`` maps the
built-in names to their spec (``"module:SPEC"``).
"""

from __future__ import annotations

from marigold_bench.data.registry import BUILTINS as LOADERS
from marigold_bench.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "LOADERS", "load_dataset"]
