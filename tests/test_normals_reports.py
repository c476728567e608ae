"""`regress`, `compare`, `export` and `reproduce` on surface-normals run directories: each works with
the angle metrics (degrees and percentages as scored, never ×100) or refuses clearly."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from marigold_bench.cli import main

RUN = ["--dataset", "synthetic", "--model", "baseline:facing", "--max-samples", "3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("normals-runs")
    for name, extra in (("marigold", []), ("dsine", ["--protocol", "dsine"])):
        assert main(["run", *RUN, "--out", str(tmp / name), *extra]) == 0
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "3",
                 "--out", str(tmp / "depth")]) == 0
    return tmp


def _summary(path):
    return json.loads((path / "summary.json").read_text())


def test_regress_keeps_and_judges_angle_metrics(runs, tmp_path, capsys):
    baseline = tmp_path / "base.json"
    assert main(["regress", str(runs / "marigold"), "--baseline", str(baseline), "--update"]) == 0
    stored = json.loads(baseline.read_text())
    assert stored["metrics"] == _summary(runs / "marigold")["metrics"]
    assert stored["tolerances"]["mean_angle"] == 0.05 and stored["tolerances"]["pct_30"] == 0.1
    assert main(["regress", str(runs / "marigold"), "--baseline", str(baseline)]) == 0
    # a baseline 0.1 degree better than the run: the run regressed (lower is better for angles)
    stored["metrics"]["mean_angle"] -= 0.1
    baseline.write_text(json.dumps(stored))
    capsys.readouterr()
    assert main(["regress", str(runs / "marigold"), "--baseline", str(baseline)]) == 1
    assert "REGRESSED" in capsys.readouterr().out
    # the pooled protocol's run is another scoring: not comparable, said so
    assert main(["regress", str(runs / "dsine"), "--baseline", str(baseline)]) == 2
    assert "scoring protocol: baseline 'marigold' vs run 'dsine'" in capsys.readouterr().out


def test_compare_takes_the_normals_metrics_and_refuses_a_mix_of_tasks(runs, capsys):
    assert main(["compare", str(runs / "marigold"), str(runs / "dsine"), "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "| mean↓" in out and "| %<30↑" in out and "AbsRel" not in out
    assert "B's dataset metrics are pooled" in out and "A's dataset metrics are pooled" not in out
    assert main(["compare", str(runs / "depth"), str(runs / "marigold")]) == 2
    assert "scores depth" in capsys.readouterr().err


def test_export_writes_angles_as_scored(runs, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", str(runs / "marigold"), str(runs / "dsine"), "--out", str(out)]) == 0
    rows = pd.read_csv(out / "results.csv")
    assert sorted(set(rows["metric"])) == sorted(["mean_angle", "median_angle", "pct_11_25", "pct_30"])
    for protocol, name in (("normals/marigold/1", "marigold"), ("normals/dsine/1", "dsine")):
        metrics = _summary(runs / name)["metrics"]
        mine = rows[rows["protocol_id"] == protocol].set_index("metric")
        for metric in ("mean_angle", "pct_30"):
            assert mine.loc[metric, "display"] == round(metrics[metric], 2)  # degrees / percent, not ×100
    files = sorted(p.name for p in (out / ".eval_results").iterdir())
    assert files == ["synthetic-normals.yaml", "synthetic-normals_dsine.yaml"]
    assert "alignment none" in (out / ".eval_results" / "synthetic-normals.yaml").read_text().replace("\n    ", " ")
    # the model card's task is the run's, not depth's
    import yaml

    index = yaml.safe_load((out / "model-index.yaml").read_text())
    assert {r["task"]["type"] for r in index["model-index"][0]["results"]} == {"surface-normal-estimation"}
    assert main(["export", str(runs / "marigold"), "--out", str(tmp_path / "bad"), "--metrics", "nope"]) == 2


def test_reproduce_refuses_a_normals_metric_of_a_depth_model(tmp_path, capsys):
    cells = tmp_path / "cells.csv"
    cells.write_text("cell,model,benchmark,protocol,steps,ensemble,extra_args,metric,published,tolerance,source,"
                     "table,page,confidence\n"
                     "tiny/synthetic/mean,tiny,synthetic,marigold,1,1,--max-samples 2,mean_angle,40,0.5,ours,,,exact\n")
    assert main(["reproduce", "--cells-file", str(cells), "--out", str(tmp_path / "rep")]) == 2
    assert "mean_angle is a normals metric and tiny predicts depth" in capsys.readouterr().err
