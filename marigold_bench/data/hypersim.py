"""Hypersim, Marigold's main training set (about 54K images in the filtered train split).

Layout produced by the public preprocessing (one folder per split, ``train/``, ``val/``,
``test/``): a line of ``hypersim_depth/filename_list_train_filtered.txt`` is
``ai_001_001/rgb_cam_00_fr0000.png ai_001_001/depth_plane_cam_00_fr0000.png``, the RGB a
tone-mapped 8-bit PNG and the depth a 16-bit PNG of planar depth in millimetres (÷ 1000), both
480x640. Valid depth: 1e-5 < d < 65 m (invalid pixels were written as 0).

The preprocessing itself (from the raw 1024x768 HDF5 renders) is given as functions,
:func:`planar_depth_from_distance` and :func:`tone_map`, so its facts are tested here.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import Benchmark, SplitDataset, read_png16, read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL, resolve_split
from marigold_bench.data.training_source import find_training_source

#: Focal length in pixels of the Hypersim renders (1024x768).
FOCAL = 886.81
SIZE = (480, 640)

#: a training set, not a benchmark (the registry lists it under TRAINING for its split files)
PROTOCOL = BenchmarkSpec(
    name="hypersim", title="Hypersim", min_depth=1e-5, max_depth=65.0,
    default_split="hypersim_depth/filename_list_train_filtered.txt",
    splits={"train": "hypersim_depth/filename_list_train_filtered.txt",
            "val": "hypersim_depth/filename_list_val_filtered.txt",
            "val_small_80": "hypersim_depth/filename_list_val_filtered_small_80.txt",
            "test": "hypersim_depth/filename_list_test_filtered.txt"},
    split_files={
        "hypersim_depth/filename_list_train_filtered.txt": SplitFileFacts(
            "fc3996c785a84a2eaeff121b6bac02b2366dc3ec352da50d659b8858e101f833", 53885),
        "hypersim_depth/filename_list_val_filtered.txt": SplitFileFacts(
            "9e9b827ec50a964c6a4e60c533f091297804c9578fc1fab065504c0540103079", 7370),
        "hypersim_depth/filename_list_val_filtered_small_80.txt": SplitFileFacts(
            "324d03825f49547c348eeff5aba1a6d5e5ea781cde4d31772f30a334ed86f6dc", 80),
        "hypersim_depth/filename_list_test_filtered.txt": SplitFileFacts(
            "7fb3e6c70bdb81c8176d91463dfde9ef9fd8a7e417969745ab1f38f80f56f3c3", 7682),
        "hypersim_depth/selected_vis_sample.txt": SplitFileFacts(
            "1f64e5248d97ab1f0c44ab060a453fca819a25fea43c77f2b516bde381fa71ba", 3),
    },
    splits_url=MARIGOLD_SPLITS_URL,
)


# --- preprocessing facts ---------------------------------------------------------------------

def planar_depth_from_distance(distance: np.ndarray, focal: float = FOCAL,
                               entity_id: np.ndarray | None = None) -> np.ndarray:
    """Planar depth (camera z) from Hypersim's distance-to-camera map.

    ``depth = distance * f / sqrt(f^2 + u^2 + v^2)`` with ``(u, v)`` the offset of each pixel
    centre from the image centre. Pixels whose render-entity id is -1 (no surface) or whose
    distance is not finite get depth 0 (invalid).
    """
    distance = np.asarray(distance, dtype=np.float64)
    h, w = distance.shape
    u = np.arange(w, dtype=np.float64) + 0.5 - w / 2.0
    v = np.arange(h, dtype=np.float64) + 0.5 - h / 2.0
    ray = np.sqrt(focal**2 + u[None, :] ** 2 + v[:, None] ** 2)
    depth = distance * focal / ray
    invalid = ~np.isfinite(depth)
    if entity_id is not None:
        invalid |= np.asarray(entity_id) == -1
    return np.where(invalid, 0.0, depth).astype(np.float32)


def tone_map_scale(rgb_hdr: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Exposure scale of Hypersim's tone mapping.

    Brightness ``0.3 R + 0.59 G + 0.11 B`` over the valid pixels; the scale makes its 90th
    percentile 0.8 after gamma: ``0.8 ** 2.2 / p90``; 0 when ``p90 < 1e-4``, 1 with no valid pixel.
    """
    rgb_hdr = np.asarray(rgb_hdr, dtype=np.float64)
    valid = np.ones(rgb_hdr.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    if not valid.any():
        return 1.0
    brightness = 0.3 * rgb_hdr[..., 0] + 0.59 * rgb_hdr[..., 1] + 0.11 * rgb_hdr[..., 2]
    p90 = np.percentile(brightness[valid], 90)
    if p90 < 1e-4:
        return 0.0
    return float(0.8**2.2 / p90)


def tone_map(rgb_hdr: np.ndarray, entity_id: np.ndarray | None = None) -> np.ndarray:
    """Tone-mapped colour in [0, 1]: ``clip((scale * rgb) ** (1 / 2.2), 0, 1)``.

    ``entity_id`` (the render-entity map) marks invalid pixels with -1; they do not count in the
    brightness percentile. Negative HDR values are floored at 0 before the gamma.
    """
    valid = None if entity_id is None else np.asarray(entity_id) != -1
    scale = tone_map_scale(rgb_hdr, valid)
    linear = np.maximum(scale * np.asarray(rgb_hdr, dtype=np.float64), 0.0)
    return np.clip(linear ** (1.0 / 2.2), 0.0, 1.0)


def to_uint8(rgb_unit: np.ndarray) -> np.ndarray:
    """[0, 1] colour to 8 bits as the preprocessing writes it (``(x * 255).astype(uint8)``, truncating)."""
    return (np.asarray(rgb_unit) * 255).astype(np.uint8)


# --- loader ----------------------------------------------------------------------------------

def decode(source, record):
    rgb = read_rgb(source, record[0])
    depth = read_png16(source, record[1]) / 1000.0
    return rgb, depth, None


BENCHMARK = Benchmark("hypersim", file_columns=(0, 1), decode=decode)

_EXPECTED = ("the preprocessed Hypersim folder of that split (e.g. <root>/train/ai_001_001/"
             "rgb_cam_00_fr0000.png with depth_plane_cam_00_fr0000.png beside it), given as <root>, "
             "<root>/<split>, <root>/processed/<split> or <root>/hypersim/processed/<split>")


def load(root=None, split=None, protocol: BenchmarkSpec | None = None) -> SplitDataset:
    """Open a Hypersim split (default: the filtered train list) from the preprocessed layout.

    ``split`` is a name of :data:`PROTOCOL`'s splits (``train``, ``val``, ``val_small_80``,
    ``test``) or a split-file path; names are found through ``$MARIGOLD_SPLITS`` or the cache.
    """
    protocol = protocol or PROTOCOL
    split_file = resolve_split(protocol, split)
    records = BENCHMARK.records(split_file)
    folder = _split_folder(split, split_file.path.name)
    candidates = [folder, f"processed/{folder}", f"hypersim/processed/{folder}",
                  f"Hypersim/processed/{folder}", f"hypersim/{folder}"]
    source = find_training_source("Hypersim", root, candidates, BENCHMARK.files(records[0]), _EXPECTED)
    return SplitDataset(BENCHMARK, source, split_file, records, protocol, root)


def _split_folder(split, filename: str) -> str:
    text = str(split or "train")
    for name in ("train", "val", "test"):
        if text.startswith(name) or f"_{name}" in filename:
            return name
    return "train"
