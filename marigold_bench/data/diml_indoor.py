"""DIML indoor test set as ZoeDepth's ``diml_indoor_test.py`` reads it.

Layout (``diml_indoor/`` under the data root; ZoeDepth's root is ``DIML/indoor/sample/testset``)::

    diml_indoor/LR/<scene>/color/<name>_c.png                     8-bit RGB
    diml_indoor/LR/<scene>/depth_filled/<name>_depth_filled.png   16-bit depth in millimetres

Every ``LR/*/color/*.png`` is a sample, its depth named by replacing ``color`` with
``depth_filled`` and ``_c.png`` with ``_depth_filled.png`` (ZoeDepth's rule). The ground truth is
the *filled* depth, as ZoeDepth scores it. ZoeDepth resizes only the network input to 480x640.
Scored with its ``diml_indoor`` row: ``0 < d < 10`` inside NYU's Eigen window.
"""

from __future__ import annotations

import fnmatch

from marigold_bench.data import crops
from marigold_bench.data.listed import open_listed
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import read_png16, read_rgb


def find(source, files):
    out = []
    for rel in files:
        if fnmatch.fnmatch(rel, "LR/*/color/*.png") and rel.count("/") == 3:
            depth = rel.replace("color", "depth_filled").replace("_c.png", "_depth_filled.png")
            out.append((rel[:-4], rel, depth))
    return out


def decode(source, record):
    return read_rgb(source, record[1]), read_png16(source, record[2]) / 1000.0, None


def load(root, split, spec):
    return open_listed(spec, root, "LR", find, decode)


SPEC = BenchmarkSpec(
    name="diml_indoor", title="DIML indoor",
    folder="diml_indoor",
    min_depth=0.0, max_depth=10.0,
    crops={"eigen": crops.NYU_EIGEN}, default_crop="eigen",
    loader=load,
)
