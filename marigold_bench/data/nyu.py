"""NYUv2 (Eigen test split, 654 images); layout notes in ``datasets/nyu.md``.

A line is ``rgb.png depth.png filled.png``: 8-bit RGB 640x480, raw Kinect depth as a 16-bit PNG
in millimetres. The filled (inpainted) depth must be present, as upstream reads it, but it is
never scored: metrics use the raw depth inside the Eigen crop.
"""

from __future__ import annotations

from marigold_bench.data import crops
from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import Benchmark, read_png16, read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL
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


SPEC = BenchmarkSpec(
    name="nyu", title="NYUv2",
    folder="nyuv2", archive="nyu_labeled_extracted.tar",
    min_depth=1e-3, max_depth=10.0,
    crops={"eigen": crops.NYU_EIGEN}, default_crop="eigen",
    default_split="nyu_depth/labeled/filename_list_test.txt", expected_count=654,
    splits={"test": "nyu_depth/labeled/filename_list_test.txt",
            "train": "nyu_depth/labeled/filename_list_train.txt",
            "train_small_100": "nyu_depth/labeled/filename_list_train_small_100.txt"},
    split_files={
        "nyu_depth/labeled/filename_list_test.txt": SplitFileFacts(
            "d9a47a1568b7d70a737a4bc75a49e66827b8e354219e9eee332676dbaee34a69", 654),
        "nyu_depth/labeled/filename_list_train.txt": SplitFileFacts(
            "441d50b1ad7683cd640edf84a663a904b30993e2f4036ec2eef64a54c9328d10", 795),
        "nyu_depth/labeled/filename_list_train_small_100.txt": SplitFileFacts(
            "bcf31e4cad943c809d0c91306e267b3e6652b1a9aea69e2feb4c3e30b15f19d8", 100),
    },
    splits_url=MARIGOLD_SPLITS_URL,
    loader=BENCHMARK,
)
