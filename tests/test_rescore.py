"""`marigold-bench rescore`: a finished run's cached predictions scored again, no model loaded."""

import json
import os

import h5py
import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.data import load_dataset


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A synthetic run of the bundled tiny checkpoint (one step, six scenes)."""
    out = tmp_path_factory.mktemp("rescore") / "run"
    assert main(["run", "--dataset", "synthetic", "--max-samples", "6", "--steps", "1",
                 "--out", str(out)]) == 0
    return out


def test_rescore_under_the_runs_own_protocol_reproduces_per_sample_csv(run_dir, tmp_path):
    out = tmp_path / "again"
    assert main(["rescore", str(run_dir), "--out", str(out)]) == 0
    assert (out / "per_sample.csv").read_bytes() == (run_dir / "per_sample.csv").read_bytes()
    before, after = (json.loads((d / "summary.json").read_text()) for d in (run_dir, out))
    assert after["metrics"] == before["metrics"] and after["scoring"] == before["scoring"]
    assert after["rescored_from"] == os.path.abspath(run_dir) and not (out / "predictions.h5").exists()
    # naming the run's own choices explicitly changes nothing either
    explicit = tmp_path / "explicit"
    assert main(["rescore", str(run_dir), "--protocol", "marigold", "--alignment", "affine",
                 "--out", str(explicit)]) == 0
    assert (explicit / "per_sample.csv").read_bytes() == (run_dir / "per_sample.csv").read_bytes()


def test_rescore_under_moge_writes_a_complete_different_table(run_dir, tmp_path):
    out = tmp_path / "moge"
    assert main(["rescore", str(run_dir), "--protocol", "moge", "--out", str(out)]) == 0
    frame = pd.read_csv(out / "per_sample.csv")
    ours = pd.read_csv(run_dir / "per_sample.csv")
    assert list(frame.columns) == ["id", "abs_rel", "delta1", "boundary_f1", "scale", "shift",
                                   "n_valid", "status", "message"]
    assert list(frame["id"]) == list(ours["id"]) and (frame["status"] == "ok").all()
    assert frame[["abs_rel", "delta1", "boundary_f1", "scale", "shift"]].notna().all().all()
    assert not np.allclose(frame["abs_rel"], ours["abs_rel"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scoring"]["protocol"] == "moge" and summary["scoring"]["clip_to_range"] is False
    assert summary["metrics"]["abs_rel"] == pytest.approx(frame["abs_rel"].mean())
    # MoGe's rel recomputed from the fit the table records: no clipping, g + 1e-6 below
    ds = load_dataset("synthetic", split="test:6")
    with h5py.File(run_dir / "predictions.h5") as f:
        for i in (0, 3):
            item, row = ds[i], frame.iloc[i]
            p = f[item["id"]][()].astype(np.float64)[item["valid"]]
            g = item["depth"][item["valid"]].astype(np.float64)
            aligned = row["scale"] * p + row["shift"]
            assert row["abs_rel"] == pytest.approx(np.mean(np.abs(aligned - g) / (g + 1e-6)), rel=1e-6)
            assert row["delta1"] == pytest.approx(np.mean(np.maximum(aligned / g, g / aligned) < 1.25), abs=2 / g.size)


def test_rescore_without_predictions_or_with_a_damaged_cache_writes_nothing(run_dir, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("summary.json", "per_sample.csv"):
        (bare / name).write_bytes((run_dir / name).read_bytes())
    out = tmp_path / "out"
    assert main(["rescore", str(bare), "--out", str(out)]) == 2
    assert "no predictions.h5" in capsys.readouterr().err and not out.exists()

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for name in ("summary.json", "per_sample.csv"):
        (truncated / name).write_bytes((run_dir / name).read_bytes())
    (truncated / "predictions.h5").write_bytes((run_dir / "predictions.h5").read_bytes()[:4096])
    assert main(["rescore", str(truncated), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "damaged prediction cache" in err and "predictions.h5" in err and not out.exists()

    # one sample's prediction gone: named, and not one file written (not even for the others)
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    for name in ("summary.json", "per_sample.csv", "predictions.h5"):
        (lacking / name).write_bytes((run_dir / name).read_bytes())
    gone = pd.read_csv(run_dir / "per_sample.csv")["id"][4]
    with h5py.File(lacking / "predictions.h5", "a") as f:
        del f[gone]
    for flags in ([], ["--protocol", "marigold,moge"]):
        assert main(["rescore", str(lacking), *flags, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert gone in err and "1 sample(s)" in err and not out.exists()

    assert main(["rescore", str(run_dir), "--out", str(run_dir)]) == 2  # never over the run itself
    assert "run directory itself" in capsys.readouterr().err


def test_sensitivity_table_has_one_row_per_protocol_and_alignment(run_dir, tmp_path, capsys):
    out = tmp_path / "sens"
    assert main(["rescore", str(run_dir), "--protocol", "marigold,moge", "--alignment", "affine,scale,median",
                 "--resamples", "2000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "sensitivity.csv")
    assert list(zip(table["protocol"], table["alignment"])) == [
        ("marigold", "affine"), ("marigold", "scale"), ("marigold", "median"),
        ("moge", "affine"), ("moge", "scale"), ("moge", "median")]
    assert (table["n"] == 6).all() and (table["fit_space"] == "depth").all()
    assert ((table["abs_rel_low"] <= table["abs_rel"]) & (table["abs_rel"] <= table["abs_rel_high"])).all()
    # the run's own combination is the run's own number; each row has its run folder
    run = json.loads((run_dir / "summary.json").read_text())
    assert table["abs_rel"][0] == pytest.approx(run["metrics"]["abs_rel"], rel=1e-7)  # csv: 8 digits
    for _, row in table.iterrows():
        folder = out / f"{row['protocol']}_{row['alignment']}_depth"
        frame = pd.read_csv(folder / "per_sample.csv")
        assert row["abs_rel"] == pytest.approx(frame["abs_rel"].mean())
        assert row["delta1"] == pytest.approx(frame["delta1"].mean())
    # the protocols' own fits move the number (median scaling is one rule in both; only the
    # metric definitions differ there, by the 1e-6 in MoGe's rel and the clipping)
    by = table.set_index(["protocol", "alignment"])["abs_rel"]
    for alignment in ("affine", "scale"):
        assert abs(by["moge", alignment] - by["marigold", alignment]) > 1e-4
    md = (out / "sensitivity.md").read_text()
    assert md.count("\n| marigold") == 3 and md.count("\n| moge") == 3
    assert "| moge       | median" in printed and "AbsRel" in printed


def test_rescore_refuses_an_alignment_the_runs_output_space_cannot_take(run_dir, tmp_path, capsys):
    out = tmp_path / "none"
    assert main(["rescore", str(run_dir), "--alignment", "none", "--out", str(out)]) == 2
    assert "cannot serve" in capsys.readouterr().err and not out.exists()
    assert main(["rescore", str(run_dir), "--protocol", "marigold,mystery", "--out", str(out)]) == 2
    assert "known protocols: marigold, moge" in capsys.readouterr().err


def test_failed_samples_are_rescored_to_the_same_record(tmp_path):
    # a NaN prediction is cached and fails scoring again; a predictor error leaves no
    # prediction behind, and the run's record is kept
    from marigold_bench.errors import PredictionError
    from marigold_bench.eval.evaluator import run_predictor

    ds = load_dataset("synthetic", split="test:4")

    class Flaky:
        device, output_space = None, "depth_affine_invariant"
        settings = {"model": "flaky", "family": "test", "output_space": output_space, "ensemble": 1,
                    "ensembling": None}

        def predict(self, jobs):
            (sid, rgb, members), = jobs
            if sid == ds.ids[2]:
                raise PredictionError(f"{sid}: the model gave up")
            out = rgb.mean(axis=2).astype(np.float32)[None] / 255 + 0.1
            if sid == ds.ids[1]:
                out[0, 20:30] = np.nan
            return [out]

        def merge(self, members, out_shape=None):
            return members.mean(axis=0), None

    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="gave up"):
        summary = run_predictor(ds, Flaky(), str(run), progress=False, images_per_batch=1)
    assert summary["n_failed"] == 2
    assert main(["rescore", str(run), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "per_sample.csv").read_bytes() == (run / "per_sample.csv").read_bytes()


def test_a_pair_a_protocol_does_not_define_is_a_marked_row(run_dir, tmp_path, capsys):
    # read as disparity, MoGe has no scale-only fit: that row says so, the others are scored
    out = tmp_path / "disp"
    assert main(["rescore", str(run_dir), "--output-space", "disparity_affine_invariant",
                 "--protocol", "marigold,moge", "--alignment", "affine,scale", "--resamples", "500",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "sensitivity.csv", keep_default_na=False, na_values=[""])
    assert list(zip(table["protocol"], table["alignment"])) == [
        ("marigold", "affine"), ("marigold", "scale"), ("moge", "affine"), ("moge", "scale")]
    undefined = table.iloc[3]
    assert undefined["n"] == 0 and np.isnan(undefined["abs_rel"]) and "no scale alignment" in undefined["note"]
    assert table.iloc[:3]["abs_rel"].notna().all() and (table.iloc[:3]["fit_space"] == "disparity").all()
    assert "not defined" in printed and not (out / "moge_scale_disparity").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "marigold_affine_disparity", "marigold_scale_disparity", "moge_affine_disparity"]
    # asked for alone, the same pair is an error
    assert main(["rescore", str(run_dir), "--output-space", "disparity_affine_invariant", "--protocol", "moge",
                 "--alignment", "scale", "--out", str(tmp_path / "single")]) == 2
    assert "moge has no scale alignment in disparity space" in capsys.readouterr().err
    # `none` on affine-invariant predictions is a marked row of a table too (alone: refused)
    out = tmp_path / "with-none"
    assert main(["rescore", str(run_dir), "--alignment", "affine,none", "--resamples", "200",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out / "sensitivity.csv", keep_default_na=False, na_values=[""])
    assert list(table["alignment"]) == ["affine", "none"]
    assert table.iloc[0]["n"] > 0 and table.iloc[1]["n"] == 0 and "cannot serve" in table.iloc[1]["note"]
    capsys.readouterr()
    assert main(["rescore", str(run_dir), "--alignment", "none", "--out", str(tmp_path / "none")]) == 2


def test_rescore_reloads_a_benchmark_from_the_recorded_root_and_split(tmp_path):
    from fixtures_data import build

    fx = build("diode", tmp_path)
    run = tmp_path / "run"
    assert main(["run", "--dataset", "diode", "--data-root", str(fx.folder), "--split", str(fx.split),
                 "--model", "baseline:ramp", "--out", str(run)]) == 0
    again = tmp_path / "again"
    assert main(["rescore", str(run), "--out", str(again)]) == 0  # no --data-root: the run's
    assert (again / "per_sample.csv").read_bytes() == (run / "per_sample.csv").read_bytes()
    moge = tmp_path / "moge"
    assert main(["rescore", str(run), "--protocol", "moge", "--out", str(moge)]) == 0
    summary = json.loads((moge / "summary.json").read_text())
    assert set(summary["subsets"]) == {"indoor", "outdoor", "all"}
    assert summary["subsets"]["indoor"]["n"] == 1 and "boundary_f1" not in summary["metrics"]  # not sharp
    # the data moved: the recorded root is gone, --data-root finds it
    moved = tmp_path / "moved"
    fx.folder.rename(moved)
    assert main(["rescore", str(run), "--out", str(tmp_path / "lost")]) == 2
    assert main(["rescore", str(run), "--data-root", str(moved), "--out", str(tmp_path / "found")]) == 0


def test_rescore_never_writes_over_another_runs_results(run_dir, tmp_path, capsys):
    import shutil

    other = tmp_path / "other-run"
    shutil.copytree(run_dir, other)
    before = {name: (other / name).read_bytes() for name in ("per_sample.csv", "summary.json")}
    assert main(["rescore", str(run_dir), "--protocol", "moge", "--out", str(other)]) == 2
    assert "predictions.h5" in capsys.readouterr().err
    (other / "predictions.h5").unlink()  # a run's results without its cache are still its own
    assert main(["rescore", str(run_dir), "--protocol", "moge", "--out", str(other)]) == 2
    assert "results of another run" in capsys.readouterr().err
    assert {name: (other / name).read_bytes() for name in before} == before
    # an earlier rescore of the same run is simply replaced
    again = tmp_path / "again"
    assert main(["rescore", str(run_dir), "--out", str(again)]) == 0
    assert main(["rescore", str(run_dir), "--protocol", "moge", "--out", str(again)]) == 0
    assert json.loads((again / "summary.json").read_text())["scoring"]["protocol"] == "moge"


def _files(folder):
    """Every file under a folder, by relative name, as bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_sensitivity_table_of_another_run_is_never_written_over(run_dir, tmp_path, capsys):
    import shutil

    other = tmp_path / "other-run"   # the same predictions, but another run's folder
    shutil.copytree(run_dir, other)
    table = tmp_path / "table"
    argv = ["--protocol", "marigold,moge", "--resamples", "50", "--out", str(table)]
    assert main(["rescore", str(run_dir), *argv]) == 0
    before = _files(table)
    assert {"sensitivity.md", "sensitivity.csv", "marigold_affine_depth/summary.json",
            "moge_affine_depth/summary.json"} <= set(before)
    capsys.readouterr()
    assert main(["rescore", str(other), *argv]) == 2
    err = capsys.readouterr().err
    assert "results of another run" in err and os.path.abspath(run_dir) in err and "Traceback" not in err
    assert _files(table) == before
    # the identical command again is a rerun of the same table: allowed, the same numbers
    assert main(["rescore", str(run_dir), *argv]) == 0
    after = _files(table)
    assert after["sensitivity.csv"] == before["sensitivity.csv"]
    assert after["moge_affine_depth/per_sample.csv"] == before["moge_affine_depth/per_sample.csv"]
    # an interrupted table (rows written, the table files not yet) is recognised by its rows
    for name in ("sensitivity.md", "sensitivity.csv"):
        (table / name).unlink()
    rows = _files(table)
    assert main(["rescore", str(other), *argv]) == 2
    assert "results of another run" in capsys.readouterr().err and _files(table) == rows


