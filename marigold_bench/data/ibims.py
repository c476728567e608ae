"""iBims-1, its official release (``ibims1_core_raw``), as ZoeDepth's ``ibims.py`` reads it.

Layout (the extracted core release, ``ibims/`` under the data root)::

    ibims/imagelist.txt             sample names, whitespace-separated
    ibims/rgb/<name>.png            8-bit RGB, 640x480
    ibims/depth/<name>.png          16-bit depth, metres = value * 50 / 65535
    ibims/mask_invalid/<name>.png   non-zero where the depth is valid
    ibims/mask_transp/<name>.png    non-zero where the surface is not transparent

Valid = both masks non-zero (ZoeDepth writes -1 elsewhere) and ``0 < d < 10`` (its
``min_depth_eval`` 0, ``max_depth_eval`` 10), scored inside NYU's Eigen window (``eigen_crop``).
The release has 100 images.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data import crops
from marigold_bench.data.listed import open_listed
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import _open_image, read_png16, read_rgb
from marigold_bench.errors import SampleError

LIST = "imagelist.txt"


def find(source, files):
    names = source.read(LIST).decode("utf-8", errors="replace").split()
    for name in names:
        if "/" in name or "\\" in name or name.startswith("."):
            raise SampleError(f"{source.where(LIST)}: {name!r} is not a plain sample name", path=LIST)
    return [(f"rgb/{n}", f"rgb/{n}.png", f"depth/{n}.png", f"mask_invalid/{n}.png", f"mask_transp/{n}.png")
            for n in names]


def _mask(source, rel):
    return np.asarray(_open_image(source, rel)) != 0


def decode(source, record):
    rgb = read_rgb(source, record[1])
    depth = read_png16(source, record[2]).astype(np.float64) * 50.0 / 65535.0
    valid = _mask(source, record[3]) & _mask(source, record[4])
    if valid.shape != depth.shape:
        raise SampleError(f"{source.where(record[3])}: masks and depth differ in size", path=record[3])
    return rgb, depth, valid


def load(root, split, spec):
    return open_listed(spec, root, LIST, find, decode)


SPEC = BenchmarkSpec(
    name="ibims", title="iBims-1",
    folder="ibims",
    min_depth=0.0, max_depth=10.0,
    crops={"eigen": crops.NYU_EIGEN}, default_crop="eigen",
    expected_count=100,
    sharp_edges=True,
    loader=load,
)
