"""KITTI (Eigen test split, 652 images with ground truth); layout notes in ``datasets/kitti.md``.

A line is ``rgb.png depth.png focal`` and 45 lines of the official list say ``None`` instead of
a depth path: they have no ground truth and are not samples. Depth is projected LiDAR as a
16-bit PNG in 1/256 m (0 = no return). Items come benchmark-cropped to 352x1216, so the
protocol's Eigen (or Garg) mask is applied on the cropped frame.
"""

from __future__ import annotations

from marigold_bench.data import crops
from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import Benchmark, read_png16, read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL
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


SPEC = BenchmarkSpec(
    name="kitti", title="KITTI",
    # the 800 validation frames drawn from the Eigen train split come in their own archive
    folder="kitti", archive="kitti_eigen_split_test.tar", extra_archives=("kitti_sampled_val_800.tar",),
    min_depth=1e-5, max_depth=80.0,
    crops={"eigen": crops.KITTI_EIGEN, "garg": crops.KITTI_GARG}, default_crop="eigen",
    # the official list has 697 lines, 45 of them without ground truth
    default_split="kitti_depth/eigen_test_files_with_gt.txt", expected_count=652,
    splits={"test": "kitti_depth/eigen_test_files_with_gt.txt",
            "val_800": "kitti_depth/eigen_val_from_train_800.txt",
            "val_100": "kitti_depth/eigen_val_from_train_sub_100.txt"},
    split_files={
        "kitti_depth/eigen_test_files_with_gt.txt": SplitFileFacts(
            "8d0499af9ab4c0d1cd7944d572b0e0e4412feab1e73f4003038426fde699b53a", 697),
        "kitti_depth/eigen_val_from_train_800.txt": SplitFileFacts(
            "ae2d3517206cecd69067ab0133648c76cb529c2b4ab53b0c4094d7c69622336b", 800),
        "kitti_depth/eigen_val_from_train_sub_100.txt": SplitFileFacts(
            "179086297702120f6a1e5f8d430b4f72a3f0fece0d37e8af372a8d4c02743d1d", 100),
    },
    splits_url=MARIGOLD_SPLITS_URL,
    loader=BENCHMARK,
)
