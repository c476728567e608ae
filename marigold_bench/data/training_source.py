"""Finding a training set's files (Hypersim, Virtual KITTI 2) under a data root.

Training sets live outside the five benchmark layouts of :mod:`marigold_bench.data.source`, so
each names its own candidate locations; the first one that holds every file of the split's first
sample wins. A candidate may be a folder or an uncompressed ``.tar`` archive.
"""

from __future__ import annotations

import os
from pathlib import Path

from marigold_bench.data.source import Source, TarSource
from marigold_bench.errors import DataRootError


def find_training_source(title: str, root, candidates: list[str], probe: list[str], expected: str) -> Source:
    """The first of ``root / c`` for ``c`` in ``candidates`` that holds all of ``probe``.

    ``root`` falls back to ``$MARIGOLD_DATA``; ``root`` itself is tried first, whether folder or
    archive. ``expected`` describes the layout in the error message.
    """
    given = root if root is not None else os.environ.get("MARIGOLD_DATA") or None
    if given is None:
        raise DataRootError(f"{title} training data: no data root given (set it in the training "
                            f"config or $MARIGOLD_DATA). Expected {expected}")
    base = Path(given).expanduser()
    if not base.exists():
        raise DataRootError(f"{title} training data: {base} does not exist. Expected {expected}")
    tried = []
    for cand in [base, *(base / c for c in candidates)] if base.is_dir() else [base]:
        if cand.is_dir():
            source = Source(cand)
        elif cand.is_file() and cand.suffix == ".tar":
            source = TarSource(cand)
        else:
            continue
        if all(source.exists(rel) for rel in probe):
            return source
        tried.append(str(cand))
    raise DataRootError(f"{title} training data not found: the first sample of the split "
                        f"({probe[0]}) is in none of: {', '.join(tried) or base}. Expected {expected}")
