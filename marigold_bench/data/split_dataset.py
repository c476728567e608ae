"""The one dataset class behind every split-file benchmark: a split file drives it, a module decodes.

Each benchmark module states a :class:`Benchmark` (which split columns name files, which lines to
keep, how to decode one record) beside its spec, and this module does the rest: resolve the split
and the data root, name samples, apply the spec's validity, range and default crop, and report
where it all came from. Decoding helpers turn any read or decode failure into a :class:`SampleError` that names
the file, so a bad sample never surfaces as a bare library traceback.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from marigold_bench.data.base import DepthDataset, make_item, masks
from marigold_bench.data.source import Source, leaves_root, open_source
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.splits import SplitFile, resolve_split
from marigold_bench.errors import SampleError, SplitNotFoundError

Record = tuple[str, ...]
#: decode(source, record) -> (rgb uint8 HxWx3, depth float metres HxW, own validity or None)
Decoder = Callable[[Source, Record], tuple[np.ndarray, np.ndarray, "np.ndarray | None"]]


def keep_all(record: Record) -> bool:
    return True


class SplitCountWarning(UserWarning):
    """A split yields another number of samples than its official list; scores are not comparable."""


def official_relpath(protocol: BenchmarkSpec, split) -> str | None:
    """The official list a split request names (None for a user's own file), resolved in the
    order :func:`~marigold_bench.data.splits.resolve_split` uses."""
    if split is None:
        return protocol.default_split
    text = os.fspath(split)
    if text in protocol.splits:
        return protocol.splits[text]
    if Path(text).is_file():
        return None
    return text if text in protocol.split_files else None


def expected_count(protocol: BenchmarkSpec, split) -> int | None:
    """How many samples the official split must yield: ``protocol.expected_count`` for the test
    split (KITTI's drops the 45 lines without ground truth), the line count the spec records for
    its other official lists, None for a user's file."""
    relpath = official_relpath(protocol, split)
    if relpath is None:
        return None
    if relpath == protocol.default_split:
        return protocol.expected_count
    facts = protocol.split_files.get(relpath)
    return None if facts is None else facts.lines


@dataclass(frozen=True)
class Benchmark:
    """What differs between benchmarks; everything else is shared.

    Attributes:
        name: the benchmark's name, for messages.
        file_columns: split columns that are paths; the first sample's are probed to recognise a
            data root and ``data verify`` checks them all.
        decode: reads one record (module-level function, so datasets pickle for workers).
        keep: which split lines are samples (KITTI drops lines without ground truth).
        check: extra decoding that only ``data verify`` does, for files listed but not scored.
    """

    name: str
    file_columns: tuple[int, ...]
    decode: Decoder
    keep: Callable[[Record], bool] = keep_all
    check: Callable[[Source, Record], object] | None = None

    def records(self, split: SplitFile) -> list[Record]:
        """The samples of a split file, checked to have every file column."""
        need = max(self.file_columns) + 1
        for number, record in enumerate(split.records, 1):
            if len(record) < need:
                raise SplitNotFoundError(f"{split.path}: record {number} has {len(record)} "
                                         f"field(s), {self.name} needs at least {need}")
            outside = [rel for rel in self.files(record) if leaves_root(rel)]
            if outside:
                # never read (and score) a file outside the data root because a list says so
                raise SplitNotFoundError(f"{split.path}: record {number} ({' '.join(record)}) names "
                                         f"{outside[0]}, outside the data root (an absolute path or '..'); "
                                         "split files name files relative to the data root")
        kept = [r for r in split.records if self.keep(r)]
        if not kept:
            raise SplitNotFoundError(f"split file {split.path} has no {self.name} samples")
        return kept

    def files(self, record: Record) -> list[str]:
        return [record[c] for c in self.file_columns]

    def open(self, root, split, protocol: BenchmarkSpec) -> "SplitDataset":
        """Resolve the split and the data root; a sample count other than the official one is a
        :class:`SplitCountWarning` (the run goes on, and ``describe()`` records both counts)."""
        split_file = resolve_split(protocol, split)
        records = self.records(split_file)
        source = open_source(protocol, root, self.files(records[0]), split_file.path)
        root = root if root is not None else os.environ.get("MARIGOLD_DATA")
        expected = expected_count(protocol, split)
        if expected is not None and len(records) != expected:
            warnings.warn(f"{split_file.path} yields {len(records)} {self.name} samples but the official split "
                          f"has {expected}: scores will not be comparable with published ones (the run "
                          f"continues; summary.json records both counts)", SplitCountWarning, stacklevel=3)
        return SplitDataset(self, source, split_file, records, protocol, root, expected)

    def __call__(self, root, split, spec: BenchmarkSpec) -> "SplitDataset":
        """A spec's ``loader``: the same as :meth:`open`."""
        return self.open(root, split, spec)


def sample_id(record: Record) -> str:
    """The contract's id: the RGB path of the line without its extension."""
    return os.path.splitext(record[0])[0]


class SplitDataset(DepthDataset):
    """Samples listed by a split file, read from a :class:`Source`."""

    def __init__(self, benchmark: Benchmark, source: Source, split_file: SplitFile,
                 records: list[Record], protocol: BenchmarkSpec, root=None, expected_count: int | None = None):
        self.benchmark, self.source, self.split_file = benchmark, source, split_file
        self.records, self.protocol, self.root = records, protocol, root
        self.expected_count = expected_count
        self.ids = [sample_id(r) for r in records]

    def load(self, index: int) -> dict:
        record = self.records[index]
        rgb, depth, own_valid = self.benchmark.decode(self.source, record)
        # Masks are computed on the float32 values the item carries, as upstream compares them.
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != rgb.shape[:2]:
            where = self.source.where(record[1])
            raise SampleError(f"{where}: depth is {depth.shape[0]}x{depth.shape[1]} but its RGB "
                              f"image is {rgb.shape[0]}x{rgb.shape[1]}", path=where)
        return make_item(self.ids[index], rgb, depth, *masks(depth, self.protocol, own_valid))

    def describe(self) -> dict:
        return {
            "dataset": self.benchmark.name,
            "root": None if self.root is None else str(self.root),
            "source": str(self.source.path),
            "source_type": self.source.kind,
            "split_file": str(self.split_file.path),
            "split_sha256": self.split_file.sha256,
            "split_official": self.split_file.official,
            "count": len(self.ids),
            # samples the split file yields and what its official list yields (None: not an
            # official list); they differ only after a SplitCountWarning
            "split_count": len(self.ids),
            "expected_count": self.expected_count,
        }


# --- decoding helpers ----------------------------------------------------------------------

def _fail(source: Source, rel: str, err) -> SampleError:
    where = source.where(rel)
    return SampleError(f"cannot decode {where}: {err}", path=where)


def _open_image(source: Source, rel: str) -> Image.Image:
    data = source.read(rel)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # decode now, so truncated files fail here and name themselves
    except Exception as err:  # Pillow raises many types for bad files
        raise _fail(source, rel, err) from None
    return image


def read_rgb(source: Source, rel: str) -> np.ndarray:
    """An 8-bit colour image as uint8 HxWx3."""
    image = _open_image(source, rel)
    if image.mode not in ("RGB", "RGBA", "L", "P", "CMYK", "YCbCr"):
        raise _fail(source, rel, f"expected an 8-bit colour image, got mode {image.mode}")
    return np.asarray(image.convert("RGB"))


def read_png16(source: Source, rel: str) -> np.ndarray:
    """A 16-bit single-channel PNG as uint16, never rescaled or clipped to 8 bits."""
    image = _open_image(source, rel)
    if not image.mode.startswith("I"):
        raise _fail(source, rel, f"expected a 16-bit depth PNG, got mode {image.mode}")
    values = np.asarray(image)
    if values.dtype != np.uint16:  # some Pillow versions hand 16-bit PNGs over as int32
        if values.min() < 0 or values.max() > 65535:
            raise _fail(source, rel, "values outside the 16-bit range")
        values = values.astype(np.uint16)
    return values


def read_npy(source: Source, rel: str) -> np.ndarray:
    data = source.read(rel)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:  # numpy raises ValueError/EOFError/... for bad files
        raise _fail(source, rel, err) from None


def read_float32_raw(source: Source, rel: str, shape: tuple[int, int]) -> np.ndarray:
    """A headerless little-endian float32 HxW map; the byte size must match the shape exactly."""
    data = source.read(rel)
    h, w = shape
    if len(data) != 4 * h * w:
        raise _fail(source, rel, f"{len(data)} bytes, expected {4 * h * w} "
                                 f"(float32 {h}x{w}, the size of its RGB image)")
    return np.frombuffer(data, dtype="<f4").reshape(h, w).astype(np.float32)
