"""The CUDA paths that 0.4 added, each against the host path on the same input: normals
ensembling and resizing, normals inference, normals scoring, point-map scoring and the lifted
protocol's rescore. They need a CUDA device and are skipped without one; `benchmarks/gpu_check.sh`
runs them (its step 0 selects tests named ``cuda``).

Each test calls a helper with the device to check; the helpers run unchanged with
``device="cpu"``, which is how their logic was exercised on a machine without a GPU.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from marigold_bench.cli import main
from marigold_bench.inference.normals import MarigoldNormalsPredictor

HERE = Path(__file__).resolve().parent
BUNDLED = HERE.parent / "marigold_bench" / "checkpoints" / "tiny-normals"
INCLUDE = str(HERE / "include_points")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _normals_predictor(device, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MarigoldNormalsPredictor.from_pretrained(str(BUNDLED), device=device, **settings)


def compare_normals_merge(device: str, reduction: str, padding: str) -> None:
    """The device merge (ensemble, resize, renormalise or clip) equals the host's."""
    rng = np.random.default_rng(3)
    members = rng.normal(size=(10, 3, 24, 32)).astype(np.float32)
    members /= np.linalg.norm(members, axis=1, keepdims=True)
    host = _normals_predictor("cpu", ensembling=reduction, padding=padding)
    moved = _normals_predictor(device, ensembling=reduction, padding=padding)
    for n in (1, 10):
        n_host, u_host = host.merge(members[:n], (48, 64))
        n_moved, u_moved = moved.merge(members[:n], (48, 64))
        assert isinstance(n_moved, np.ndarray) and n_moved.shape == (3, 48, 64)
        np.testing.assert_allclose(n_moved, n_host, atol=1e-5)
        if n > 1:
            np.testing.assert_allclose(u_moved, u_host, atol=1e-5)


def _run(out: Path, *argv: str) -> pd.DataFrame:
    assert main(["run", *argv, "--out", str(out)]) == 0
    return pd.read_csv(out / "per_sample.csv").sort_values("id").reset_index(drop=True)


def compare_normals_runs(tmp_path: Path, device: str) -> None:
    """Tiny-normals on the synthetic set: the device run's angles are the host run's, to the
    difference the device's convolutions make (well under a degree for this model)."""
    common = ["--dataset", "synthetic", "--task", "normals", "--max-samples", "2", "--steps", "1",
              "--ensemble", "3", "--seed", "5"]
    host = _run(tmp_path / "host", *common, "--device", "cpu")
    moved = _run(tmp_path / "moved", *common, "--device", device)
    assert host["id"].tolist() == moved["id"].tolist()
    for column in ("mean_angle", "median_angle"):
        np.testing.assert_allclose(moved[column], host[column], atol=0.5)
    settings = json.loads((tmp_path / "moved" / "summary.json").read_text())["settings"]
    assert settings["device"].startswith(device)


def compare_normals_scoring(tmp_path: Path, device: str) -> None:
    """Scoring normals on the device gives the host's per-image rows, protocol by protocol."""
    for protocol in ("marigold", "dsine"):
        common = ["--dataset", "synthetic", "--task", "normals", "--model", "baseline:facing",
                  "--max-samples", "3", "--protocol", protocol]
        host = _run(tmp_path / f"{protocol}-host", *common, "--score-device", "cpu")
        moved = _run(tmp_path / f"{protocol}-moved", *common, "--score-device", device)
        pd.testing.assert_frame_equal(moved, host, check_exact=False, atol=1e-9, rtol=0)


def compare_point_scoring(tmp_path: Path, device: str) -> None:
    """A point-map model on MoGe's NYUv2 layout under ``moge``, and a depth model under
    ``moge-lifted``: the device's per-sample rows are the host's."""
    sys.path.insert(0, str(HERE))
    from test_point_maps import _nyu_pack

    _nyu_pack(tmp_path / "data")
    rows = {}
    for where in ("cpu", device):
        out = tmp_path / f"points-{where}"
        assert main(["--include", INCLUDE, "run", "--model", "pointplane:2:0.8", "--dataset", "moge/nyu",
                     "--data-root", str(tmp_path / "data"), "--protocol", "moge", "--score-device", where,
                     "--out", str(out)]) == 0
        lifted = tmp_path / f"lifted-{where}"
        assert main(["run", "--model", "baseline:ramp", "--dataset", "moge/nyu", "--data-root",
                     str(tmp_path / "data"), "--protocol", "moge-lifted", "--score-device", where,
                     "--out", str(lifted)]) == 0
        rows[where] = [pd.read_csv(d / "per_sample.csv") for d in (out, lifted)]
    for host, moved in zip(rows["cpu"], rows[device]):
        assert host.shape == moved.shape
        pd.testing.assert_frame_equal(moved, host, check_exact=False, atol=1e-9, rtol=0)


@needs_cuda
@pytest.mark.parametrize("reduction", ["closest", "mean"])
@pytest.mark.parametrize("padding", ["replicate", "none"])
def test_cuda_normals_merge_equals_host(reduction, padding):
    compare_normals_merge("cuda", reduction, padding)


@needs_cuda
def test_cuda_normals_run_matches_host(tmp_path):
    compare_normals_runs(tmp_path, "cuda")


@needs_cuda
def test_cuda_normals_scoring_equals_host(tmp_path):
    compare_normals_scoring(tmp_path, "cuda")


@needs_cuda
def test_cuda_point_scoring_equals_host(tmp_path):
    compare_point_scoring(tmp_path, "cuda")
