"""DIODE (validation set: 771 = 325 indoor + 446 outdoor); layout notes in ``datasets/diode.md``.

A line is ``rgb.png depth.npy depth_mask.npy``. The supplied mask is the whole validity: no
range test at load time (the protocol still clips predictions to 0.6-350 m after the fit).
Split names ``all`` (= ``test``), ``indoor`` and ``outdoor`` pick the official lists, and
scores of the whole set are also reported by its ``indoor`` and ``outdoor`` subsets.
"""

from __future__ import annotations

from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import Benchmark, read_npy, read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL
from marigold_bench.errors import SampleError


def _plane(array, source, rel):
    """HxW from HxW or HxWx1 (the depth maps carry a trailing channel)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        where = source.where(rel)
        raise SampleError(f"{where}: expected an HxW or HxWx1 array, got shape {array.shape}",
                          path=where)
    return array


def decode(source, record):
    rgb = read_rgb(source, record[0])
    depth = _plane(read_npy(source, record[1]), source, record[1]).astype("float32")
    mask = _plane(read_npy(source, record[2]), source, record[2]).astype(bool)
    if mask.shape != depth.shape:
        where = source.where(record[2])
        raise SampleError(f"{where}: mask {mask.shape} and depth {depth.shape} differ in size",
                          path=where)
    return rgb, depth, mask


BENCHMARK = Benchmark("diode", file_columns=(0, 1, 2), decode=decode)


def _scene_path(sample_id: str) -> str:
    # ids are the RGB paths of the official lists, possibly under a ``val/`` folder
    return sample_id.split("val/", 1)[-1] if sample_id.startswith("val/") else sample_id


def is_indoor(sample_id: str) -> bool:
    """Whether a DIODE sample is one of the 325 indoor scenes (``indoors/scene_...``)."""
    return _scene_path(sample_id).startswith("indoors/")


def is_outdoor(sample_id: str) -> bool:
    """Whether a DIODE sample is one of the 446 outdoor scenes (``outdoor/scene_...``)."""
    return _scene_path(sample_id).startswith("outdoor/")


SPEC = BenchmarkSpec(
    name="diode", title="DIODE",
    folder="diode", archive="diode_val.tar",
    # the supplied mask is the validity; the range only clips predictions after the fit
    min_depth=0.6, max_depth=350.0, range_in_valid=False,
    processing_res=640,
    default_split="diode_depth/diode_val_all_filename_list.txt", expected_count=771,
    splits={"test": "diode_depth/diode_val_all_filename_list.txt",
            "all": "diode_depth/diode_val_all_filename_list.txt",
            "indoor": "diode_depth/diode_val_indoor_filename_list.txt",
            "outdoor": "diode_depth/diode_val_outdoor_filename_list.txt"},
    split_files={
        "diode_depth/diode_val_all_filename_list.txt": SplitFileFacts(
            "657e430e9e75530c91a9fa4f355234a71a5a0f1060381f0966feabc3643178ce", 771),
        "diode_depth/diode_val_indoor_filename_list.txt": SplitFileFacts(
            "32333dac76c1be101b6d9ee22c177ec5ff966dd4fbf51556a0d915e47bbb667d", 325),
        "diode_depth/diode_val_outdoor_filename_list.txt": SplitFileFacts(
            "fb97c9c6937c0b3205341992e476212094a73b7fabe3bae7a7b2cb708045a000", 446),
    },
    splits_url=MARIGOLD_SPLITS_URL,
    subsets={"indoor": is_indoor, "outdoor": is_outdoor},
    loader=BENCHMARK,
)
