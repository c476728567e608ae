"""The ``moge-lifted`` protocol: a depth model scored as ``moge`` scores it, plus MoGe's point
columns of its aligned depth lifted with the sample's ground-truth intrinsics.

Expected values: the lift is written out here by hand (``d * ((u - cx) / fx, (v - cy) / fy, 1)``
at pixel centres), then scored with `eval.points.moge_point_scores` (whose exactness against
MoGe's ``compute_metrics`` is tested in test_moge_pack.py); planes give exact zeros by hand.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.registry import get_benchmark
from marigold_bench.errors import BenchError
from marigold_bench.eval.align import align
from marigold_bench.eval.points import moge_point_scores
from marigold_bench.eval.protocols import resolve_scoring

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_moge_pack import CENTRED, H, W, pack_root, rgb, write_sample  # noqa: E402
from test_point_maps import _nyu_pack  # noqa: E402

POINTS = {"metric": "points_metric", "scale": "points_scale_invariant", "affine": "points_affine_invariant"}
#: the warped size of the NYUv2 fixture (MoGe's target size; the warp centres the camera)
GH, GW = 480, 640


def _hand_lift(depth, k):
    """Pixel (i, j) at normalised ((j + 0.5) / W, (i + 0.5) / H), through K's focal and centre."""
    h, w = depth.shape
    x = ((np.arange(w) + 0.5) / w - k[0, 2]) / k[0, 0]
    y = ((np.arange(h) + 0.5) / h - k[1, 2]) / k[1, 1]
    return np.stack([depth * x[None, :], depth * y[:, None], depth], axis=-1)


def _evaluate(tmp_path, preds: dict, output_space, protocol="moge-lifted", name="eval"):
    folder = tmp_path / f"{name}_pred" / "s"
    folder.mkdir(parents=True)
    for sid, depth in preds.items():
        np.save(folder / f"{sid.split('/')[1]}.npy", depth)
    out = tmp_path / name
    assert main(["evaluate", "--dataset", "moge/nyu", "--data-root", str(tmp_path / "data"), "--protocol", protocol,
                 "--output-space", output_space, "--predictions", str(folder.parent), "--out", str(out)]) == 0
    return pd.read_csv(out / "per_sample.csv"), json.loads((out / "summary.json").read_text())


def test_a_metric_depth_lifted_by_hand_is_scored_with_moges_point_metrics(tmp_path):
    _nyu_pack(tmp_path / "data")
    ds = load_dataset("moge/nyu", root=tmp_path / "data")
    # a tilted plane (not the ground truth's shape) and a fronto-parallel one 2 m away
    tilted = (1.5 + 0.002 * np.arange(GW)[None, :] + 0.001 * np.arange(GH)[:, None]).astype(np.float32)
    preds = {"s/1": tilted, "s/2": np.full((GH, GW), 2.0, np.float32)}
    frame, summary = _evaluate(tmp_path, preds, "depth_metric")
    scoring = summary["scoring"]
    assert scoring["protocol"] == "moge-lifted" and "ground-truth intrinsics" in scoring["metric_definitions"]
    # NYUv2 is metric: all three point alignments; the true focal is used, so no fov column
    assert scoring["metric_keys"] == ["abs_rel", "delta1", *(f"{m}_point_{a}" for a in POINTS for m in ("rel", "delta1"))]
    for i, row in frame.iterrows():
        item = ds[i]
        k = item["intrinsics"]
        expect = moge_point_scores(_hand_lift(preds[row["id"]].astype(np.float64), k), item["depth"], item["mask"], k,
                                   "points_metric", True)
        for word, space in POINTS.items():
            assert row[f"rel_point_{word}"] == pytest.approx(expect[space]["rel"], rel=1e-6, abs=1e-9)
            assert row[f"delta1_point_{word}"] == pytest.approx(expect[space]["delta1"], rel=1e-6)
    # s/2: a 2 m plane against a 3 m one lifted through the same camera: one scale makes it exact
    assert frame["rel_point_scale"][1] < 1e-6 and frame["delta1_point_scale"][1] == 1.0
    assert frame["rel_point_metric"][1] > 0.05 and frame["rel_point_scale"][0] > 0.01
    # the depth columns are moge's own
    moge_frame, _ = _evaluate(tmp_path, preds, "depth_metric", protocol="moge", name="moge")
    for column in ("abs_rel", "delta1", "scale", "shift"):
        assert frame[column].tolist() == moge_frame[column].tolist()


