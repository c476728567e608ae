"""DIODE (validation set: 771 = 325 indoor + 446 outdoor); layout notes in ``datasets/diode.md``.

A line is ``rgb.png depth.npy depth_mask.npy``. The supplied mask is the whole validity: no
range test at load time (the protocol still clips predictions to 0.6-350 m after the fit).
Split names ``all`` (= ``test``), ``indoor`` and ``outdoor`` pick the official lists.
"""

from __future__ import annotations

from marigold_bench.data.split_dataset import Benchmark, read_npy, read_rgb
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


def load(root, split, protocol):
    return BENCHMARK.open(root, split, protocol)
