"""`marigold-bench reproduce`: seeded paper cells are 'not run' with their fetch commands on a
machine without weights or data; the bundled tiny checkpoint's cells run and pass; bad cells
files are clear errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.report.reproduce import group_cells, judge, load_cells


@pytest.fixture
def no_weights_no_data(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("MARIGOLD_DATA", raising=False)


def test_the_seeded_cells_are_paper_rows_with_sources():
    cells = load_cells()
    marigold = {c.cell: c for c in cells if c.model == "marigold-v1-0" and c.steps == 50}
    # Marigold CVPR 2024 Table 1, 50 steps: N=10 NYU AbsRel 5.5 / δ1 96.4, N=1 KITTI 10.5
    assert marigold["marigold-v1-0-50x10/nyu/abs_rel"].published == 5.5
    assert marigold["marigold-v1-0-50x10/nyu/delta1"].published == 96.4
    assert marigold["marigold-v1-0-50x1/kitti/abs_rel"].published == 10.5
    assert all(c.table == "1" and "CVPR 2024" in c.source for c in marigold.values())
    assert len(marigold) == 20 and len(group_cells(list(marigold.values()))) == 10


def test_nothing_runnable_is_all_not_run_with_fetch_commands_and_exit_0(tmp_path, no_weights_no_data, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--cells", "marigold-*", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report and all(r["status"] == "not run" for r in report)
    v10 = [r for r in report if r["cell"].startswith("marigold-v1-0-")]
    assert all("download prs-eth/marigold-depth-v1-0" in r["message"] for r in v10)
    assert "not run" in capsys.readouterr().out


def test_the_tiny_cells_run_and_pass(tmp_path, no_weights_no_data):
    out = tmp_path / "rep"
    assert main(["reproduce", "--cells", "tiny-*", "--out", str(out)]) == 0
    report = {r["cell"]: r for r in json.loads((out / "report.json").read_text())}
    assert {r["status"] for r in report.values()} == {"pass"}
    run_dir = report["tiny-1x1/synthetic/abs_rel"]["run_dir"]
    summary = json.loads(open(f"{run_dir}/summary.json").read())
    # the verdict reads the run's own mean, x100
    assert report["tiny-1x1/synthetic/abs_rel"]["value"] == pytest.approx(100 * summary["metrics"]["abs_rel"])
    # the bundled normals checkpoint's cells ran against the normals ground truth: degrees as
    # printed (not x100), the mean of the run's per-image rows
    normals_dir = report["tiny-normals-1x1/synthetic/mean_angle"]["run_dir"]
    assert json.loads(open(f"{normals_dir}/summary.json").read())["task"] == "normals"
    rows = pd.read_csv(f"{normals_dir}/per_sample.csv")
    assert len(rows) == 8
    assert report["tiny-normals-1x1/synthetic/mean_angle"]["value"] == pytest.approx(rows["mean_angle"].mean(), abs=1e-6)


def test_judge_compares_as_printed_and_marks_partial_runs():
    cell = [c for c in load_cells() if c.cell == "marigold-v1-0-50x10/nyu/abs_rel"][0]
    summary = {"metrics": {"abs_rel": 0.0569}, "n": 650, "n_total": 654}
    outcome = judge(cell, summary, "x")
    assert outcome.status == "pass" and outcome.delta == pytest.approx(0.19)  # 5.69 vs 5.5 within ±0.2
    assert "partial: 650/654" in outcome.message
    assert judge(cell, {"metrics": {"abs_rel": 0.0571}, "n": 1, "n_total": 1}, "x").status == "fail"


@pytest.mark.parametrize("row, message", [
    ("c1,no-such-model,nyu,marigold,50,10,,abs_rel,5.5,0.2,src,1,,high", "not in the registry"),
    ("c1,tiny,atlantis,marigold,1,1,,abs_rel,5.5,0.2,src,1,,high", "unknown benchmark"),
    ("c1,tiny,nyu,marigold,1,1,,absrel,5.5,0.2,src,1,,high", "unknown metric"),
    ("c1,tiny,nyu,marigold,1,1,,abs_rel,nan,0.2,src,1,,high", "finite"),
    ("c1,tiny,nyu,marigold,1,1,,abs_rel,5.5,-1,src,1,,high", ">= 0"),
])
def test_bad_cells_files_are_clear_errors(tmp_path, row, message, capsys):
    path = tmp_path / "cells.csv"
    path.write_text("cell,model,benchmark,protocol,steps,ensemble,extra_args,metric,published,tolerance,"
                    "source,table,page,confidence\n" + row + "\n")
    assert main(["reproduce", "--cells-file", str(path), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
