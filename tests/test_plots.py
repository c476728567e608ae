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


def test_gallery_aligns_as_the_run_scored_so_its_caption_is_per_sample_csvs_value(tmp_path):
    # the case: a median-scaled run used to be captioned with a least-squares AbsRel
    import numpy as np

    from marigold_bench.data import load_dataset
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.report.plots import caption, gallery_rows

    run = tmp_path / "median"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "3",
                 "--alignment", "median", "--out", str(run)]) == 0
    scored = load_run(run).ok_samples()["abs_rel"]
    rows = gallery_rows(str(run), sample_ids=list(scored.index))
    for row in rows:
        assert row["abs_rel"] == pytest.approx(scored[row["id"]], rel=1e-6)
        assert caption(row["abs_rel"]) == caption(scored[row["id"]])

    # a second, independent way to the same number: median scaling written out with numpy
    dataset = load_dataset("synthetic", None, "test:3")
    with PredictionCache(run / "predictions.h5") as cache:
        for index, sample_id in enumerate(dataset.ids):
            item, pred = dataset[index], cache.prediction(sample_id).astype(np.float64)
            valid, gt = item["valid"], item["depth"].astype(np.float64)
            aligned = np.clip(np.median(gt[valid]) / np.median(pred[valid]) * pred, 1e-3, 200.0)  # synthetic's range
            by_hand = np.mean(np.abs(aligned[valid] - gt[valid]) / gt[valid])
            assert scored[sample_id] == pytest.approx(by_hand, rel=1e-6)
            # ... and the old least-squares re-alignment would have shown something else
            a, b = np.polyfit(pred[valid], gt[valid], 1)
            least_squares = np.mean(np.abs(np.clip(a * pred[valid] + b, 1e-3, 200.0) - gt[valid]) / gt[valid])
            assert abs(least_squares - by_hand) > 0.05
