"""KITTI (Eigen test split, 652 images with ground truth); layout notes in ``datasets/kitti.md``.

A line is ``rgb.png depth.png focal`` and 45 lines of the official list say ``None`` instead of
a depth path: they have no ground truth and are not samples. Depth is projected LiDAR as a
16-bit PNG in 1/256 m (0 = no return). Items come benchmark-cropped to 352x1216, so the
protocol's Eigen (or Garg) mask is applied on the cropped frame.
"""

from __future__ import annotations

from marigold_bench.data.split_dataset import Benchmark, read_png16, read_rgb
from marigold_bench.errors import SampleError

CROP_H, CROP_W = 352, 1216


def has_ground_truth(record) -> bool:
    return record[1] != "None"


def benchmark_crop(array, where: str):
    """Bottom-centre 352x1216 window: the part of the frame the LiDAR covers."""
    h, w = array.shape[:2]
    if h < CROP_H or w < CROP_W:
        raise SampleError(f"{where}: KITTI frame {w}x{h} is smaller than the "
                          f"{CROP_W}x{CROP_H} benchmark crop", path=where)
    top, left = h - CROP_H, (w - CROP_W) // 2
    return array[top:top + CROP_H, left:left + CROP_W]


def decode(source, record):
    rgb = read_rgb(source, record[0])
    depth = read_png16(source, record[1]) / 256.0
    if depth.shape != rgb.shape[:2]:  # crop offsets depend on size, so check before cropping
        where = source.where(record[1])
        raise SampleError(f"{where}: depth {depth.shape} and RGB {rgb.shape[:2]} differ in size",
                          path=where)
    return (benchmark_crop(rgb, source.where(record[0])),
            benchmark_crop(depth, source.where(record[1])), None)


BENCHMARK = Benchmark("kitti", file_columns=(0, 1), decode=decode, keep=has_ground_truth)


def load(root, split, protocol):
    return BENCHMARK.open(root, split, protocol)
