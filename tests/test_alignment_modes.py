"""Alignment modes of `marigold_bench.eval.align`: values worked out by hand, and the numpy
fit-downsample checked against torch's own ``interpolate`` (the path it replaced)."""

import subprocess
import sys

import numpy as np
import pytest

from marigold_bench.eval import align as A


def test_align_module_imports_without_torch():
    code = "import marigold_bench.eval.align, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("shape,max_res", [((4032, 6048), 1024), ((6048, 4032), 1024), ((480, 640), 100),
                                           ((1537, 2049), 333), ((375, 1242), 97), ((59, 61), 7)])
@pytest.mark.parametrize("mode", ["width_only", "2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, bool])
def test_numpy_downsample_picks_torch_pixels(shape, max_res, mode, dtype):
    # a second method: torch's nearest interpolate, as the fit used before 0.3
    torch = pytest.importorskip("torch")
    h, w = shape
    factor = min(max_res / h, max_res / w)
    rows, cols = np.indices(shape)
    if dtype is bool:
        arrays = [np.random.default_rng(1).uniform(size=shape) > 0.5]
    else:  # pixel coordinates as values (exact in float32): equal outputs = the same pixels read
        arrays = [rows.astype(dtype), cols.astype(dtype)]
    for a in arrays:
        (ours,) = A._downsample([a], max_res, mode)
        x = torch.from_numpy(a).float() if dtype is bool else torch.from_numpy(a)
        x = x[None] if mode == "width_only" else x[None, None]
        ref = torch.nn.functional.interpolate(x, scale_factor=factor, mode="nearest")
        ref = (ref[0] if mode == "width_only" else ref[0, 0]).numpy()
        ref = ref.astype(bool) if dtype is bool else ref
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        np.testing.assert_array_equal(ours, ref)
