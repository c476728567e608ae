"""DSINE's pooled normals metrics under torchrun (gloo, CPU): every process's ``_pool`` arrays are
gathered, so two processes give the single process's dataset metrics, and those equal the
pixel-weighted combination of the per-image rows (an independent re-derivation: the pooled mean
is sum(mean_i * n_i) / sum(n_i), the pooled RMSE sqrt(sum(rmse_i^2 * n_i) / sum(n_i)))."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    from marigold_bench.data import load_dataset
    from marigold_bench.eval.evaluator import run_predictor
    from marigold_bench.eval.protocols import resolve_scoring

    class ImageDependent:
        """Normals that follow the image's colours, so a sample scored twice or lost would show."""
        task, frame, output_space, device = "normals", "opengl", "normals", None
        def __init__(self):
            self.settings = {"model": "test:image-normals", "family": "test", "output_space": "normals",
                             "task": "normals", "frame": "opengl", "ensemble": 2, "ensembling": None}
        def predict(self, jobs):
            out = []
            for sid, rgb, members in jobs:
                c = rgb.astype(np.float32) / 255.0
                v = np.stack([c[..., 0] - 0.5, c[..., 1] - 0.5, 0.5 + c[..., 2]])
                out.append(np.stack([v + 0.05 * k for k in members]).astype(np.float32))
            return out
        def merge(self, members, shape):
            m = members.mean(0)
            return (m / np.linalg.norm(m, axis=0, keepdims=True)).astype(np.float32), None

    ds = load_dataset("synthetic", task="normals").subset(9)
    scoring = resolve_scoring(ds.protocol, "dsine", frame="opengl")
    summary = run_predictor(ds, ImageDependent(), sys.argv[1], progress=False, scoring=scoring)
    # one write per rank: both ranks share the pipe, and print's pieces could interleave
    sys.stdout.write(f"RESULT {summary['n']} {summary['timing']['processes']}\\n")
    sys.stdout.flush()
''')


def _launch(tmp_path, nproc, out):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), str(out)] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
        str(script), str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)


def test_pooled_dsine_metrics_of_two_processes_equal_one(tmp_path):
    for nproc in (1, 2):
        result = _launch(tmp_path, nproc, tmp_path / f"run{nproc}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"RESULT 9 {nproc}" in result.stdout
    one, two = (json.loads((tmp_path / f"run{n}" / "summary.json").read_text()) for n in (1, 2))
    assert two["pooled"] and two["metrics"] == one["metrics"]
    assert (tmp_path / "run2" / "per_sample.csv").read_text() == (tmp_path / "run1" / "per_sample.csv").read_text()
    rows = pd.read_csv(tmp_path / "run2" / "per_sample.csv")
    n = rows["n_valid"].to_numpy(np.float64)
    m = two["metrics"]
    assert m["mean_angle"] == pytest.approx((rows["mean_angle"] * n).sum() / n.sum(), rel=1e-5)
    assert m["rmse_angle"] == pytest.approx(np.sqrt((rows["rmse_angle"] ** 2 * n).sum() / n.sum()), rel=1e-5)
    assert m["pct_30"] == pytest.approx((rows["pct_30"] * n).sum() / n.sum(), rel=1e-5)
    # the images differ in valid pixels or errors: pooling is not the mean of the per-image means
    assert abs(m["mean_angle"] - rows["mean_angle"].mean()) > 1e-3
