"""Point-map predictions end to end: declared by a model (the test-only ``pointplane`` family in
tests/include_points) or given as files to ``evaluate``, cached as 3xHxW, scored by the ``moge``
protocol with MoGe's point columns; a sample or benchmark without intrinsics scores depth only.

Expected values are computed here independently: a plane's points lifted by hand, the field of
view from ``2 atan(0.5 / fx)``, and the point scores of `eval.points` called directly on the
loaded items (whose own exactness against MoGe is tested in test_moge_pack.py).
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
from marigold_bench.eval.metrics import mean_metrics
from marigold_bench.eval.points import depth_to_points, focal_shift_from_points, intrinsics_from_points, moge_point_scores
from marigold_bench.eval.protocols import resolve_scoring

sys.path.insert(0, str(Path(__file__).resolve().parent))
from include_points.pointplane import plane_points  # noqa: E402
from test_moge_pack import CENTRED, H, W, pack_root, rgb, write_sample  # noqa: E402

INCLUDE = str(Path(__file__).resolve().parent / "include_points")
POINT_COLUMNS = ["rel_point_metric", "delta1_point_metric", "rel_point_scale", "delta1_point_scale",
                 "rel_point_affine", "delta1_point_affine"]


def _nyu_pack(root: Path, intrinsics=CENTRED) -> Path:
    """Two NYUv2 samples: a plane 2 m away with a strip of unknown depth, and one 3 m away."""
    bench = pack_root(root, "NYUv2", index=("s/1", "s/2"))
    near_plane = np.full((H, W), 2.0, np.float32)
    near_plane[:, :10] = np.nan
    meta = None if intrinsics is not None else {"note": "no camera"}
    write_sample(bench / "s/1", rgb(), near_plane, intrinsics, near=1.0, far=4.0, meta=meta)
    write_sample(bench / "s/2", rgb(), np.full((H, W), 3.0, np.float32), intrinsics, near=1.0, far=4.0, meta=meta)
    return root


def _run(tmp_path, model, dataset="moge/nyu", *extra):
    out = tmp_path / "run"
    code = main(["--include", INCLUDE, "run", "--model", model, "--dataset", dataset, "--data-root",
                 str(tmp_path / "data"), "--protocol", "moge", "--out", str(out), *extra])
    return code, out


def _fov(fx):
    return math.degrees(2 * math.atan(0.5 / fx))


def test_a_point_model_runs_and_is_scored_as_moge_scores_points(tmp_path):
    _nyu_pack(tmp_path / "data")
    code, out = _run(tmp_path, "pointplane:2:0.8")
    assert code == 0
    frame = pd.read_csv(out / "per_sample.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["output_space"] == "points_metric" and summary["alignment"] == "none"
    # NYUv2 is metric: all three point alignments; no segments; a focal read off the points
    assert summary["scoring"]["metric_keys"] == ["abs_rel", "delta1", *POINT_COLUMNS, "fov_x_mae", "fov_x_deviation"]

    # the cache holds the 3xHxW point map at ground-truth size, equal to the plane lifted by hand
    from marigold_bench.eval.cache import PredictionCache

    with PredictionCache(out / "predictions.h5") as cache:
        for sid in ("s/1", "s/2"):
            assert np.array_equal(cache.prediction(sid), plane_points(2.0, 0.8, (480, 640)))

    ds = load_dataset("moge/nyu", root=tmp_path / "data")
    plane = plane_points(2.0, 0.8, (480, 640)).transpose(1, 2, 0)
    for i, row in frame.iterrows():
        item = ds[i]
        expect = moge_point_scores(plane, item["depth"], item["mask"], item["intrinsics"], "points_metric", True,
                                   pred_intrinsics=intrinsics_from_points(plane, item["mask"]))
        for alignment, word in (("points_metric", "metric"), ("points_scale_invariant", "scale"),
                                ("points_affine_invariant", "affine")):
            assert row[f"rel_point_{word}"] == pytest.approx(expect[alignment]["rel"], rel=1e-6, abs=1e-9)
            assert row[f"delta1_point_{word}"] == pytest.approx(expect[alignment]["delta1"], abs=1e-9)
        # the fov error by hand: the plane's fx 0.8 against the warped camera's
        assert row["fov_x_deviation"] == pytest.approx(_fov(0.8) - _fov(item["intrinsics"][0, 0]), abs=1e-4)
        assert row["fov_x_mae"] == pytest.approx(abs(row["fov_x_deviation"]))
        # depth columns are the plane's z (2 m) against the ground truth, unaligned (metric)
        g = item["depth"][item["mask"]]
        assert row["abs_rel"] == pytest.approx(np.mean(np.abs(2.0 - g) / (g + 1e-6)), rel=1e-6)
    assert summary["metrics"]["rel_point_scale"] == pytest.approx(frame["rel_point_scale"].mean())


def test_an_exact_plane_scores_perfectly_under_scale_and_affine(tmp_path):
    # the warped camera of CENTRED at 640x480 is centred with fx = 1 (test_moge_pack's identity warp)
    _nyu_pack(tmp_path / "data")
    code, out = _run(tmp_path, "pointplane:2:1")
    assert code == 0
    frame = pd.read_csv(out / "per_sample.csv")
    # a plane 2 m away is exact on s/1, and 1.5x too close on s/2: one scale fixes both
    for column in ("rel_point_scale", "rel_point_affine"):
        assert frame[column].abs().max() < 1e-5, column
    # the focal is solved from float32 points: 1e-7 relative in fx is ~5e-6 degrees of fov
    assert frame["fov_x_mae"].max() < 1e-4
    assert frame["delta1_point_scale"].tolist() == [1.0, 1.0]
    assert frame["rel_point_metric"][0] < 1e-5 and frame["rel_point_metric"][1] > 0.05


def test_an_output_space_override_drops_the_metric_alignment(tmp_path):
    _nyu_pack(tmp_path / "data")
    code, out = _run(tmp_path, "pointplane:2:1", "moge/nyu", "--output-space", "points_affine_invariant")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    # affine points: only the affine alignment, depth aligned affinely, focal solved with the z-shift
    assert summary["scoring"]["metric_keys"] == ["abs_rel", "delta1", "rel_point_affine", "delta1_point_affine",
                                                 "fov_x_mae", "fov_x_deviation"]
    assert summary["alignment"] == "affine" and "output_space" in summary["scoring"]["overrides"]
    # a fronto-parallel plane cannot tell its shift from its focal: the search stays at shift 0,
    # where the plane's fx 1 is the warped camera's
    assert pd.read_csv(out / "per_sample.csv")["fov_x_mae"].max() < 1e-4


def test_evaluate_reads_point_map_files_in_either_layout(tmp_path):
    _nyu_pack(tmp_path / "data")
    plane = plane_points(2.0, 1.0, (480, 640))
    results = []
    for layout in ("chw", "hwc"):
        folder = tmp_path / layout / "s"
        folder.mkdir(parents=True)
        for sid in ("1", "2"):
            np.save(folder / f"{sid}.npy", plane if layout == "chw" else plane.transpose(1, 2, 0))
        out = tmp_path / f"{layout}_eval"
        assert main(["evaluate", "--dataset", "moge/nyu", "--data-root", str(tmp_path / "data"), "--protocol", "moge",
                     "--output-space", "points_scale_invariant", "--predictions", str(tmp_path / layout),
                     "--out", str(out)]) == 0
        results.append(json.loads((out / "summary.json").read_text())["metrics"])
    assert results[0] == results[1]
    assert results[0]["rel_point_scale"] < 1e-5 and "rel_point_metric" not in results[0]


def test_a_sample_without_intrinsics_scores_depth_and_says_why_points_are_missing(tmp_path):
    _nyu_pack(tmp_path / "data", intrinsics=None)
    code, out = _run(tmp_path, "pointplane:2:1")
    assert code == 0
    frame = pd.read_csv(out / "per_sample.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert (frame["status"] == "ok").all() and frame["abs_rel"].notna().all()
    assert frame["rel_point_scale"].isna().all()
    assert frame["message"].str.contains("point metrics not scored: .* no intrinsics").all()
    assert math.isnan(summary["metrics"]["rel_point_scale"]) and summary["metrics"]["delta1"] == 0.5


def test_a_point_map_on_a_benchmark_without_intrinsics_scores_depth_only(tmp_path):
    # the procedural benchmark's items carry no intrinsics at all
    folder = tmp_path / "pred" / "test"
    folder.mkdir(parents=True)
    ds = load_dataset("synthetic", split="test:2")
    for i, sid in enumerate(ds.ids):
        depth = ds[i]["depth"]
        np.save(tmp_path / "pred" / f"{sid}.npy", np.stack([np.zeros_like(depth), np.zeros_like(depth), depth]))
    out = tmp_path / "eval"
    assert main(["evaluate", "--dataset", "synthetic", "--split", "test:2", "--protocol", "moge",
                 "--output-space", "points_scale_invariant", "--predictions", str(tmp_path / "pred"),
                 "--out", str(out)]) == 0
    frame = pd.read_csv(out / "per_sample.csv")
    assert frame["abs_rel"].max() < 1e-6  # z is the ground truth
    assert frame["rel_point_scale"].isna().all() and frame["message"].str.contains("no intrinsics").all()


def test_only_protocols_that_score_points_take_point_maps(tmp_path, capsys):
    bench = get_benchmark("moge/nyu")
    with pytest.raises(BenchError, match="protocol marigold scores no point maps .*--protocol moge"):
        resolve_scoring(bench, "marigold", "points_metric")
    _nyu_pack(tmp_path / "data")
    code = main(["--include", INCLUDE, "run", "--model", "pointplane:2:1", "--dataset", "moge/nyu", "--data-root",
                 str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert code == 2 and "scores no point maps" in capsys.readouterr().err


def test_local_point_columns_where_the_benchmark_has_segments(tmp_path):
    bench = pack_root(tmp_path / "data", "iBims-1", index=("a",))
    seg = np.zeros((H, W), np.uint8)
    seg[:, W // 2:] = 1
    write_sample(bench / "a", rgb(), np.full((H, W), 2.0, np.float32), CENTRED, segmentation=seg,
                 labels={"left": 0, "right": 1}, near=1.0, far=4.0)
    code, out = _run(tmp_path, "pointplane:1:1", "moge/ibims")
    assert code == 0
    frame = pd.read_csv(out / "per_sample.csv")
    keys = json.loads((out / "summary.json").read_text())["scoring"]["metric_keys"]
    assert {"rel_local", "delta1_local", "boundary_f1"} <= set(frame.columns) and "rel_local" in keys
    # each half of the plane is the ground truth up to scale: perfect locally
    assert frame["rel_local"][0] < 1e-5 and frame["delta1_local"][0] == 1.0


def test_focal_read_off_points_by_hand():
    k = np.array([[0.7, 0, 0.5], [0, 0.7 * 64 / 48, 0.5], [0, 0, 1]])
    depth = 1.0 + np.random.default_rng(0).random((48, 64))
    points = depth_to_points(depth, k)
    mask = np.ones((48, 64), bool)
    assert intrinsics_from_points(points, mask) == pytest.approx(k, abs=1e-9)
    assert intrinsics_from_points(points * 3.0, mask) == pytest.approx(k, abs=1e-9)  # scale does not matter


@pytest.mark.parametrize("shift", [0.0, 0.8, -1.2])
def test_focal_and_shift_of_affine_points_recovered(shift):
    # a known camera (fx 0.7, square pixels, 60x80) and a bumpy scene, moved along z by -shift and
    # scaled: affine points. Recovered to 1e-4 from a masked subsample (holes in the mask)
    rng = np.random.default_rng(1)
    h, w = 60, 80
    k = np.array([[0.7, 0, 0.5], [0, 0.7 * w / h, 0.5], [0, 0, 1]])
    depth = 2.0 + np.linspace(0, 3, w)[None, :] + rng.random((h, w))
    points = depth_to_points(depth, k)
    points[..., 2] -= shift
    mask = rng.random((h, w)) > 0.3
    found, t = focal_shift_from_points(2.5 * points, mask)
    assert found == pytest.approx(k, abs=1e-4)
    assert t / 2.5 == pytest.approx(shift, abs=1e-4)
    # held at shift 0, the shifted map reads a wrong focal: the shift matters
    if shift:
        assert abs(intrinsics_from_points(points, mask)[0, 0] - 0.7) > 1e-2


def test_point_columns_average_where_defined_and_plain_columns_do_not():
    records = [{"rel_local": 0.2, "abs_rel": 0.1}, {"rel_local": float("nan"), "abs_rel": 0.3}]
    means = mean_metrics(records, ("rel_local", "abs_rel"))
    assert means == {"rel_local": pytest.approx(0.2), "abs_rel": pytest.approx(0.2)}
    assert math.isnan(mean_metrics([{"rel_local": float("nan")}], ("rel_local",))["rel_local"])
