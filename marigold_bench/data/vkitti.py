"""Virtual KITTI 2, Marigold's outdoor training set (about 20K images in the train split).

A line of ``vkitti_depth/vkitti_train.txt`` is
``rgb/Scene02/clone/frames/rgb/Camera_0/rgb_00000.jpg depth/Scene02/clone/frames/depth/Camera_0/depth_00000.png``:
the RGB a JPEG, the depth a 16-bit PNG in centimetres (÷ 100; the sky is 65535). Frames
(375x1242) are cut to the KITTI benchmark crop, 352x1216 bottom-centre. Valid depth:
1e-5 < d < 80 m.
"""

from __future__ import annotations

from marigold_bench.data.kitti import benchmark_crop
from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import Benchmark, SplitDataset, read_png16, read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL, resolve_split
from marigold_bench.data.training_source import find_training_source
from marigold_bench.errors import SampleError

#: a training set, not a benchmark (the registry lists it under TRAINING for its split files)
PROTOCOL = BenchmarkSpec(
    name="vkitti", title="Virtual KITTI 2", min_depth=1e-5, max_depth=80.0,
    default_split="vkitti_depth/vkitti_train.txt",
    splits={"train": "vkitti_depth/vkitti_train.txt", "val": "vkitti_depth/vkitti_val.txt"},
    split_files={
        "vkitti_depth/vkitti_train.txt": SplitFileFacts(
            "f96b6916dccbb700dcaf68369b52a2cf9d3953de3612f901be88a380add59eef", 20148),
        "vkitti_depth/vkitti_val.txt": SplitFileFacts(
            "047a817c5f5b8241d4c3948a4ddc47ba2aef3793f22d27d3fefffb5001b2a5cc", 5364),
    },
    splits_url=MARIGOLD_SPLITS_URL,
)


def decode(source, record):
    rgb = read_rgb(source, record[0])
    depth = read_png16(source, record[1]) / 100.0
    if depth.shape != rgb.shape[:2]:
        where = source.where(record[1])
        raise SampleError(f"{where}: depth {depth.shape} and RGB {rgb.shape[:2]} differ in size", path=where)
    return (benchmark_crop(rgb, source.where(record[0])),
            benchmark_crop(depth, source.where(record[1])), None)


BENCHMARK = Benchmark("vkitti", file_columns=(0, 1), decode=decode)

_EXPECTED = ("the Virtual KITTI 2 folder holding rgb/Scene*/... and depth/Scene*/... (or its "
             "uncompressed vkitti.tar), given as <root>, <root>/vkitti or <root>/vkitti/vkitti.tar")


def load(root=None, split=None, protocol: BenchmarkSpec | None = None) -> SplitDataset:
    """Open a Virtual KITTI 2 split (default: train) from a folder or ``vkitti.tar``."""
    protocol = protocol or PROTOCOL
    split_file = resolve_split(protocol, split)
    records = BENCHMARK.records(split_file)
    candidates = ["vkitti.tar", "vkitti", "vkitti/vkitti.tar", "vkitti2", "vkitti2/vkitti.tar"]
    source = find_training_source("Virtual KITTI 2", root, candidates, BENCHMARK.files(records[0]), _EXPECTED)
    return SplitDataset(BENCHMARK, source, split_file, records, protocol, root)
