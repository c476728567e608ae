"""Evaluation protocol of each benchmark, in one place.

A :class:`Protocol` holds every choice that changes a benchmark's numbers: the valid depth range,
the evaluation crop or mask, the space and resolution of the least-squares fit, the clipping
after the fit and the default processing resolution. The evaluator reads nothing else, and
``summary.json`` records the resolved protocol of every run so that numbers stay comparable.
Values follow the official Marigold evaluation (see ``datasets/<name>.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Protocol:
    """Protocol facts of one benchmark.

    Attributes:
        name: benchmark name as used on the command line.
        min_depth / max_depth: valid ground-truth range, exclusive on both ends; the aligned
            prediction is clipped to it after the fit.
        eval_mask: named evaluation crop applied on top of validity (``"eigen"`` for NYU's
            Eigen crop, ``"kitti_eigen"`` / ``"kitti_garg"`` for KITTI, ``None`` for none).
        range_in_valid: whether ``min_depth < d < max_depth`` is part of the validity mask
            (DIODE ships its own mask and only clips predictions to its range).
        fit_space: ``"depth"`` or ``"disparity"`` -- where scale and shift are fitted.
        fit_max_resolution: fit on a copy whose longer side is at most this (ETH3D: 1024).
        fit_downsample: ``"width_only"`` reproduces the official code's 1-D resampling quirk,
            ``"2d"`` is a true 2-D nearest-neighbour downsample.
        processing_res: default processing resolution for inference (0 = native).
        default_split: split file (relative to the splits root) of the test set.
        expected_count: number of samples the test split must yield.
        splits: named alternative split files (e.g. the ablation validation subsets).
        padding: the geometry Marigold checkpoints default to under the ``marigold`` evaluation
            protocol (``"none"``: the official pipeline's, as its ETH3D evaluation ran; None:
            the suite's default, ``"replicate"``); ``--padding`` overrides it.
    """

    name: str
    min_depth: float
    max_depth: float
    eval_mask: str | None = None
    range_in_valid: bool = True
    fit_space: str = "depth"
    fit_max_resolution: int | None = None
    fit_downsample: str = "width_only"
    processing_res: int = 0
    default_split: str | None = None
    expected_count: int | None = None
    splits: dict = field(default_factory=dict)
    padding: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "Protocol":
        return dataclasses.replace(self, **changes)


PROTOCOLS: dict[str, Protocol] = {
    "nyu": Protocol(
        "nyu", 1e-3, 10.0, eval_mask="eigen",
        default_split="nyu_depth/labeled/filename_list_test.txt", expected_count=654,
        splits={"test": "nyu_depth/labeled/filename_list_test.txt",
                "train": "nyu_depth/labeled/filename_list_train.txt",
                "train_small_100": "nyu_depth/labeled/filename_list_train_small_100.txt"},
    ),
    "kitti": Protocol(
        "kitti", 1e-5, 80.0, eval_mask="kitti_eigen",
        default_split="kitti_depth/eigen_test_files_with_gt.txt", expected_count=652,
        splits={"test": "kitti_depth/eigen_test_files_with_gt.txt",
                "val_800": "kitti_depth/eigen_val_from_train_800.txt",
                "val_100": "kitti_depth/eigen_val_from_train_sub_100.txt"},
    ),
    "eth3d": Protocol(
        "eth3d", 1e-5, float("inf"), fit_max_resolution=1024, processing_res=756,
        default_split="eth3d_depth/eth3d_filename_list.txt", expected_count=454,
        splits={"test": "eth3d_depth/eth3d_filename_list.txt"}, padding="none",
    ),
    "scannet": Protocol(
        "scannet", 1e-3, 10.0,
        default_split="scannet_depth/scannet_val_sampled_list_800_1.txt", expected_count=800,
        splits={"test": "scannet_depth/scannet_val_sampled_list_800_1.txt"},
    ),
    "diode": Protocol(
        "diode", 0.6, 350.0, range_in_valid=False, processing_res=640,
        default_split="diode_depth/diode_val_all_filename_list.txt", expected_count=771,
        splits={"test": "diode_depth/diode_val_all_filename_list.txt",
                "all": "diode_depth/diode_val_all_filename_list.txt",
                "indoor": "diode_depth/diode_val_indoor_filename_list.txt",
                "outdoor": "diode_depth/diode_val_outdoor_filename_list.txt"},
    ),
    # Procedural scenes with exact depth; see marigold_bench.data.synthetic.
    "synthetic": Protocol("synthetic", 1e-3, 200.0, expected_count=None),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        known = ", ".join(sorted(PROTOCOLS))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def eval_mask(kind: str | None, shape: tuple[int, int]) -> np.ndarray:
    """Boolean evaluation mask of the named crop for an image of ``shape`` (H, W)."""
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    if kind is None:
        mask[:] = True
    elif kind == "eigen":  # NYUv2 Eigen crop, defined on 480x640
        mask[45:471, 41:601] = True
    elif kind == "kitti_eigen":  # on the 352x1216 benchmark-cropped frame
        mask[int(0.3324324 * h):int(0.91351351 * h), int(0.0359477 * w):int(0.96405229 * w)] = True
    elif kind == "kitti_garg":
        mask[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    else:
        raise ValueError(f"unknown evaluation mask {kind!r}")
    return mask


def valid_mask(depth: np.ndarray, protocol: Protocol, base: np.ndarray | None = None) -> np.ndarray:
    """The pixels a benchmark scores: its own validity (``base``), its range and its crop."""
    valid = np.isfinite(depth) if base is None else base.astype(bool) & np.isfinite(depth)
    if protocol.range_in_valid:
        valid &= (depth > protocol.min_depth) & (depth < protocol.max_depth)
    return valid & eval_mask(protocol.eval_mask, depth.shape)
