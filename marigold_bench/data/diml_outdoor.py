"""DIML outdoor test set as ZoeDepth's ``diml_outdoor_test.py`` reads it.

Layout (``diml_outdoor/`` under the data root; ZoeDepth's root is ``DIML/outdoor/test/LR``)::

    diml_outdoor/outleft/<name>.png    8-bit RGB (left camera)
    diml_outdoor/depthmap/<name>.png   16-bit depth in millimetres, same name

Scored with ZoeDepth's ``diml_outdoor`` row: ``2 < d < 80`` inside Garg's crop.
"""

from __future__ import annotations

from marigold_bench.data import crops
from marigold_bench.data.listed import open_listed
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import read_png16, read_rgb


def find(source, files):
    return [(rel[:-4], rel, "depthmap/" + rel[len("outleft/"):])
            for rel in files if rel.startswith("outleft/") and rel.endswith(".png") and rel.count("/") == 1]


def decode(source, record):
    return read_rgb(source, record[1]), read_png16(source, record[2]) / 1000.0, None


def load(root, split, spec):
    return open_listed(spec, root, "outleft", find, decode)


SPEC = BenchmarkSpec(
    name="diml_outdoor", title="DIML outdoor",
    folder="diml_outdoor",
    min_depth=2.0, max_depth=80.0,
    crops={"garg": crops.KITTI_GARG}, default_crop="garg",
    loader=load,
)
