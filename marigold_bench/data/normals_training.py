"""The training sets of Marigold's normals model: Hypersim, InteriorVerse and Sintel.

Layouts as the official preprocessing leaves them (prs-eth/Marigold at b1dffaa:
``config/dataset_normals/dataset_train.yaml``, ``script/normals/dataset_preprocess/``,
``src/dataset/*normals*``). Every split line is ``<rgb path> ... <normals path>``, paths relative
to the set's folder (or to a ``.tar`` of it); the RGB an 8-bit PNG, the ground truth a float
``.npy`` of shape H x W x 3 in the OpenGL camera frame (x right, y up, z towards the viewer):

* **Hypersim** (folder ``hypersim``; ``hypersim_normals/hypersim_filtered_all.txt``, 48 925
  lines, all three Hypersim splits): ``train/ai_001_001/rgb_cam_00_fr0000.png
  train/ai_001_001/normal_cam_cam_00_fr0000.npy``, stored at the render size 768 x 1024 (the
  preprocessing normalised each vector and turned back-facing ones around); training resizes to
  480 x 640 *after* augmenting, which is why the blurs can tell Hypersim frames by their height.
* **InteriorVerse** (folder ``interiorverse/scenes_85``;
  ``interiorverse_normals/interiorverse_filtered_all.txt``, 27 198 lines): ``<scene>/008_img.png
  <scene>/008_normal.npy``, used at its own size. Its train/val/test lists carry a third column
  (``<scene>/008_depth.npy`` between the two); the normals are always the *last* column here.
* **Sintel** (folder ``sintel``; ``sintel_normals/sintel_filtered.txt``, 627 lines):
  ``alley_2/frame_0001_img.png alley_2/frame_0001_normal.npy`` at 436 x 1024. On loading, vectors
  shorter than 0.1 (the sky) become (0, 0, 1), facing the camera, and then 221 columns are cut
  from each side (436 x 582); training resizes to 480 x 640.

Items follow :mod:`marigold_bench.data.normals` (``id``, ``rgb``, ``normals`` H x W x 3 float32,
``frame``, ``mask``/``valid`` = non-zero ground truth). Nothing is resized here: the size each
source is trained at is :data:`TRAIN_SIZE`, applied by the training data pipeline after its
augmentations, as the official loader does.
"""

from __future__ import annotations

import math

import numpy as np

from marigold_bench.data.normals import NormalsBenchmark, NormalsSplitDataset, read_normals_npy
from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL, resolve_split
from marigold_bench.data.training_source import find_training_source
from marigold_bench.errors import SampleError
from marigold_bench.frames import OPENGL

#: columns cut from each side of a Sintel frame (1024 - 2 * 221 = 582)
SINTEL_CROP = 221
#: Sintel ground truth shorter than this is the sky (no surface)
SINTEL_SKY_NORM = 0.1
#: what the sky's vectors become: facing the camera
SINTEL_SKY_NORMAL = (0.0, 0.0, 1.0)
#: [H, W] each source is resized to for training (None: its own size)
TRAIN_SIZE = {"hypersim": (480, 640), "interiorverse": None, "sintel": (480, 640)}


def sintel_fix_sky(normals: np.ndarray) -> np.ndarray:
    """Vectors with Euclidean norm < 0.1 replaced by (0, 0, 1); ``normals`` is H x W x 3."""
    normals = np.array(normals, dtype=np.float32, copy=True)
    sky = np.linalg.norm(normals, axis=-1) < SINTEL_SKY_NORM
    normals[sky] = SINTEL_SKY_NORMAL
    return normals


def sintel_crop(image: np.ndarray) -> np.ndarray:
    """The centre of a Sintel frame: :data:`SINTEL_CROP` columns off each side (channels last)."""
    return image[:, SINTEL_CROP:image.shape[1] - SINTEL_CROP]


def _decode_plain(source, record):
    """RGB of the first column, normals of the last."""
    return read_rgb(source, record[0]), read_normals_npy(source, record[-1]), None, None


def _decode_sintel(source, record):
    rgb = read_rgb(source, record[0])
    normals = read_normals_npy(source, record[-1])
    if rgb.shape[1] <= 2 * SINTEL_CROP:
        where = source.where(record[0])
        raise SampleError(f"{where}: a Sintel frame must be wider than {2 * SINTEL_CROP} pixels to cut "
                          f"{SINTEL_CROP} off each side, got {rgb.shape[1]}", path=where)
    return sintel_crop(rgb), sintel_crop(sintel_fix_sky(normals)), None, None


