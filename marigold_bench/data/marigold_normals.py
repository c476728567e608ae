"""The five official Marigold surface-normals benchmarks: NYUv2, ScanNet, iBims-1, DIODE, OASIS.

Layout read (prs-eth/Marigold at b1dffaa: ``config/dataset_normals/data_*_test.yaml``,
``src/dataset/base_normals_dataset.py``). The evaluation archive
``marigold_normals/evaluation_dataset.zip``, unzipped into a base data root, gives one folder per
benchmark: ``nyuv2/test``, ``scannet``, ``ibims/ibims``, ``diode/val`` and ``oasis/val``. Each line
of a split file (``data_split/<bench>_normals/*.txt``) is ``<rgb path> <normals path>``, relative
to that folder:

* RGB: an 8-bit PNG (``000000_img.png``);
* ground truth: a float ``.npy`` of shape H x W x 3 (``000000_normal.npy``) in the OpenGL camera
  frame (x right, y up, z towards the viewer); the zero vector marks a pixel without ground truth.

``--data-root`` may be the base folder, the benchmark's own folder, or a ``.tar`` of that folder
(members ``./<path>``, as the official loader reads a ``dir`` that is a tar file). There is no
per-benchmark archive to download: the official download is the one zip.

Ground truth that is not unit length is handed over as is (the scoring protocol says whether it
renormalises). Items: ``id`` (the RGB path without extension), ``rgb``, ``normals``, ``frame``
(``"opengl"``), ``mask`` = ``valid`` (non-zero ground truth). The spec's ``processing_res`` and
``seed`` are those of the official inference scripts (``script/normals/eval/*_infer_*.sh``: 4 DDIM
steps, ensemble 10, then these), and DIODE's scores are also reported by its indoor and outdoor
subsets, as for depth.

Each benchmark answers to its plain name with the task: ``get_benchmark("nyu", task="normals")``
is ``nyu-normals``.
"""

from __future__ import annotations

import math

from marigold_bench.data import diode
from marigold_bench.data.normals import NormalsBenchmark, read_normals_npy
from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.data.split_dataset import read_rgb
from marigold_bench.data.splits import MARIGOLD_SPLITS_URL
from marigold_bench.frames import OPENGL


def decode(source, record):
    """``(rgb, normals, None, None)`` of one line: the validity is the non-zero ground truth."""
    return read_rgb(source, record[0]), read_normals_npy(source, record[1]), None, None


def _spec(name: str, title: str, folder: str, split: str, sha256: str, count: int, res: int, seed: int,
          **more) -> BenchmarkSpec:
    return BenchmarkSpec(
        name=f"{name}-normals", title=f"{title} normals", task="normals", dataset=name, frame=OPENGL,
        folder=folder,
        # normals have no depth range; the fields are required of every spec and unused here
        min_depth=0.0, max_depth=math.inf,
        processing_res=res, seed=seed,
        default_split=split, expected_count=count, splits={"test": split},
        split_files={split: SplitFileFacts(sha256, count)},
        splits_url=MARIGOLD_SPLITS_URL,
        loader=NormalsBenchmark(f"{name}-normals", file_columns=(0, 1), decode=decode),
        layout_doc="datasets/normals.md",
        **more,
    )


NYU = _spec("nyu", "NYUv2", "nyuv2/test", "nyu_normals/nyuv2_test.txt",
            "bad3ce14d655e8f370e25ec42260296f95bd65b74036251ba69f57a69f2814da", 654, 640, 4321)
SCANNET = _spec("scannet", "ScanNet", "scannet", "scannet_normals/scannet_test.txt",
                "88b4b1df66f0e241734e2fd766687700aac6a99834ffbcd8441b2b956f5c55ed", 300, 640, 1234)
IBIMS = _spec("ibims", "iBims-1", "ibims/ibims", "ibims_normals/ibims_test.txt",
              "a506b3314dd6f91c62d568ab3d6fedef93d5f5e3a82fd3d8ea0821e2684cfd02", 100, 640, 4321)
DIODE = _spec("diode", "DIODE", "diode/val", "diode_normals/diode_test.txt",
              "0fa41d1b4e9aea0b4a9e8368fa18cea7e724f3b3916fb8225854d0d22a388c81", 771, 768, 1234,
              # the same scenes and ids as the depth lists: indoors/... and outdoor/...
              subsets={"indoor": diode.is_indoor, "outdoor": diode.is_outdoor})
OASIS = _spec("oasis", "OASIS", "oasis/val", "oasis_normals/oasis_test.txt",
              "4cdc4fc05a93f4cc16f3e9a773780bb20ebeb39ead29ec2d7c0159fa0b1e061d", 9999, 768, 1234)

SPECS = (NYU, SCANNET, IBIMS, DIODE, OASIS)

__all__ = ["DIODE", "IBIMS", "NYU", "OASIS", "SCANNET", "SPECS", "decode"]
