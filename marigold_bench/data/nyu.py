"""NYUv2 (Eigen test split, 654 images); layout notes in ``datasets/nyu.md``.

A line is ``rgb.png depth.png filled.png``: 8-bit RGB 640x480, raw Kinect depth as a 16-bit PNG
in millimetres. The filled (inpainted) depth must be present, as upstream reads it, but it is
never scored: metrics use the raw depth inside the Eigen crop.
"""

from __future__ import annotations

from marigold_bench.data.split_dataset import Benchmark, read_png16, read_rgb
from marigold_bench.errors import SampleError

SIZE = (480, 640)  # the Eigen crop is only defined on this frame


def decode(source, record):
    rgb = read_rgb(source, record[0])
    if rgb.shape[:2] != SIZE:
        where = source.where(record[0])
        raise SampleError(f"{where}: NYUv2 frames are 640x480, got "
                          f"{rgb.shape[1]}x{rgb.shape[0]}", path=where)
    depth = read_png16(source, record[1]) / 1000.0
    return rgb, depth, None


def check_filled(source, record):
    read_png16(source, record[2])


BENCHMARK = Benchmark("nyu", file_columns=(0, 1, 2), decode=decode, check=check_filled)


def load(root, split, protocol):
    return BENCHMARK.open(root, split, protocol)
