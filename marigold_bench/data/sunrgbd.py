"""SUN RGB-D, test split, in the layout ZoeDepth's evaluation reads (``sun_rgbd_loader.py``).

Layout (the extracted test set, ``sunrgbd/`` under the data root)::

    sunrgbd/rgb/img-000001.jpg      8-bit RGB
    sunrgbd/depth/1.png             16-bit depth in 1/10000 m (the image's number, no padding)

Every ``rgb/img-<n>.jpg`` is a sample; its depth is ``depth/<int(n)>.png`` (ZoeDepth lists the
``rgb`` folder and derives the depth name the same way). Depth above 8 m is invalid (ZoeDepth
sets it to -1), so valid is ``0 < d < 8``: ZoeDepth's ``min_depth_eval`` 0 and
``max_depth_eval`` 8, scored inside NYU's fixed Eigen window (``eigen_crop``; frames of SUN
RGB-D's sensors differ in size, and ZoeDepth applies the same pixel window to all).

Not pinned here: the list of test images (ZoeDepth globs whatever the folder holds; the split
commonly used has 5050 images, but no file read here fixes it), so no expected count is checked.
"""

from __future__ import annotations

import posixpath
import re

from marigold_bench.data import crops
from marigold_bench.data.listed import open_listed
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import read_png16, read_rgb

_RGB = re.compile(r"^rgb/img-(\d+)\.jpg$")


def find(source, files):
    # a missing depth file is not skipped: reading the sample fails and names it
    return [(posixpath.splitext(rel)[0], rel, f"depth/{int(m.group(1))}.png")
            for rel in files if (m := _RGB.match(rel))]


def decode(source, record):
    rgb = read_rgb(source, record[1])
    depth = read_png16(source, record[2]) / 10000.0
    return rgb, depth, None


def load(root, split, spec):
    return open_listed(spec, root, "rgb", find, decode)


SPEC = BenchmarkSpec(
    name="sunrgbd", title="SUN RGB-D",
    folder="sunrgbd",
    min_depth=0.0, max_depth=8.0,
    crops={"eigen": crops.NYU_EIGEN}, default_crop="eigen",
    loader=load,
)
