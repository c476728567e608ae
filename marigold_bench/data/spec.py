"""`BenchmarkSpec`: everything a benchmark is, declared in one place.

Each benchmark module (``nyu.py``, ``kitti.py``, ...) ends with a ``SPEC`` that states its
title and task, where its files live (folder, official archive, extra archives), the valid depth
range, the evaluation crops it offers, its split files with their sample counts and sha256, its
processing defaults, named subsets and whether its ground truth has sharp edges; plus the one
function that opens it. The machinery (:mod:`.split_dataset`, :mod:`.source`, :mod:`.splits`,
:mod:`.download`) reads these facts and names no benchmark; :mod:`.registry` maps names to
specs. A plugin adds a benchmark by providing another ``SPEC``.

A spec is also what ``dataset.protocol`` is: the attribute names of 0.3's ``Protocol``
(``min_depth``, ``fit_space``, ``eval_mask``, ``default_split``, ...) keep working, and
:meth:`BenchmarkSpec.to_dict` records exactly the keys ``summary.json`` always had.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from marigold_bench.data.crops import BY_ID, NONE, Crop
from marigold_bench.errors import BenchError, FrameError
from marigold_bench.frames import FRAMES, check_frame

#: how ``summary.json["protocol"]`` has recorded a benchmark since 0.2 (keys and order)
RECORDED_KEYS = ("name", "min_depth", "max_depth", "eval_mask", "range_in_valid", "fit_space",
                 "fit_max_resolution", "fit_downsample", "processing_res", "default_split",
                 "expected_count", "splits", "padding")


class SplitFileFacts(NamedTuple):
    """An official split file: its sha256 and how many lines (records) it has."""

    sha256: str
    lines: int


class UnknownCropError(BenchError, ValueError):
    """A crop name the benchmark does not offer."""


@dataclass(frozen=True, kw_only=True)
class BenchmarkSpec:
    """What one benchmark is.

    Attributes:
        name: the benchmark's name on the command line (``--dataset``).
        title: how tables print it (``"NYUv2"``).
        task: what its ground truth is: ``"depth"`` or ``"normals"`` (surface normals; then
            :attr:`frame` says in which camera frame, and the depth fields are unused).
        dataset: the benchmark name it answers to when a task is asked for
            (``get_benchmark("nyu", task="normals")`` finds ``nyu-normals`` by it); empty: its
            own :attr:`name`.
        frame: the camera frame of normals ground truth (``"opengl"``, ``"opencv"``; see
            :mod:`marigold_bench.frames`); None for depth.
        folder / archive / extra_archives: layout of the official download: the folder under a
            base data root, the official archive inside it, and further archives there that hold
            other splits (KITTI's validation frames). None for a benchmark without files.
        min_depth / max_depth: valid ground-truth range, exclusive on both ends; the aligned
            prediction is clipped to it after the fit.
        range_in_valid: whether the range test is part of the validity mask (DIODE ships its own
            mask and only clips predictions to its range).
        crops: evaluation crops offered, by name; always has ``"none"``.
        default_crop: the crop the benchmark's own protocol scores with; baked into
            ``item["valid"]`` (``item["mask"]`` has no crop).
        fit_space: ``"depth"`` or ``"disparity"``, where scale and shift are fitted.
        fit_max_resolution: fit on a copy whose longer side is at most this (ETH3D: 1024).
        fit_downsample: ``"width_only"`` (the official code's 1-D resampling) or ``"2d"``.
        processing_res: default processing resolution for inference (0 = native).
        seed: the seed the benchmark's official inference script runs with (Marigold's normals
            scripts: 1234 or 4321 by benchmark); None: the suite's default.
        padding: the geometry Marigold checkpoints default to under the ``marigold`` protocol
            (``"none"`` for ETH3D, as its official evaluation ran; None = the suite's default).
        default_split: split file (relative to the splits root) of the test set.
        expected_count: samples the test split must yield (KITTI: lines with ground truth only).
        splits: split name -> split file relative path.
        split_files: relative path -> :class:`SplitFileFacts` of the official split files.
        splits_url: base URL the official split files are downloaded from (None: not hosted).
        subsets: named parts reported beside the whole (DIODE: ``indoor``/``outdoor``), each a
            predicate on the sample id (module-level functions, so specs pickle).
        sharp_edges: ground truth has exact depth edges, so boundary F1 is meaningful
            (MoGe's ``has_sharp_boundary``).
        needs_root: whether it reads files from a data root (the procedural benchmark does not).
        loader: ``loader(root, split, spec) -> DepthDataset``, how to open it.
        layout_doc: for a benchmark without an ``archive`` to download, the document (a
            repository path) that says where its files go; None: no such pointer.
        origin: ``"built-in"``, or where a plugin came from.
    """

    name: str
    title: str = ""
    task: str = "depth"
    dataset: str = ""
    frame: str | None = None
    folder: str | None = None
    archive: str | None = None
    extra_archives: tuple[str, ...] = ()
    min_depth: float
    max_depth: float
    range_in_valid: bool = True
    crops: Mapping[str, Crop] = field(default_factory=lambda: {"none": NONE})
    default_crop: str = "none"
    fit_space: str = "depth"
    fit_max_resolution: int | None = None
    fit_downsample: str = "width_only"
    processing_res: int = 0
    seed: int | None = None
    padding: str | None = None
    default_split: str | None = None
    expected_count: int | None = None
    splits: Mapping[str, str] = field(default_factory=dict)
    split_files: Mapping[str, SplitFileFacts] = field(default_factory=dict)
    splits_url: str | None = None
    subsets: Mapping[str, Callable[[str], bool]] = field(default_factory=dict)
    sharp_edges: bool = False
    needs_root: bool = True
    loader: Callable[..., Any] | None = None
    layout_doc: str | None = None
    origin: str = "built-in"

    def __post_init__(self):
        # a spec always offers "no crop", so a protocol can ask for it on any benchmark
        if "none" not in self.crops:
            object.__setattr__(self, "crops", {**self.crops, "none": NONE})
        if not self.title:
            object.__setattr__(self, "title", self.name)
        if not self.dataset:
            object.__setattr__(self, "dataset", self.name)
        if self.task == "normals":
            # a normals map means nothing without its axes: a spec must say which
            if self.frame is None:
                raise FrameError(f"{self.name}: a normals benchmark must declare its frame "
                                 f"({', '.join(FRAMES)})")
            check_frame(self.frame)
        if self.default_crop not in self.crops:
            raise UnknownCropError(f"{self.name}: default crop {self.default_crop!r} is not one of its "
                                   f"crops ({', '.join(self.crops)})")

    # --- crops ---------------------------------------------------------------------------

    def crop(self, name: str | None = None) -> Crop:
        """The crop called ``name`` (None: :attr:`default_crop`).

        Raises:
            UnknownCropError: the benchmark does not offer it; the message lists what it offers.
        """
        name = self.default_crop if name is None else name
        try:
            return self.crops[name]
        except KeyError:
            raise UnknownCropError(f"{self.name} has no crop {name!r}; its crops: "
                                   f"{', '.join(self.crops)}") from None

    def crop_mask(self, crop: str | None, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask of crop ``crop`` (None: the default crop) for an image of ``shape`` (H, W)."""
        return self.crop(crop)(shape)

    @property
    def eval_mask(self) -> str | None:
        """The default crop as 0.3 recorded it (``"eigen"``, ``"kitti_eigen"``, ..., None)."""
        return self.crops[self.default_crop].recorded

    # --- splits --------------------------------------------------------------------------

    @property
    def split_sha256(self) -> dict[str, str]:
        """Relative path -> sha256 of each official split file."""
        return {rel: facts.sha256 for rel, facts in self.split_files.items()}

    @property
    def layout(self) -> str | None:
        """``folder/archive`` of the official download, for listings (None without files)."""
        if self.folder is None:
            return None
        return f"{self.folder}/{self.archive}" if self.archive else f"{self.folder}/"

    # --- opening and recording -----------------------------------------------------------

    def open(self, root=None, split=None):
        """Open the benchmark: ``root`` as ``load_dataset`` takes it, ``split`` a name, an
        official relative path or a split file (None: the test split)."""
        if self.loader is None:
            raise BenchError(f"benchmark {self.name} declares no loader")
        return self.loader(root, split, self)

    def to_dict(self) -> dict:
        """The JSON-ready facts ``summary.json["protocol"]`` records (0.3's keys, exactly: the CI
        baseline compares them), plus ``task`` and ``frame`` for a benchmark of another task."""
        facts = {key: getattr(self, key) for key in RECORDED_KEYS}
        facts["splits"] = dict(self.splits)
        if self.task != "depth":  # new keys only where new: depth records stay byte-identical
            facts["task"], facts["frame"] = self.task, self.frame
        return facts

    def replace(self, **changes) -> "BenchmarkSpec":
        """A copy with ``changes``; ``eval_mask=`` (0.3's name) picks the default crop by the id it
        recorded (``"kitti_garg"``) or by its name here (``"garg"``)."""
        if "eval_mask" in changes:
            changes["default_crop"] = self._crop_named(changes.pop("eval_mask"))
        return dataclasses.replace(self, **changes)

    def _crop_named(self, recorded: str | None) -> str:
        wanted = "none" if recorded is None else recorded
        if wanted in self.crops:
            return wanted
        for name, crop in self.crops.items():
            if crop.id == wanted:
                return name
        known = sorted({*self.crops, *(c.id for c in self.crops.values())} - {"none"})
        if wanted in BY_ID:
            raise UnknownCropError(f"{self.name} does not offer crop {wanted!r} (its crops: {', '.join(known)})")
        raise UnknownCropError(f"unknown evaluation mask {wanted!r}; {self.name} offers: {', '.join(known) or 'none'}")


__all__ = ["BenchmarkSpec", "RECORDED_KEYS", "SplitFileFacts", "UnknownCropError"]
