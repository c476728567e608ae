"""HyperSim test split as an evaluation benchmark, read by the training loader (`.hypersim`).

The frames are those of Marigold's preprocessed Hypersim test list
(``hypersim_depth/filename_list_test_filtered.txt``: 480x640 tone-mapped PNG and planar depth
in millimetres), scored with ZoeDepth's ``hypersim_test`` row: ``1e-3 < d < 80`` inside NYU's
fixed Eigen window.

Not the same frames as ZoeDepth's numbers: ZoeDepth's loader globs the raw renders
(``<scene>/images/scene_cam_*_final_preview/*.tonemap.jpg`` with the ``*.depth_meters.hdf5``
distance converted to planar depth) at 1024x768 under whatever root it is given, so its frame
list and resolution (and so which pixels its fixed Eigen window covers) differ from these.
"""

from __future__ import annotations

from marigold_bench.data import crops, hypersim
from marigold_bench.data.spec import BenchmarkSpec

TEST = "hypersim_depth/filename_list_test_filtered.txt"


def load(root, split, spec):
    return hypersim.load(root, split or "test", spec)


SPEC = BenchmarkSpec(
    name="hypersim_test", title="HyperSim (test)",
    folder="hypersim",
    min_depth=1e-3, max_depth=80.0,
    crops={"eigen": crops.NYU_EIGEN}, default_crop="eigen",
    default_split=TEST, expected_count=hypersim.PROTOCOL.split_files[TEST].lines,
    splits={"test": TEST},
    split_files={TEST: hypersim.PROTOCOL.split_files[TEST]},
    splits_url=hypersim.PROTOCOL.splits_url,
    loader=load,
)
