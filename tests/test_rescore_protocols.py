"""`rescore` moves a finished run between the relative protocols (marigold, moge) and the metric
ones (zoedepth, unidepth, monodepth2) where its output space allows, and refuses where it does
not, naming the alignments that would serve; point-map runs move only between point protocols."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.eval.cache import PredictionCache
from marigold_bench.eval.protocols import resolve_scoring
from marigold_bench.eval.scoring import scored_pixels

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_point_maps import _nyu_pack  # noqa: E402


@pytest.fixture(scope="module")
def affine_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("moves") / "ramp"
    assert main(["run", "--model", "baseline:ramp", "--dataset", "synthetic", "--split", "test:3", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def metric_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("moves") / "plane"
    assert main(["--include", str(HERE / "include_family"), "run", "--model", "plane:2", "--dataset", "synthetic",
                 "--split", "test:3", "--out", str(out)]) == 0
    return out


def _summary(folder):
    return json.loads((Path(folder) / "summary.json").read_text())


def test_relative_protocols_round_trip_to_the_same_numbers(affine_run, tmp_path):
    assert main(["rescore", str(affine_run), "--protocol", "moge", "--out", str(tmp_path / "moge")]) == 0
    assert _summary(tmp_path / "moge")["scoring"]["protocol"] == "moge"
    # from the moge rescore (which points at the run's cache) back to marigold: the run's own table
    assert main(["rescore", str(tmp_path / "moge"), "--protocol", "marigold", "--out", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "per_sample.csv").read_bytes() == (affine_run / "per_sample.csv").read_bytes()


@pytest.mark.parametrize("protocol, allowed", [("zoedepth", "affine | scale | median"),
                                               ("unidepth", "affine | scale | median"),
                                               ("monodepth2", "affine | median")])
def test_a_metric_protocol_refuses_an_affine_run_naming_the_alignments(affine_run, tmp_path, capsys, protocol, allowed):
    assert main(["rescore", str(affine_run), "--protocol", protocol, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "depth_affine_invariant predictions are only defined up to a fit" in err
    assert f"choose --alignment {allowed}" in err and not (tmp_path / "x").exists()


def test_a_metric_protocol_takes_an_affine_run_with_an_explicit_fit(affine_run, tmp_path):
    assert main(["rescore", str(affine_run), "--protocol", "monodepth2", "--alignment", "median",
                 "--out", str(tmp_path / "md2")]) == 0
    summary = _summary(tmp_path / "md2")
    assert summary["alignment"] == "median" and "alignment" in summary["scoring"]["overrides"]


@pytest.mark.parametrize("protocol", ["zoedepth", "unidepth"])
def test_a_metric_run_moves_to_metric_protocols_unaligned_and_back(metric_run, tmp_path, protocol):
    out = tmp_path / protocol
    assert main(["rescore", str(metric_run), "--protocol", protocol, "--out", str(out)]) == 0
    summary = _summary(out)
    assert summary["alignment"] == "none" and summary["output_space"] == "depth_metric"
    frame = pd.read_csv(out / "per_sample.csv")
    ds = load_dataset("synthetic", split="test:3")
    scoring = resolve_scoring(ds.protocol, protocol, "depth_metric")
    for i in range(3):
        item = ds[i]
        g = item["depth"][scored_pixels(item, scoring)].astype(np.float64)
        # a 2 m plane, unaligned (2 m lies inside both protocols' ranges): AbsRel by hand
        assert frame["abs_rel"][i] == pytest.approx(np.mean(np.abs(2.0 - g) / g), rel=1e-6)
    # and back to the relative protocol: the run's own table again
    assert main(["rescore", str(out), "--protocol", "marigold", "--out", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "per_sample.csv").read_bytes() == (metric_run / "per_sample.csv").read_bytes()


def test_a_point_run_rescored_only_by_point_protocols(tmp_path, capsys):
    _nyu_pack(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["--include", str(HERE / "include_points"), "run", "--model", "pointplane:2:0.8", "--dataset",
                 "moge/nyu", "--data-root", str(tmp_path / "data"), "--protocol", "moge", "--out", str(run)]) == 0
    with PredictionCache(run / "predictions.h5") as cache:
        assert cache.prediction("s/1").shape == (3, 480, 640)
    capsys.readouterr()
    assert main(["rescore", str(run), "--protocol", "marigold", "--out", str(tmp_path / "m")]) == 2
    assert "protocol marigold scores no point maps" in capsys.readouterr().err
    assert main(["rescore", str(run), "--output-space", "points_affine_invariant", "--out", str(tmp_path / "a")]) == 0
    before, after = pd.read_csv(run / "per_sample.csv"), pd.read_csv(tmp_path / "a" / "per_sample.csv")
    assert "rel_point_metric" not in after.columns
    np.testing.assert_allclose(after["rel_point_affine"], before["rel_point_affine"], rtol=1e-6)
