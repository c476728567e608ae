"""`marigold-bench leaderboard` with surface-normals models: their own ground truth, their own table.

The normals numbers are re-derived here from the synthetic benchmark's ground truth: the facing
baseline predicts (0, 0, 1) everywhere, so its angular error at a pixel is arccos of the ground
truth's z over its length (numpy float64, not the suite's `angular_errors`), summarised as the
official protocol does (per image, rounded to 4 decimals, averaged over images).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main

ARGS = ["--datasets", "synthetic", "--max-samples", "2"]
NORMALS_COLUMNS = ["mean_angle", "median_angle", "pct_11_25", "pct_30"]


def _facing_official_mean(n: int) -> float:
    from marigold_bench.data import load_dataset

    dataset = load_dataset("synthetic", task="normals")
    per_image = []
    for k in range(n):
        gt = dataset[k]["normals"].astype(np.float64).reshape(-1, 3)
        length = np.linalg.norm(gt, axis=1)
        keep = length > 0
        angles = np.degrees(np.arccos(np.clip(gt[keep, 2] / length[keep], -1, 1)))
        per_image.append(round(float(angles.mean()), 4))
    return float(np.mean(per_image))


def test_depth_and_normals_models_get_a_table_each_in_every_format(tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:facing", *ARGS, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    md = captured.out
    assert md == (out / "leaderboard.md").read_text()
    depth_part, _, normals_part = md.partition("## Surface normals")
    assert depth_part.startswith("## Depth") and normals_part
    assert "AbsRel" in depth_part and "mean↓" not in depth_part and "baseline:facing" not in depth_part
    assert "mean↓" in normals_part and "%&lt;30↑" in normals_part and "AbsRel" not in normals_part
    assert "baseline:ramp" not in normals_part
    # the normals model ran on the benchmark's normals ground truth, in a folder of its own
    assert [p.name.rsplit("-", 1)[0] for p in (out / "baseline-facing").iterdir()] == ["synthetic-normals"]
    depth_csv = pd.read_csv(out / "leaderboard.csv")
    normals_csv = pd.read_csv(out / "leaderboard-normals.csv")
    assert "synthetic_abs_rel" in depth_csv.columns and not any("angle" in c for c in depth_csv.columns)
    assert list(normals_csv["method"]) == ["baseline:facing, N=1"]
    assert [c for c in normals_csv.columns if c.startswith("synthetic-normals_")][:4] == [
        f"synthetic-normals_{m}" for m in NORMALS_COLUMNS]
    # degrees and percentages as scored (not ×100), equal to the re-derivation
    assert normals_csv["synthetic-normals_mean_angle"][0] == pytest.approx(_facing_official_mean(2), abs=1e-4)
    tex = (out / "leaderboard.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 2 and "% Surface normals" in tex
    page = (out / "leaderboard.html").read_text()
    assert page.count("<table>") == 2 and "<h2>Depth</h2>" in page and "<h2>Surface normals</h2>" in page
    assert page.count("<svg") == 2 + 4  # a chart per metric of each table
    # a second launch finds both cells finished (the normals cell under its normals benchmark)
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:facing", *ARGS, "--out", str(out),
                 "--format", "csv"]) == 0
    again = capsys.readouterr()
    assert again.err.count("finished before, reused") == 2
    assert again.out == (out / "leaderboard.csv").read_text() + "\n" + (out / "leaderboard-normals.csv").read_text()
    record = json.loads((out / "leaderboard.json").read_text())
    assert sorted(c["dataset"] for c in record["cells"]) == ["synthetic", "synthetic-normals"]


def test_normals_only_leaderboard_under_dsine_has_one_table(tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:facing", *ARGS, "--out", str(out), "--protocol", "dsine",
                 "--format", "csv"]) == 0
    table = pd.read_csv(out / "leaderboard.csv")
    assert not (out / "leaderboard-normals.csv").exists() and "## " not in (out / "leaderboard.md").read_text()
    (run_dir,) = (out / "baseline-facing").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scoring"]["protocol"] == "dsine" and summary["task"] == "normals"
    assert table["synthetic-normals_mean_angle"][0] == pytest.approx(summary["metrics"]["mean_angle"], rel=1e-5)
    assert table["alignment"][0] == "dsine: none"


def test_a_benchmark_without_normals_is_refused_before_any_model_runs(tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:facing", "--datasets", "synthetic,kitti",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "kitti has no normals ground truth" in err and "leaderboard of their own" in err
    assert not out.exists()


def test_task_override_makes_a_depth_model_a_failed_row(tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:facing", *ARGS, "--out", str(out),
                 "--task", "normals"]) == 1
    md = capsys.readouterr().out
    assert "## " not in md  # both are scored as normals: one table
    assert "baseline:ramp (failed: baseline:ramp predicts depth, not normals" in md
    assert "mean↓" in md and "AbsRel" not in md


@pytest.mark.usefixtures("one_thread")
def test_run_task_normals_without_a_model_runs_the_bundled_normals_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--task", "normals", "--dataset", "synthetic", "--max-samples", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "normals" and summary["settings"]["model"].endswith("tiny-normals")
    assert np.isfinite(summary["metrics"]["mean_angle"]) and 0 < summary["metrics"]["mean_angle"] < 180
    rows = pd.read_csv(out / "per_sample.csv")
    assert summary["metrics"]["mean_angle"] == pytest.approx(rows["mean_angle"].mean(), abs=1e-9)


@pytest.mark.usefixtures("one_thread")
def test_bundled_depth_and_normals_checkpoints_in_one_leaderboard(tmp_path, capsys):
    from marigold_bench.commands.common import BUNDLED_TINY, BUNDLED_TINY_NORMALS

    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", f"{BUNDLED_TINY},{BUNDLED_TINY_NORMALS}", "--datasets", "synthetic",
                 "--max-samples", "1", "--out", str(out)]) == 0
    md = capsys.readouterr().out
    depth_part, _, normals_part = md.partition("## Surface normals")
    assert "| tiny, " in depth_part and "AbsRel" in depth_part and "tiny-normals" not in depth_part
    assert "| tiny-normals, " in normals_part and "mean↓" in normals_part
