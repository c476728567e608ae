"""DA-2K: the annotations file as released, pair accuracy by hand, and its bad inputs."""

import json

import numpy as np
import pytest
from PIL import Image

from marigold_bench.data.da2k import SPEC, parse_annotations, scene_of
from marigold_bench.errors import BenchError, PredictionError, SampleError
from marigold_bench.eval.da2k import score_pairs, summarize
from marigold_bench.output_spaces import DEPTH_AFFINE, DEPTH_METRIC, DISPARITY_AFFINE


def write_release(root, annotations, size=(4, 6)):
    """A DA-2K folder: annotations.json and an RGB image per key (H, W = size)."""
    folder = root / "da2k"
    for image in annotations:
        (folder / image).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(folder / image)
    (folder / "annotations.json").write_text(json.dumps(annotations))
    return folder


ANNOTATIONS = {
    "images/indoor/a.png": [{"point1": [0, 0], "point2": [3, 5], "closer_point": "point1"},
                            {"point1": [1, 2], "point2": [2, 2], "closer_point": "point2"}],
    "images/outdoor/b.png": [{"point1": [2, 1], "point2": [0, 4], "closer_point": "point2"}],
}


def test_loads_the_released_layout(tmp_path):
    write_release(tmp_path, ANNOTATIONS)
    ds = SPEC.open(tmp_path)
    assert ds.ids == ["images/indoor/a", "images/outdoor/b"]
    item = ds[0]
    assert item["rgb"].shape == (4, 6, 3) and item["scene"] == "indoor"
    assert item["pairs"].tolist() == [[0, 0, 3, 5], [1, 2, 2, 2]]
    assert item["closer"].tolist() == [True, False]
    # the scored pixels are the annotated points (no depth map to fit)
    assert sorted(zip(*np.nonzero(item["valid"]))) == [(0, 0), (1, 2), (2, 2), (3, 5)]
    assert ds[1]["scene"] == "outdoor" and SPEC.task == "depth"


def test_pair_accuracy_depth_and_disparity_by_hand():
    pred = np.arange(24, dtype=float).reshape(4, 6)  # value = 6 * row + col
    pairs = np.array([[0, 0, 3, 5], [1, 2, 2, 2], [2, 1, 0, 4]])
    closer = np.array([True, False, False])
    # depth: smaller is closer. pair0: 0 < 23 -> point1 closer (right); pair1: 8 < 14 -> point1
    # (wrong, point2 annotated); pair2: 13 > 4 -> point2 closer (right) => 2 / 3
    rec = score_pairs("x", pred, pairs, closer, DEPTH_METRIC)
    assert rec == {"pair_acc": pytest.approx(2 / 3), "n_pairs": 3, "n_correct": 2}
    assert score_pairs("x", pred, pairs, closer, DEPTH_AFFINE)["n_correct"] == 2
    # disparity: larger is closer, every order flips => 1 / 3
    assert score_pairs("x", pred, pairs, closer, DISPARITY_AFFINE)["n_correct"] == 1


def test_tie_counts_wrong():
    pred = np.ones((2, 2))
    rec = score_pairs("x", pred, np.array([[0, 0, 1, 1]]), np.array([True]), DEPTH_METRIC)
    assert rec["n_correct"] == 0


def test_summary_is_over_pairs_overall_and_per_scene():
    records = [{"scene": "indoor", "n_pairs": 3, "n_correct": 3},
               {"scene": "indoor", "n_pairs": 1, "n_correct": 0},
               {"scene": "outdoor", "n_pairs": 4, "n_correct": 1}]
    out = summarize(records)
    # pairs: 4 of 8 right (the mean of per-image accuracies would be (1 + 0 + 0.25) / 3)
    assert out["pair_acc"] == pytest.approx(0.5) and out["n_pairs"] == 8
    assert out["by_scene"] == {"indoor": pytest.approx(0.75), "outdoor": pytest.approx(0.25)}


def test_scene_is_the_parent_folder():
    assert scene_of("images/non_real/x.jpg") == "non_real" and scene_of("x.jpg") == "all"


# --- bad input ---------------------------------------------------------------------------------

def test_point_outside_the_image_names_image_and_pair(tmp_path):
    bad = {"images/indoor/a.png": [{"point1": [0, 0], "point2": [1, 1], "closer_point": "point1"},
                                   {"point1": [0, 0], "point2": [4, 1], "closer_point": "point1"}]}
    write_release(tmp_path, bad)
    ds = SPEC.open(tmp_path)
    with pytest.raises(SampleError, match=r"images/indoor/a.png pair 1: point2 \[row 4, col 1\] is outside the 6x4 image"):
        ds[0]


def test_point_outside_the_prediction_is_refused():
    with pytest.raises(SampleError, match=r"pair 0: point1 \[row 0, col 7\] is outside the 6x4 prediction"):
        score_pairs("img", np.ones((4, 6)), np.array([[0, 7, 1, 1]]), np.array([True]), DEPTH_METRIC)


def test_negative_point_is_outside():
    with pytest.raises(SampleError, match="outside"):
        score_pairs("img", np.ones((4, 6)), np.array([[0, 0, -1, 1]]), np.array([True]), DEPTH_METRIC)


