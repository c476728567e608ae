"""MoGe's evaluation pack: ten benchmarks in one sample-folder format, one spec each.

The pack (Hugging Face dataset ``Ruicheng/monocular-geometry-evaluation``, one zip per benchmark)
is read by :mod:`.moge_format` and brought to each benchmark's target size by :mod:`.moge_warp`,
exactly as MoGe's ``EvalDataLoaderPipeline`` does. The ten specs differ only in one row of facts
(MoGe's ``configs/eval/all_benchmarks.json``), so this one module states the table and makes the
ten :class:`MogeSpec` s from it, rather than ten modules that would repeat the same lines.

Layout: ``<data root>/moge/<Name>/`` (the benchmark's zip extracted there, e.g.
``moge/NYUv2/.index.txt``), ``<data root>/<Name>/`` (MoGe's own ``data/eval`` layout), the
benchmark folder itself, or a ``.tar`` of it. The split file lives in the benchmark folder:
``.index.txt`` (split ``index``, the default and what MoGe's ten-benchmark table uses); NYUv2 and
Spring also have ``.test.txt`` (split ``test``). A path to another file of sample folders works too.

Items carry ``id`` (the sample folder), ``rgb``, ``depth``, ``mask`` (= ``valid``: MoGe's
``depth_mask``; no crop, no range), ``intrinsics`` (float32 3x3 normalised, of the warped frame;
None when the sample's ``meta.json`` has none: then the sample is not warped and only depth
metrics can score it) and, on benchmarks with segmentation, ``segmentation`` (segment ids) and
``labels`` (the segments MoGe scores, ``{label: id}``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marigold_bench.data.base import DepthDataset, make_item, masks
from marigold_bench.data.moge_format import IMAGE, read_sample
from marigold_bench.data.moge_warp import warp_sample
from marigold_bench.data.source import Source, TarSource, open_source
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.errors import DataRootError, SplitNotFoundError

INDEX, TEST = ".index.txt", ".test.txt"


@dataclass(frozen=True, kw_only=True)
class MogeSpec(BenchmarkSpec):
    """A benchmark of MoGe's pack: a :class:`BenchmarkSpec` plus MoGe's per-benchmark facts.

    Attributes:
        target_size: ``(height, width)`` every sample is warped to.
        metric: whether the depth is in metres (MoGe's ``depth_unit`` is set): metric-depth and
            metric-point scores are defined.
        segmentation: whether samples have ``segmentation.png`` (local-point metrics).
        drop_max_depth: pixels deeper than this times the 1 % depth quantile are invalid.
        max_segments / min_seg_area: which segments local-point metrics score.
    """

    target_size: tuple[int, int]
    metric: bool
    segmentation: bool = False
    drop_max_depth: float = 1000.0
    max_segments: int = 100
    min_seg_area: int = 1000

    def to_dict(self) -> dict:
        """The recorded facts (:meth:`BenchmarkSpec.to_dict`) plus the pack's own."""
        return {**super().to_dict(), "pack": "moge", "target_size": list(self.target_size),
                "metric": self.metric, "segmentation": self.segmentation,
                "drop_max_depth": self.drop_max_depth}


def _split_file(spec: MogeSpec, split) -> tuple[str | None, Path | None]:
    """``(name inside the benchmark folder, None)`` for a named split, ``(None, path)`` for a
    user's file of sample folders."""
    if split is None:
        return spec.default_split, None
    text = os.fspath(split)
    if text in spec.splits:
        return spec.splits[text], None
    if text in spec.splits.values():
        return text, None
    if Path(text).is_file():
        return None, Path(text)
    raise SplitNotFoundError(f"split {text!r} for {spec.name} is neither one of its splits "
                             f"({', '.join(spec.splits)}) nor an existing file of sample folders")


def _records(text: str, where) -> list[str]:
    records = [line.strip() for line in text.splitlines() if line.strip()]
    if not records:
        raise SplitNotFoundError(f"split file {where} lists no sample folders")
    return records


def _find_source(spec: MogeSpec, root, probe: str) -> Source:
    """The benchmark's files: ``<root>/moge/<Name>`` (or the folder itself, or a .tar of it),
    then ``<root>/<Name>`` (MoGe's ``data/eval`` layout)."""
    try:
        return open_source(spec, root, [probe])
    except DataRootError as first:
        given = root if root is not None else os.environ.get("MARIGOLD_DATA") or None
        if given is not None:
            own = Path(given).expanduser() / Path(spec.folder).name
            if own.is_dir() and Source(own).exists(probe):
                return Source(own)
        raise first from None


@dataclass(frozen=True)
class MogePackLoader:
    """The ``loader`` of a :class:`MogeSpec`: ``loader(root, split, spec) -> MogeDataset``."""

    def __call__(self, root, split, spec: MogeSpec) -> "MogeDataset":
        name, user_file = _split_file(spec, split)
        if user_file is not None:
            data = user_file.read_bytes()
            records = _records(data.decode("utf-8"), user_file)
            source = _find_source(spec, root, f"{records[0]}/{IMAGE}")
            split_where = str(user_file.resolve())
        else:
            source = _find_source(spec, root, name)
            data = source.read(name)
            records = _records(data.decode("utf-8"), source.where(name))
            split_where = source.where(name)
        given = root if root is not None else os.environ.get("MARIGOLD_DATA")
        return MogeDataset(spec, source, records, split_where, hashlib.sha256(data).hexdigest(), given)


class MogeDataset(DepthDataset):
    """The samples of one benchmark of MoGe's pack, warped to its target size."""

    def __init__(self, spec: MogeSpec, source: Source, records: list[str], split_file: str,
                 split_sha256: str, root=None):
        self.protocol, self.source, self.ids = spec, source, list(records)
        self.split_file, self.split_sha256, self.root = split_file, split_sha256, root

    def load(self, index: int) -> dict:
        """Sample ``index`` warped to the target size (see the module docstring for its keys)."""
        spec, folder = self.protocol, self.ids[index]
        raw = read_sample(self.source, folder, segmentation=spec.segmentation)
        if raw.intrinsics is None:
            # without intrinsics MoGe's warp is undefined: keep the sample as stored, so that
            # depth metrics still score it (point metrics refuse it: intrinsics is None)
            image, depth, valid, k = raw.image, raw.depth, np.isfinite(raw.depth), None
            depth = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
            seg, labels = raw.segmentation, raw.labels
            if valid.any():
                valid &= depth <= np.quantile(depth[valid], 0.01) * spec.drop_max_depth
        else:
            out = warp_sample(raw.image, raw.depth, raw.intrinsics, spec.target_size, raw.segmentation,
                              raw.labels, spec.drop_max_depth, spec.max_segments, spec.min_seg_area)
            image, depth, valid, k, seg, labels = out.image, out.depth, out.mask, out.intrinsics, \
                out.segmentation, out.labels
        valid, mask = masks(depth, spec, valid)
        item = make_item(folder, image, depth, valid, mask)
        item["intrinsics"] = k
        if spec.segmentation:
            item["segmentation"], item["labels"] = seg, labels
        return item

    def describe(self) -> dict:
        """Where the samples come from, with the keys split-file benchmarks record."""
        return {
            "dataset": self.protocol.name,
            "root": None if self.root is None else str(self.root),
            "source": str(self.source.path),
            "source_type": self.source.kind,
            "split_file": self.split_file,
            "split_sha256": self.split_sha256,
            "split_official": False,  # the pack's lists are not pinned by checksum here
            "count": len(self.ids),
            "split_count": len(self.ids),
            "expected_count": None,
        }


LOADER = MogePackLoader()

#: MoGe's ``configs/eval/all_benchmarks.json``: suite name -> (MoGe's folder name, target
#: width, height, metric depth, sharp boundary, segmentation, extra split)
TABLE = {
    "nyu": ("NYUv2", 640, 480, True, False, False, TEST),
    "kitti": ("KITTI", 750, 375, True, False, False, None),
    "eth3d": ("ETH3D", 2048, 1365, True, False, True, None),
    "ibims": ("iBims-1", 640, 480, True, True, True, None),
    "gso": ("GSO", 512, 512, False, False, False, None),
    "sintel": ("Sintel", 872, 436, False, True, True, None),
    "ddad": ("DDAD", 1400, 700, True, False, True, None),
    "diode": ("DIODE", 1024, 768, True, False, True, None),
    "spring": ("Spring", 1920, 1080, False, True, False, TEST),
    "hammer": ("HAMMER", 1664, 832, True, True, False, None),
}


def make_spec(name: str, folder: str, width: int, height: int, metric: bool, sharp: bool,
              segmentation: bool, extra_split: str | None = None) -> MogeSpec:
    """The spec of one benchmark of the pack (``name`` without the ``moge/`` prefix)."""
    splits = {"index": INDEX}
    if extra_split is not None:
        splits["test"] = extra_split
    return MogeSpec(
        name=f"moge/{name}", title=f"{folder} (MoGe)", folder=f"moge/{folder}",
        # MoGe scores every pixel its loader keeps: no range test, no crop, no clipping range
        min_depth=0.0, max_depth=float("inf"), range_in_valid=False,
        default_split=INDEX, splits=splits, sharp_edges=sharp,
        target_size=(height, width), metric=metric, segmentation=segmentation,
        loader=LOADER, layout_doc="datasets/moge.md",
    )


NYU, KITTI, ETH3D, IBIMS, GSO, SINTEL, DDAD, DIODE, SPRING, HAMMER = (make_spec(n, *row) for n, row in TABLE.items())

#: the pack's specs by suite name (``moge/nyu``, ...), in MoGe's order
SPECS = {spec.name: spec for spec in (NYU, KITTI, ETH3D, IBIMS, GSO, SINTEL, DDAD, DIODE, SPRING, HAMMER)}

__all__ = ["DDAD", "DIODE", "ETH3D", "GSO", "HAMMER", "IBIMS", "INDEX", "KITTI", "LOADER", "NYU", "SINTEL",
           "SPECS", "SPRING", "TABLE", "TEST", "MogeDataset", "MogePackLoader", "MogeSpec", "make_spec"]
