"""ETH3D (454 images); layout notes in ``datasets/eth3d.md``.

A line is ``rgb.JPG depth.JPG``; despite its name the depth file is a headerless little-endian
float32 map in metres, row-major at the RGB image's size (4032x6048 in the official data), with
``inf`` where there is no measurement. Its size comes from the RGB image, so small test
fixtures decode the same way.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.split_dataset import Benchmark, read_float32_raw, read_rgb


def decode(source, record):
    rgb = read_rgb(source, record[0])
    depth = read_float32_raw(source, record[1], rgb.shape[:2])
    depth[np.isinf(depth)] = 0.0  # upstream's convention; the range test then drops it
    return rgb, depth, None


BENCHMARK = Benchmark("eth3d", file_columns=(0, 1), decode=decode)


def load(root, split, protocol):
    return BENCHMARK.open(root, split, protocol)
