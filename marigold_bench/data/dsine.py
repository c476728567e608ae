"""DSINE's evaluation layout (``dsine_eval.zip``): NYUv2 and ScanNet normals as 8-bit PNGs.

Layout read (baegwangbin/DSINE at acfb813: ``data/datasets/{nyuv2,scannet}/__init__.py``). The
unzipped ``dsine_eval/`` holds one folder per benchmark (``dsine_eval/nyuv2``,
``dsine_eval/scannet``). A split line names only the image, ``<scene>/<id>_img.png``
(``test/000000_img.png``, ``scene0532_00/000000_img.png``); beside it lie

* ``<id>_normal.png``: 8-bit RGB ground truth, channel ``c`` decoding to ``c / 255 * 2 - 1``,
  valid where the three 8-bit values do not sum to 0 (NYUv2's from GeoNet, ScanNet's from FrameNet);
* ``<id>_intrins.npy``: the 3 x 3 camera matrix (pixel centres at integer coordinates).

Frame: DSINE states its normals in axes x right, y down, z forward, pointing *into* the surface
(its README: a wall facing the camera is (0, 0, 1)), which its depth-to-normal code
(``utils/d2n``) confirms. That is the OpenGL frame with x mirrored, so items are converted to
``"opengl"`` by negating x at load time (angles, hence scores, are unchanged). Pixels without
ground truth are set to the zero vector, as in the other normals benchmarks. Decoded vectors are
not unit length (8-bit steps); they are kept as decoded.

No split list is registered: DSINE's lists live in its repository
(``data/datasets/nyuv2/split/test.txt``: 654 lines, sha256 ``e85bb58e…6682731``;
``data/datasets/scannet/split/test.txt``: 300 lines, sha256 ``e022232d…416f8a4b5040``), so pass
one with ``--split PATH``. iBims-1 and Sintel (OpenEXR) and OASIS (pickle) of that archive are
not read.
"""

from __future__ import annotations

import math
import posixpath

import numpy as np

from marigold_bench.data.normals import NormalsBenchmark, read_png8_normals
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import read_npy, read_rgb
from marigold_bench.errors import SampleError, SplitNotFoundError
from marigold_bench.frames import OPENGL

#: DSINE's stored axes to OpenGL: mirror x (see the module docstring)
TO_OPENGL = np.array([-1.0, 1.0, 1.0], dtype=np.float32)


def companion_files(rgb_rel: str) -> tuple[str, str]:
    """``(normal png, intrinsics npy)`` beside an image named ``<id>_img.<ext>``.

    Raises:
        SplitNotFoundError: the image name does not end in ``_img.<ext>``, so no ground truth
            can be named for it.
    """
    folder, name = posixpath.split(rgb_rel)
    stem, _ = posixpath.splitext(name)
    if not stem.endswith("_img"):
        raise SplitNotFoundError(f"DSINE split line {rgb_rel!r}: the image must be named <id>_img.<ext> "
                                 "(its ground truth is <id>_normal.png beside it)")
    base = posixpath.join(folder, stem[:-len("_img")])
    return base + "_normal.png", base + "_intrins.npy"


def read_intrins(source, rel: str) -> np.ndarray:
    """A 3 x 3 camera matrix from ``.npy``; another shape is a SampleError naming the file."""
    array = read_npy(source, rel)
    if array.shape != (3, 3) or not np.issubdtype(array.dtype, np.number):
        where = source.where(rel)
        raise SampleError(f"{where}: intrinsics must be a 3x3 matrix, got {array.dtype} {array.shape}",
                          path=where)
    return array.astype(np.float32)


def decode(source, record):
    """``(rgb, normals in OpenGL, valid, intrins)`` of one DSINE line."""
    normal_rel, intrins_rel = companion_files(record[0])
    normals, valid = read_png8_normals(source, normal_rel)
    normals = np.where(valid[..., None], normals * TO_OPENGL, np.float32(0.0))
    return read_rgb(source, record[0]), normals, valid, read_intrins(source, intrins_rel)


class DsineBenchmark(NormalsBenchmark):
    """DSINE's layout: one path per line; the ground-truth files are named from it."""

    def files(self, record) -> list[str]:
        return [record[0], *companion_files(record[0])]


def _spec(name: str, title: str, folder: str) -> BenchmarkSpec:
    return BenchmarkSpec(
        name=f"dsine/{name}", title=f"{title} (DSINE)", task="normals", frame=OPENGL,
        folder=f"dsine_eval/{folder}",
        min_depth=0.0, max_depth=math.inf,  # no depth: required fields, unused
        loader=DsineBenchmark(f"dsine/{name}", file_columns=(0,), decode=decode),
        layout_doc="datasets/normals.md",
    )


NYU = _spec("nyu", "NYUv2", "nyuv2")
SCANNET = _spec("scannet", "ScanNet", "scannet")

__all__ = ["NYU", "SCANNET", "TO_OPENGL", "DsineBenchmark", "companion_files", "decode", "read_intrins"]
