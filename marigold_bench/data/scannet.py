"""ScanNet (800 sampled validation frames); layout notes in ``datasets/scannet.md``.

A line is ``color/NNNNNN.jpg depth/NNNNNN.png``: JPEG RGB and a 16-bit PNG depth in millimetres.
"""

from __future__ import annotations

from marigold_bench.data.split_dataset import Benchmark, read_png16, read_rgb


def decode(source, record):
    return read_rgb(source, record[0]), read_png16(source, record[1]) / 1000.0, None


BENCHMARK = Benchmark("scannet", file_columns=(0, 1), decode=decode)


def load(root, split, protocol):
    return BENCHMARK.open(root, split, protocol)
