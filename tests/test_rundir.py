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


# --- a damaged per_sample.csv ------------------------------------------------------------------

RAMP_RUN = ["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "3"]


@pytest.fixture(scope="module")
def ramp_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ramp") / "run"
    assert main([*RAMP_RUN, "--out", str(run)]) == 0
    return run


def _header_cut(text):
    return text[:text.index(",")]  # "id" survives, every other column and row is gone


DAMAGE = {
    "empty": (lambda text: "", "the file is empty"),
    "no header": (lambda text: "\n".join(text.splitlines()[1:]) + "\n", "no header with an id column"),
    "cut mid-row": (lambda text: text[:text.index("\n") + 40], "line 2 is cut short"),
    "a row lost": (lambda text: "\n".join(text.splitlines()[:-1]) + "\n", "2 sample row(s), summary.json counts 3"),
    "header only": (lambda text: text.splitlines()[0] + "\n", "0 sample row(s), summary.json counts 3"),
    "header cut": (_header_cut, "0 sample row(s)"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_per_sample_csv_is_one_line_naming_the_cure(ramp_run, tmp_path, capsys, damage):
    """compare, rescore and gallery (every reader of the file) refuse it in one line that names
    the file, what is wrong and the command that rebuilds it; was a pandas EmptyDataError
    traceback, or for a cut file "0 samples ok in both runs" and a blamed --data-root."""
    import shutil

    edit, says = DAMAGE[damage]
    run = tmp_path / "damaged"
    shutil.copytree(ramp_run, run)
    csv = run / "per_sample.csv"
    csv.write_text(edit(csv.read_text()))
    for argv in (["compare", str(ramp_run), str(run)], ["rescore", str(run), "--out", str(tmp_path / "rs")],
                 ["gallery", str(run)]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert f"{csv} is damaged (" in err and says in err, err
        assert f"`marigold-bench run` that made it with the same flags and --out {run}" in err, err
    assert not (tmp_path / "rs").exists() and not (run / "gallery.png").exists()


def test_the_cure_named_rebuilds_per_sample_csv_from_the_cache(ramp_run, tmp_path, monkeypatch):
    import shutil

    from marigold_bench.inference.baseline import BaselinePredictor

    run = tmp_path / "damaged"
    shutil.copytree(ramp_run, run)
    (run / "per_sample.csv").write_text("")

    def no_prediction(*args, **kwargs):
        raise AssertionError("the cure predicted again instead of reading the cache")
    monkeypatch.setattr(BaselinePredictor, "predict", no_prediction)
    assert main([*RAMP_RUN, "--out", str(run)]) == 0
    assert (run / "per_sample.csv").read_text() == (ramp_run / "per_sample.csv").read_text()
    assert len(load_run(run).per_sample()) == 3


@pytest.mark.parametrize("extra, cure", [
    ({"rescored_from": "/elsewhere/run"}, "rerun the `marigold-bench rescore` that wrote it"),
    ({"settings": {"predictions": "/elsewhere/preds"}}, "rerun the `marigold-bench evaluate` that wrote it"),
    ({}, "predictions.h5 is not beside it, so only a new `marigold-bench run` can rebuild it"),
])
def test_the_cure_follows_what_wrote_the_folder(tmp_path, extra, cure):
    path = write_fake_run(tmp_path / "fake", [{"id": "a", "abs_rel": 0.1}, {"id": "b", "abs_rel": 0.2}],
                          dataset="synthetic", **extra)
    (tmp_path / "fake" / "per_sample.csv").write_text("")
    with pytest.raises(BenchError) as err:
        load_run(path).per_sample()
    message = str(err.value)
    assert message.startswith(f"{path}/per_sample.csv is damaged (the file is empty); ") and cure in message
    if extra:  # a command that may write over its own results again: the same folder
        assert f"--out {path}" in message


def test_rows_that_match_the_summary_still_read(tmp_path):
    # a failed sample's row counts too: n_total, not n, is the number of rows
    path = write_fake_run(tmp_path / "fake", [{"id": "a", "abs_rel": 0.1},
                                              {"id": "b", "abs_rel": math.nan, "status": "failed", "message": "x"}])
    assert list(load_run(path).per_sample()["status"]) == ["ok", "failed"]
