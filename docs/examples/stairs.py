"""A benchmark in one file: ``stairs``, four rendered flights of stairs (docs/adding-a-benchmark.md).

Use it with ``marigold-bench --include docs/examples run --dataset stairs ...``. Nothing in the
package is edited: this module-level ``SPEC`` is the whole benchmark.

Each image is 8 x 12 pixels. Row ``r`` of image ``k`` is a step at ``1 + k/2 + r // 2``
metres (four steps of two rows: 1, 2, 3, 4 m for image 0), and its top-left pixel has no
measurement (depth 0, so outside the valid range and not scored). The benchmark scores inside a
one-pixel border (crop ``inner``), as many real benchmarks leave out their borders.
"""

import numpy as np

from marigold_bench.data.base import DepthDataset, make_item, masks
from marigold_bench.data.crops import Crop
from marigold_bench.data.spec import BenchmarkSpec

HEIGHT, WIDTH, COUNT = 8, 12, 4


def _inner(height, width):
    # the kept rows top:bottom and columns left:right
    return 1, height - 1, 1, width - 1


def stairs_depth(k):
    """The ground-truth depth of image ``k`` in metres (0 where nothing was measured)."""
    rows = 1.0 + 0.5 * k + np.arange(HEIGHT) // 2
    depth = np.repeat(rows[:, None], WIDTH, axis=1).astype(np.float32)
    depth[0, 0] = 0.0  # no measurement
    return depth


class StairsDataset(DepthDataset):
    """The benchmark's samples. A loader returns any `DepthDataset`: ``load(i)`` gives one item
    (``make_item`` checks the contract), ``describe()`` what ``summary.json`` records."""

    def __init__(self, spec):
        self.protocol = spec  # the run reads its facts (range, crop) from here
        self.ids = [f"flight_{k}" for k in range(COUNT)]

    def load(self, index):
        depth = stairs_depth(index)
        grey = (255 * (depth / depth.max())).astype(np.uint8)
        rgb = np.stack([grey, grey, grey], axis=-1)
        # valid: the range and the default crop; mask: the range only (a protocol may pick another crop)
        valid, mask = masks(depth, self.protocol)
        return make_item(self.ids[index], rgb, depth, valid, mask)

    def describe(self):
        return {"root": None, "split": "stairs:test", "count": len(self.ids)}


def open_stairs(root, split, spec):
    """``loader(root, split, spec)``: open the benchmark (it reads no files, so ``root`` and
    ``split`` are ignored)."""
    return StairsDataset(spec)


SPEC = BenchmarkSpec(
    name="stairs", title="Stairs",
    min_depth=0.1, max_depth=10.0,             # valid ground truth lies strictly inside
    crops={"inner": Crop("stairs_inner", _inner, "a one-pixel border left out")},
    default_crop="inner",                      # what the benchmark's own protocol scores
    needs_root=False,                          # no --data-root needed
    loader=open_stairs,
)