def test_an_affine_run_rescored_into_the_lifted_protocol(tmp_path):
    _nyu_pack(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["run", "--model", "baseline:ramp", "--dataset", "moge/nyu", "--data-root", str(tmp_path / "data"),
                 "--protocol", "moge", "--out", str(run)]) == 0
    out = tmp_path / "lifted"
    assert main(["rescore", str(run), "--protocol", "moge-lifted", "--out", str(out)]) == 0
    before, after = pd.read_csv(run / "per_sample.csv"), pd.read_csv(out / "per_sample.csv")
    summary = json.loads((out / "summary.json").read_text())
    # an affine depth gets the affine point fit only, and keeps its depth numbers
    assert summary["scoring"]["metric_keys"] == ["abs_rel", "delta1", "rel_point_affine", "delta1_point_affine"]
    assert after["abs_rel"].tolist() == before["abs_rel"].tolist()
    assert summary["protocol_identity"]["protocol_id"] == "moge-lifted/1"
    assert summary["protocol_identity"]["protocol_hash"] != \
        json.loads((run / "summary.json").read_text())["protocol_identity"]["protocol_hash"]
    # the points are the depth as moge aligned it, lifted by hand through the true camera
    from marigold_bench.eval.cache import PredictionCache

    ds = load_dataset("moge/nyu", root=tmp_path / "data")
    scoring = resolve_scoring(ds.protocol, "moge", "depth_affine_invariant")
    with PredictionCache(run / "predictions.h5") as cache:
        for i, row in after.iterrows():
            item = ds[i]
            aligned, _, _ = align(cache.prediction(row["id"]), item["depth"], item["valid"], scoring)
            expect = moge_point_scores(_hand_lift(aligned, item["intrinsics"]), item["depth"], item["mask"],
                                       item["intrinsics"], "points_affine_invariant", True)["points_affine_invariant"]
            assert row["rel_point_affine"] == pytest.approx(expect["rel"], rel=1e-6, abs=1e-9)
            assert row["delta1_point_affine"] == pytest.approx(expect["delta1"], rel=1e-6)


def test_a_sample_without_intrinsics_scores_depth_and_says_why_points_are_missing(tmp_path):
    _nyu_pack(tmp_path / "data", intrinsics=None)  # no camera: no warp, the raw 48x64 frames
    frame, summary = _evaluate(tmp_path, {"s/1": np.full((H, W), 1.0, np.float32),
                                          "s/2": np.full((H, W), 1.0, np.float32)}, "depth_scale_invariant")
    assert (frame["status"] == "ok").all()
    # depth still scored: one scale makes the 1 m plane each ground-truth plane
    assert frame["abs_rel"].max() < 1e-5
    assert frame["rel_point_scale"].isna().all() and frame["message"].str.contains("point metrics not scored").all()
    assert math.isnan(summary["metrics"]["rel_point_scale"])


def test_columns_follow_the_depths_invariance_and_the_benchmark():
    nyu, sintel = get_benchmark("moge/nyu"), get_benchmark("moge/sintel")
    keys = resolve_scoring(nyu, "moge-lifted", "disparity_affine_invariant").metric_keys
    assert keys == ("abs_rel", "delta1", "rel_point_affine", "delta1_point_affine")
    # Sintel is not metric (no metric points) and has segments (local points); no fov_x anywhere
    keys = resolve_scoring(sintel, "moge-lifted", "depth_metric").metric_keys
    assert keys == ("abs_rel", "delta1", "rel_point_scale", "delta1_point_scale", "rel_point_affine",
                    "delta1_point_affine", "rel_local", "delta1_local")
    # moge itself gives a depth model depth columns only, as MoGe's compute_metrics does
    assert resolve_scoring(nyu, "moge", "depth_metric").metric_keys == ("abs_rel", "delta1")


def test_a_point_map_model_is_sent_to_moge(tmp_path):
    with pytest.raises(BenchError, match="protocol moge-lifted scores no point maps .*--protocol moge"):
        resolve_scoring(get_benchmark("moge/nyu"), "moge-lifted", "points_scale_invariant")


def test_local_points_of_a_lifted_depth(tmp_path):
    bench = pack_root(tmp_path / "data", "iBims-1", index=("a",))
    seg = np.zeros((H, W), np.uint8)
    seg[:, W // 2:] = 1
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, W // 2:] = 3.0
    write_sample(bench / "a", rgb(), depth, CENTRED, segmentation=seg, labels={"left": 0, "right": 1},
                 near=1.0, far=4.0)
    out = tmp_path / "run"
    assert main(["--include", str(HERE / "include_family"), "run", "--model", "plane:1", "--dataset", "moge/ibims",
                 "--data-root", str(tmp_path / "data"), "--protocol", "moge-lifted", "--out", str(out)]) == 0
    frame = pd.read_csv(out / "per_sample.csv")
    # each half is a fronto-parallel plane: a 1 m plane lifted is each half up to its own scale
    assert frame["rel_local"][0] < 1e-5 and frame["delta1_local"][0] == 1.0
    assert frame["rel_point_scale"][0] > 0.05  # but no one scale fits both halves
