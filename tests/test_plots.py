"""Figures: PNG + PDF from aggregated studies and a depth gallery read back from a run directory."""

import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.errors import BenchError
from marigold_bench.report.plots import depth_gallery, pick_samples, plot_metric_vs_ensemble
from marigold_bench.report.rundir import load_run


def test_curve_and_gallery_are_written_as_png_and_pdf(tmp_path):
    frame = pd.DataFrame({"ensemble": [1, 2, 5], "abs_rel_mean": [0.07, 0.065, 0.063],
                          "abs_rel_std": [0.002, 0.001, 0.001], "delta1_mean": [0.95, 0.955, 0.957]})
    paths = plot_metric_vs_ensemble(frame, str(tmp_path / "n"))
    assert [p[-3:] for p in paths] == ["png", "pdf"]

    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "4",
                 "--out", str(run)]) == 0
    chosen = pick_samples(load_run(run), k=3)  # best, median, worst by AbsRel
    ranked = load_run(run).ok_samples().sort_values("abs_rel").index
    assert chosen[0] == ranked[0] and chosen[-1] == ranked[-1] and len(chosen) == 3
    paths = depth_gallery(str(run), str(tmp_path / "gallery"))
    assert all((tmp_path / f"gallery.{ext}").stat().st_size > 1000 for ext in ("png", "pdf"))
    with pytest.raises(BenchError, match="not in the dataset"):
        depth_gallery(str(run), str(tmp_path / "g2"), sample_ids=["test/nothing"])
