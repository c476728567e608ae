"""Virtual KITTI 2 as an evaluation benchmark, read by the training loader (`.vkitti`).

Frames: Marigold's Virtual KITTI 2 validation list (``vkitti_depth/vkitti_val.txt``), KITTI
benchmark-cropped to 352x1216 (ZoeDepth's ``do_kb_crop``), depth in centimetres / 100, scored
with ZoeDepth's ``vkitti2`` row: ``1e-3 < d < 80`` inside Garg's crop.

Not pinned: ZoeDepth's own test list. Its ``vkitti2.py`` writes ``test.txt`` on first use from an
unseeded ``random.shuffle`` (8 % of each scene's Camera_0 frames), so no published list exists to
reproduce; the validation list here is the fixed one the suite already has.
"""

from __future__ import annotations

from marigold_bench.data import crops, vkitti
from marigold_bench.data.spec import BenchmarkSpec

VAL = "vkitti_depth/vkitti_val.txt"


def load(root, split, spec):
    return vkitti.load(root, split or "val", spec)


SPEC = BenchmarkSpec(
    name="vkitti2", title="Virtual KITTI 2",
    folder="vkitti",
    min_depth=1e-3, max_depth=80.0,
    crops={"garg": crops.KITTI_GARG}, default_crop="garg",
    default_split=VAL, expected_count=vkitti.PROTOCOL.split_files[VAL].lines,
    splits={"val": VAL},
    split_files={VAL: vkitti.PROTOCOL.split_files[VAL]},
    splits_url=vkitti.PROTOCOL.splits_url,
    loader=load,
)
