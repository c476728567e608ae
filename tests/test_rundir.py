"""The run directory's one writer and reader (`eval.rundir`), and the shared test fixture that
writes fake runs through it."""

import json
import math

import pandas as pd
import pytest

from fixtures_rundir import write_fake_run
from marigold_bench.cli import main
from marigold_bench.errors import BenchError
from marigold_bench.eval.rundir import add_to_summary, finished_summary, load_run, record_columns


def test_a_real_run_reads_back_as_written(tmp_path):
    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "3",
                 "--out", str(run)]) == 0
    loaded = load_run(run)
    header = (run / "per_sample.csv").read_text().splitlines()[0].split(",")
    assert header == record_columns(loaded.summary)
    assert header[:3] == ["id", "abs_rel", "sq_rel"] and header[-3:] == ["n_valid", "status", "message"]
    frame = loaded.per_sample()
    assert list(frame["id"]) == ["test/indoor_00000", "test/outdoor_00001", "test/indoor_00002"]
    # the summary's means are the per-sample rows' means (recomputed here from the csv)
    assert loaded.metrics["abs_rel"] == pytest.approx(frame["abs_rel"].mean(), rel=1e-6)
    assert finished_summary(str(run)) == loaded.summary


def test_the_fixture_writes_the_real_format_with_hand_checked_counts(tmp_path):
    path = write_fake_run(tmp_path / "fake", [
        {"id": "a", "abs_rel": 0.1, "delta1": 0.9},
        {"id": "b", "abs_rel": 0.3, "delta1": 0.7},
        {"id": "c", "abs_rel": math.nan, "delta1": math.nan, "status": "failed", "message": "NaN"}],
        dataset="synthetic")
    run = load_run(path)
    assert (run.n, run.n_total, run.summary["n_failed"]) == (2, 3, 1)
    assert run.metrics == pytest.approx({"abs_rel": 0.2, "delta1": 0.8})
    frame = pd.read_csv(f"{path}/per_sample.csv", keep_default_na=False)
    # the columns a real run scored with these two metrics writes
    assert list(frame.columns) == ["id", "abs_rel", "delta1", "scale", "shift", "n_valid", "status", "message"]
    assert list(frame["status"]) == ["ok", "ok", "failed"] and frame.loc[2, "message"] == "NaN"
    with pytest.raises(ValueError, match="metrics and n"):
        write_fake_run(tmp_path / "bare")


def test_add_to_summary_keeps_the_rest_and_the_reader_refuses_what_is_not_a_run(tmp_path):
    path = write_fake_run(tmp_path / "r", dataset="nyu", metrics={"abs_rel": 0.06}, n=4)
    before = json.loads((tmp_path / "r" / "summary.json").read_text())
    add_to_summary(path, "leaderboard", {"request": {"model": "x"}})
    after = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert after == {**before, "leaderboard": {"request": {"model": "x"}}}
    assert [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".tmp")] == []
    (tmp_path / "r" / "summary.json").write_text("{not json")
    with pytest.raises(BenchError, match="cannot read it"):
        load_run(path)
    assert finished_summary(path) is None
