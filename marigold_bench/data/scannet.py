"""ScanNet (800 sampled validation frames); layout notes in ``datasets/scannet.md``.

A line is ``color/NNNNNN.jpg depth/NNNNNN.png``: JPEG RGB and a 16-bit PNG depth in millimetres.
"""

from __future__ import annotations

from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import Benchmark, read_png16, read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL


def decode(source, record):
    return read_rgb(source, record[0]), read_png16(source, record[1]) / 1000.0, None


BENCHMARK = Benchmark("scannet", file_columns=(0, 1), decode=decode)


SPEC = BenchmarkSpec(
    name="scannet", title="ScanNet",
    folder="scannet", archive="scannet_val_sampled_800_1.tar",
    min_depth=1e-3, max_depth=10.0,
    default_split="scannet_depth/scannet_val_sampled_list_800_1.txt", expected_count=800,
    splits={"test": "scannet_depth/scannet_val_sampled_list_800_1.txt"},
    split_files={
        "scannet_depth/scannet_val_sampled_list_800_1.txt": SplitFileFacts(
            "066c76d6d8f93d6d7bed812e9c3bb0c375f08e7ff76569e13ce9c000dd74ead5", 800),
    },
    splits_url=MARIGOLD_SPLITS_URL,
    loader=BENCHMARK,
)
