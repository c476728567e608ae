"""Benchmarks without a split file: samples found by listing the release's own folders.

The metric boards' test sets (SUN RGB-D as ZoeDepth reads it, DIML, HyperSim's raw renders,
Virtual KITTI 2) are read the way ZoeDepth's loaders read them: by globbing a folder layout, or
from a list file shipped with the release (iBims-1's ``imagelist.txt``). :func:`list_files`
lists a source (an extracted folder or a ``.tar``) the same way for both; a
:class:`ListedDataset` holds the records found, sorted so that runs are reproducible
(``glob`` order is not).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from marigold_bench.data.base import DepthDataset, make_item, masks
import os
from pathlib import Path

from marigold_bench.data.source import Source
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.errors import DataRootError, SampleError


def list_files(source: Source) -> list[str]:
    """Every file's path relative to the source's root, ``/``-separated and sorted."""
    members = getattr(source, "members", None)
    if members is not None:  # a tar archive: its index
        return sorted(members)
    return sorted(p.relative_to(source.path).as_posix() for p in source.path.rglob("*") if p.is_file())


class ListedDataset(DepthDataset):
    """Samples found in a source; ``decode(source, record) -> (rgb, depth, own_valid or None)``.

    Args:
        spec: the benchmark's spec (its range and default crop make ``valid`` and ``mask``).
        source: where the files are.
        records: one tuple per sample, its first entry the sample id.
        decode: reads one record.
    """

    def __init__(self, spec: BenchmarkSpec, source: Source, records: list[tuple], decode: Callable):
        self.protocol, self.source, self.records, self.decode = spec, source, records, decode
        self.ids = [r[0] for r in records]

    def load(self, index: int) -> dict:
        record = self.records[index]
        rgb, depth, own_valid = self.decode(self.source, record)
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != rgb.shape[:2]:
            raise SampleError(f"{self.source.where(record[1])}: depth is {depth.shape[0]}x{depth.shape[1]} but "
                              f"its RGB image is {rgb.shape[0]}x{rgb.shape[1]}", path=record[1])
        return make_item(record[0], rgb, depth, *masks(depth, self.protocol, own_valid))

    def describe(self) -> dict:
        # no split file pins the samples, so the listing itself is hashed: a partial extraction
        # gives another protocol hash than the full release
        listing = hashlib.sha256("\n".join(self.ids).encode("utf-8")).hexdigest()
        return {"dataset": self.protocol.name, "source": str(self.source.path), "source_type": self.source.kind,
                "count": len(self.ids), "listing": "files found in the release's folders, sorted",
                "split_sha256": listing}


def locate(spec: BenchmarkSpec, root, marker: str) -> Source:
    """The extracted release of ``spec``: ``<root>/<spec.folder>/`` or ``root`` itself, whichever
    holds ``marker`` (a file or folder of the layout). ``root`` None: ``$MARIGOLD_DATA``.

    Raises:
        DataRootError: no root given, or neither place holds ``marker``; the message names both.
    """
    given = root if root is not None else os.environ.get("MARIGOLD_DATA") or None
    if given is None:
        raise DataRootError(f"{spec.title} data not found: no data root given (--data-root or $MARIGOLD_DATA); "
                            f"expected {spec.folder}/{marker} under it")
    base = Path(given).expanduser()
    candidates = [base / (spec.folder or spec.name), base]
    for cand in candidates:
        if (cand / marker).exists():
            return Source(cand)
    raise DataRootError(f"{spec.title} data not found: {marker} is in none of: "
                        f"{', '.join(map(str, candidates))} (an extracted release is expected)")


def open_listed(spec: BenchmarkSpec, root, marker: str, find: Callable[[Source, list[str]], list[tuple]],
                decode: Callable) -> ListedDataset:
    """Locate ``spec``'s files under ``root`` (`locate`), list them and keep the samples
    ``find(source, files)`` returns.

    Raises:
        DataRootError: the layout is not found, or it holds no sample.
    """
    source = locate(spec, root, marker)
    records = find(source, list_files(source))
    if not records:
        raise DataRootError(f"{spec.title}: no samples found in {source.path} (expected layout: see "
                            f"marigold_bench/data/{spec.name}.py)")
    return ListedDataset(spec, source, records, decode)


__all__ = ["ListedDataset", "list_files", "locate", "open_listed"]