@pytest.mark.parametrize("pair, message", [
    ({"point1": [0], "point2": [1, 1], "closer_point": "point1"}, "point1 must be"),
    ({"point1": [0, 0.5], "point2": [1, 1], "closer_point": "point1"}, "whole pixels"),
    ({"point1": [0, 0], "point2": [1, 1], "closer_point": "point3"}, "closer_point must be"),
])
def test_malformed_pairs(pair, message):
    with pytest.raises(SampleError, match=message):
        parse_annotations({"i.jpg": [pair]})


def test_not_json_and_missing_file(tmp_path):
    folder = write_release(tmp_path, ANNOTATIONS)
    (folder / "annotations.json").write_text("{oops")
    with pytest.raises(SampleError, match="not JSON"):
        SPEC.open(tmp_path)
    with pytest.raises(BenchError, match="annotations.json is in none of"):
        SPEC.open(tmp_path / "elsewhere")


def test_nan_at_a_point():
    pred = np.ones((2, 2)); pred[0, 0] = np.nan
    with pytest.raises(PredictionError, match="NaN or inf"):
        score_pairs("x", pred, np.array([[0, 0, 1, 1]]), np.array([True]), DEPTH_METRIC)


# --- registered: run, pooled summary, table ------------------------------------------------------

EVEN = {  # two pairs per image, so the mean of per-image accuracies equals the accuracy over pairs
    "images/indoor/a.png": [{"point1": [0, 0], "point2": [3, 5], "closer_point": "point1"},
                            {"point1": [1, 2], "point2": [2, 2], "closer_point": "point2"}],
    "images/outdoor/b.png": [{"point1": [2, 1], "point2": [0, 4], "closer_point": "point2"},
                             {"point1": [3, 0], "point2": [0, 0], "closer_point": "point1"}],
}


def test_da2k_runs_for_depth_and_disparity_models_and_shows_in_tables(tmp_path, capsys):
    import pandas as pd

    from marigold_bench.cli import main
    from marigold_bench.data.registry import benchmark_names

    assert "da2k" in benchmark_names()
    write_release(tmp_path, EVEN)
    runs = []
    for space in ("depth_affine_invariant", "disparity_affine_invariant"):
        out = tmp_path / space
        assert main(["run", "--model", "baseline:ramp", "--dataset", "da2k", "--data-root", str(tmp_path),
                     "--protocol", "da2k", "--output-space", space, "--out", str(out)]) == 0
        runs.append(out)
    depth = pd.read_csv(runs[0] / "per_sample.csv")
    disparity = pd.read_csv(runs[1] / "per_sample.csv")
    # an order is either right or wrong in one space and the opposite in the other, ties aside
    assert ((depth["pair_acc"] + disparity["pair_acc"]) == 1.0).all()
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    assert summaries[0]["metrics"]["pair_acc"] == pytest.approx(depth["pair_acc"].mean())
    assert summaries[0]["metrics"]["pair_acc"] + summaries[1]["metrics"]["pair_acc"] == pytest.approx(1.0)
    assert "abs_rel" not in summaries[0]["metrics"]  # no dense-depth column on pairs
    # pooled per scene type: here one image (two pairs) per scene
    assert summaries[0]["metrics"]["pair_acc_indoor"] == pytest.approx(depth["pair_acc"][0])
    assert summaries[1]["metrics"]["pair_acc_outdoor"] == pytest.approx(disparity["pair_acc"][1])
    capsys.readouterr()
    assert main(["table", *map(str, runs), "--metrics", "pair_acc"]) == 0
    text = capsys.readouterr().out
    assert "DA-2K PairAcc↑" in text and "da2k: none" in text


def test_pooled_accuracy_is_over_pairs_overall_and_per_scene():
    from marigold_bench.eval.protocols.da2k import pooled

    pools = [np.array(["indoor", 1, 1], dtype=object), np.array(["indoor", 0, 3], dtype=object),
             np.array(["outdoor", 2, 2], dtype=object)]
    # 3 of 6 pairs right; indoor 1 of 4 (a per-image mean would say 0.5); outdoor 2 of 2
    assert pooled(pools) == {"pair_acc": 0.5, "pair_acc_indoor": 0.25, "pair_acc_outdoor": 1.0}


def test_da2k_takes_only_its_protocol_and_its_protocol_only_pairs(tmp_path, capsys):
    from marigold_bench.cli import main
    from marigold_bench.data.registry import get_benchmark
    from marigold_bench.eval.protocols import resolve_scoring

    write_release(tmp_path, EVEN)
    assert main(["run", "--model", "baseline:ramp", "--dataset", "da2k", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "run")]) == 2
    assert "da2k is scored only by --protocol da2k" in capsys.readouterr().err
    with pytest.raises(BenchError, match="protocol da2k scores pair-order benchmarks"):
        resolve_scoring(get_benchmark("nyu"), "da2k", DEPTH_AFFINE)


def test_the_annotations_bytes_are_what_the_protocol_hash_pins(tmp_path):
    import hashlib

    folder = write_release(tmp_path, ANNOTATIONS)
    described = SPEC.open(tmp_path).describe()
    assert described["split_sha256"] == hashlib.sha256((folder / "annotations.json").read_bytes()).hexdigest()
