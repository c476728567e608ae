"""`marigold-bench run` on a benchmark in its official layout, and without any data."""

import json

import pandas as pd

from fixtures_data import build_nyu, make_tar
from marigold_bench.cli import main


def test_run_on_an_official_layout_folder_and_tar(tmp_path, capsys):
    fx = build_nyu(tmp_path)
    out = tmp_path / "run"
    args = ["run", "--dataset", "nyu", "--split", str(fx.split), "--model", "baseline:ramp"]
    assert main(args + ["--data-root", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "AbsRel" in printed and "| nyu" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 2 and summary["protocol"]["eval_mask"] == "eigen"
    frame = pd.read_csv(out / "per_sample.csv")
    # the valid-pixel counts are the fixture's, counted independently of the loader
    assert list(frame["n_valid"]) == [int(s.valid.sum()) for s in fx.samples]

    # the same benchmark read straight from its archive gives the same records
    tar = make_tar(fx.folder, tmp_path / "nyu.tar")
    out_tar = tmp_path / "run_tar"
    assert main(args + ["--data-root", str(tar), "--out", str(out_tar)]) == 0
    assert (out_tar / "per_sample.csv").read_text() == (out / "per_sample.csv").read_text()


def test_run_without_data_says_how_to_get_it(tmp_path, monkeypatch, capsys, splits_dir):
    monkeypatch.delenv("MARIGOLD_DATA", raising=False)
    assert main(["run", "--dataset", "nyu", "--model", "baseline:ramp", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "marigold-bench data download --dataset nyu" in err
    assert "nyu_labeled_extracted.tar" in err and "Traceback" not in err
