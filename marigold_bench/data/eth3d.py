"""ETH3D (454 images); layout notes in ``datasets/eth3d.md``.

A line is ``rgb.JPG depth.JPG``; despite its name the depth file is a headerless little-endian
float32 map in metres, row-major at the RGB image's size (4032x6048 in the official data), with
``inf`` where there is no measurement. Its size comes from the RGB image, so small test
fixtures decode the same way.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import Benchmark, read_float32_raw, read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL


def decode(source, record):
    rgb = read_rgb(source, record[0])
    depth = read_float32_raw(source, record[1], rgb.shape[:2])
    depth[np.isinf(depth)] = 0.0  # upstream's convention; the range test then drops it
    return rgb, depth, None


BENCHMARK = Benchmark("eth3d", file_columns=(0, 1), decode=decode)


SPEC = BenchmarkSpec(
    name="eth3d", title="ETH3D",
    folder="eth3d", archive="eth3d.tar",
    min_depth=1e-5, max_depth=float("inf"),
    # the official evaluation fits on a copy at most 1024 px long, without padding at 756 px
    fit_max_resolution=1024, processing_res=756, padding="none",
    default_split="eth3d_depth/eth3d_filename_list.txt", expected_count=454,
    splits={"test": "eth3d_depth/eth3d_filename_list.txt"},
    split_files={
        "eth3d_depth/eth3d_filename_list.txt": SplitFileFacts(
            "39cf9f48bd524e51b1feda6092f84ed03b78eeaaf507c4068ab8130987e42971", 454),
    },
    splits_url=MARIGOLD_SPLITS_URL,
    loader=BENCHMARK,
)