class _LastColumnBenchmark(NormalsBenchmark):
    """Probes the RGB and the normals (first and last column), whatever the line holds between."""

    def files(self, record) -> list[str]:
        return [record[0], record[-1]]


def _spec(name: str, title: str, splits: dict, facts: dict) -> BenchmarkSpec:
    return BenchmarkSpec(
        name=f"{name}-normals-train", title=f"{title} normals (training)", task="normals", dataset=name,
        frame=OPENGL, min_depth=0.0, max_depth=math.inf,  # required fields, unused for normals
        default_split=splits["train"], splits=splits,
        split_files={rel: SplitFileFacts(*f) for rel, f in facts.items()}, splits_url=MARIGOLD_SPLITS_URL)


HYPERSIM = _spec(
    "hypersim", "Hypersim",
    {"train": "hypersim_normals/hypersim_filtered_all.txt", "val_100": "hypersim_normals/hypersim_filtered_val_100.txt"},
    {"hypersim_normals/hypersim_filtered_all.txt":
        ("dcc7c0bfebfda14af22c8a848fb96b0dccc0c0abc051cc7a00399703a6a6382b", 48925),
     "hypersim_normals/hypersim_filtered_val_100.txt":
        ("db5d0969aae08d94c0b177cce24e72524b409264d573484674f747a54e29b714", 100)})
INTERIORVERSE = _spec(
    "interiorverse", "InteriorVerse",
    {"train": "interiorverse_normals/interiorverse_filtered_all.txt",
     "val": "interiorverse_normals/interiorverse_filtered_val.txt"},
    {"interiorverse_normals/interiorverse_filtered_all.txt":
        ("3f9d2c38b09f04b04d4dff6631d664f810062b658cb825efaacb4296fb260475", 27198),
     "interiorverse_normals/interiorverse_filtered_val.txt":
        ("108da3019c0b9bac29940aec67849c0005b29ce3d33bb688e5b4546d00122116", 2649)})
SINTEL = _spec(
    "sintel", "Sintel",
    {"train": "sintel_normals/sintel_filtered.txt"},
    {"sintel_normals/sintel_filtered.txt": ("ea1881dab4b14ba1b02bd2e4b52ff5688c013331b19f9a8f4fc0040f4e1805d3", 627)})

_LAYOUTS = {
    # name: (spec, decoder, folders tried under the root, layout for the error message)
    "hypersim": (HYPERSIM, _decode_plain, ["hypersim", "hypersim.tar"],
                 "the preprocessed Hypersim normals folder (<root>/hypersim/train/ai_001_001/"
                 "rgb_cam_00_fr0000.png with normal_cam_cam_00_fr0000.npy beside it), or a .tar of it"),
    "interiorverse": (INTERIORVERSE, _decode_plain,
                      ["interiorverse/scenes_85", "scenes_85", "interiorverse", "interiorverse/scenes_85.tar"],
                      "the preprocessed InteriorVerse folder (<root>/interiorverse/scenes_85/<scene>/"
                      "000_img.png with 000_normal.npy beside it), or a .tar of it"),
    "sintel": (SINTEL, _decode_sintel, ["sintel", "sintel.tar"],
               "the Sintel normals folder (<root>/sintel/alley_2/frame_0001_img.png with "
               "frame_0001_normal.npy beside it), or a .tar of it"),
}

NAMES = tuple(_LAYOUTS)


def load(name: str, root=None, split=None) -> NormalsSplitDataset:
    """Open training set ``name`` (``hypersim``, ``interiorverse`` or ``sintel``) for normals.

    Args:
        name: which set.
        root: the base data folder holding the set's folder (or the set's folder or ``.tar``
            itself); None: ``$MARIGOLD_DATA``.
        split: a split name of the set's spec (``train`` is the official training list), an
            official relative path, or a split file; None: ``train``.

    Raises:
        DataRootError / SplitNotFoundError: the data or the list is missing (one line, with the
        expected layout).
    """
    spec, decode, candidates, expected = _LAYOUTS[name]
    benchmark = _LastColumnBenchmark(spec.name, file_columns=(0, 1), decode=decode)
    split_file = resolve_split(spec, split or "train")
    records = benchmark.records(split_file)
    source = find_training_source(f"{spec.title}", root, candidates, benchmark.files(records[0]), expected)
    return NormalsSplitDataset(benchmark, source, split_file, records, spec, root)


__all__ = ["HYPERSIM", "INTERIORVERSE", "NAMES", "SINTEL", "SINTEL_CROP", "TRAIN_SIZE", "load",
           "sintel_crop", "sintel_fix_sky"]
