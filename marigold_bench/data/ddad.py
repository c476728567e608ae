"""DDAD (validation frames) as far as ZoeDepth's evaluation layout can be pinned.

Depth Anything's ``metric_depth/zoedepth/data/ddad.py`` reads a list file at a private path
(``/mnt/bn/.../ddad/val.txt``, lines ``image depth.npy``) that is not published, so its exact
frame list cannot be reproduced. The same file keeps, commented out, ZoeDepth's own layout, which
is what this loader reads::

    ddad/<name>_rgb.png     8-bit RGB (front camera)
    ddad/<name>_depth.npy   float depth in metres, same size (0 = no LiDAR return)

Every ``*_rgb.png`` with its ``*_depth.npy`` is a sample. ZoeDepth resizes only the network
input (to 352x1216); the ground truth stays at its native size and the prediction is resized to
it. Scored with ZoeDepth's ``ddad`` row: ``1e-3 < d < 80`` inside Garg's crop (its config also
says ``do_kb_crop``, which the DDAD loader never applies; nor does this one).
"""

from __future__ import annotations

from marigold_bench.data import crops
from marigold_bench.data.listed import open_listed
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import read_npy, read_rgb
from marigold_bench.errors import SampleError


def find(source, files):
    return [(rel[:-len("_rgb.png")], rel, rel[:-len("_rgb.png")] + "_depth.npy")
            for rel in files if rel.endswith("_rgb.png")]


def decode(source, record):
    rgb = read_rgb(source, record[1])
    depth = read_npy(source, record[2])
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise SampleError(f"{source.where(record[2])}: expected an HxW depth map, got shape {depth.shape}",
                          path=record[2])
    return rgb, depth, None


def load(root, split, spec):
    return open_listed(spec, root, ".", find, decode)


SPEC = BenchmarkSpec(
    name="ddad", title="DDAD",
    folder="ddad",
    min_depth=1e-3, max_depth=80.0,
    crops={"garg": crops.KITTI_GARG}, default_crop="garg",
    loader=load,
)