def test_a_rescore_of_the_other_shape_is_never_written_beside_one(run_dir, tmp_path, capsys):
    table, single = tmp_path / "table", tmp_path / "single"
    assert main(["rescore", str(run_dir), "--protocol", "marigold,moge", "--resamples", "50",
                 "--out", str(table)]) == 0
    assert main(["rescore", str(run_dir), "--protocol", "moge", "--out", str(single)]) == 0
    before = {folder: _files(folder) for folder in (table, single)}
    capsys.readouterr()
    # a single rescore into the table's folder, and a table into the single rescore's
    assert main(["rescore", str(run_dir), "--out", str(table)]) == 2
    assert "holds a sensitivity table" in capsys.readouterr().err
    assert main(["rescore", str(run_dir), "--protocol", "marigold,moge", "--out", str(single)]) == 2
    assert "holds a rescore of" in capsys.readouterr().err
    # nor a run or an evaluation into a table's folder (no summary.json at its top)
    assert main(["run", "--dataset", "synthetic", "--max-samples", "2", "--model", "baseline:ramp",
                 "--out", str(table)]) == 2
    assert "sensitivity.md" in capsys.readouterr().err
    assert {folder: _files(folder) for folder in (table, single)} == before
    # the single rescore's own kind may replace it
    assert main(["rescore", str(run_dir), "--out", str(single)]) == 0
    assert json.loads((single / "summary.json").read_text())["scoring"]["protocol"] == "marigold"


def test_a_depth_rescore_is_never_written_beside_a_normals_table(run_dir, tmp_path, capsys):
    normals, table = tmp_path / "normals", tmp_path / "normals-table"
    assert main(["run", "--dataset", "synthetic", "--task", "normals", "--model", "baseline:facing",
                 "--max-samples", "2", "--out", str(normals)]) == 0
    assert main(["rescore", str(normals), "--protocol", "marigold,dsine", "--resamples", "50",
                 "--out", str(table)]) == 0
    before = _files(table)
    assert {"dsine_none_none/summary.json", "marigold_none_none/summary.json"} <= set(before)
    capsys.readouterr()
    assert main(["rescore", str(run_dir), "--out", str(table)]) == 2
    err = capsys.readouterr().err
    assert "results of another run" in err and os.path.abspath(normals) in err
    assert _files(table) == before and not (table / "summary.json").exists()
