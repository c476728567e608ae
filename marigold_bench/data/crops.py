"""Named evaluation crops: which part of a frame a benchmark's published numbers score.

A crop is a function of the image size (H, W) that returns a boolean mask. Benchmarks list the
crops they offer (always ``"none"``) in their :class:`~marigold_bench.data.spec.BenchmarkSpec`,
and an evaluation protocol picks one by name at scoring time. Each :class:`Crop` also carries an
``id`` that is unique across benchmarks: it is what ``summary.json`` has always recorded as
``eval_mask`` (``"eigen"``, ``"kitti_eigen"``, ``"kitti_garg"``, or null for no crop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Window = Callable[[int, int], tuple[int, int, int, int]]


@dataclass(frozen=True)
class Crop:
    """A rectangular evaluation crop.

    Attributes:
        id: unique name across benchmarks (recorded as ``eval_mask``; ``"none"`` records null).
        window: ``(h, w) -> (top, bottom, left, right)``, the kept rows ``top:bottom`` and
            columns ``left:right`` (a module-level function, so datasets pickle for workers).
        note: where the crop comes from, for listings.
    """

    id: str
    window: Window
    note: str = ""

    def __call__(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask of the crop for an image of ``shape`` (H, W)."""
        h, w = shape[:2]
        top, bottom, left, right = self.window(h, w)
        mask = np.zeros((h, w), dtype=bool)
        mask[top:bottom, left:right] = True
        return mask

    @property
    def recorded(self) -> str | None:
        """The value ``summary.json`` records as ``eval_mask`` (null for no crop)."""
        return None if self.id == "none" else self.id


def _whole(h: int, w: int):
    return 0, h, 0, w


def _nyu_eigen(h: int, w: int):
    # fixed pixel bounds, defined on NYUv2's 480x640 frame (the loader refuses other sizes)
    return 45, 471, 41, 601


def _kitti_eigen(h: int, w: int):
    # fractions of the 352x1216 benchmark-cropped frame, truncated as the official code does
    return int(0.3324324 * h), int(0.91351351 * h), int(0.0359477 * w), int(0.96405229 * w)


def _kitti_garg(h: int, w: int):
    return int(0.40810811 * h), int(0.99189189 * h), int(0.03594771 * w), int(0.96405229 * w)


NONE = Crop("none", _whole, "every pixel")
NYU_EIGEN = Crop("eigen", _nyu_eigen, "Eigen et al. 2014 crop of NYUv2: rows 45-470, columns 41-600")
KITTI_EIGEN = Crop("kitti_eigen", _kitti_eigen, "Eigen et al. 2014 crop of KITTI")
KITTI_GARG = Crop("kitti_garg", _kitti_garg, "Garg et al. 2016 crop of KITTI")

#: every built-in crop by its unique id, for reading what a summary recorded
BY_ID = {c.id: c for c in (NONE, NYU_EIGEN, KITTI_EIGEN, KITTI_GARG)}

__all__ = ["BY_ID", "Crop", "KITTI_EIGEN", "KITTI_GARG", "NONE", "NYU_EIGEN"]
