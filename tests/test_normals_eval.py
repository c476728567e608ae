"""Evaluating surface normals: the task dimension, the two protocols, frames and bad input.

Expected numbers are re-derived here in float64 with numpy's arccos of the normalised dot product
(written out below, not the suite's `angular_errors`), then summarised as each protocol's source
says: per image rounded to 4 decimals and averaged (official Marigold), or pooled (DSINE).
"""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marigold_bench.cli import main
from marigold_bench.errors import BenchError

H, W = 12, 16
STEMS = ("000000", "000001", "000008")


def _fixture(tmp_path, gt_scale=None):
    """Format-true NYU normals: ``<base>/nyuv2/test/<id>_img.png`` + ``<id>_normal.npy`` (H x W x 3,
    OpenGL, zero vectors where there is no ground truth, not unit length), a split file of the
    official format, and predictions in the official layout ``<pred>/<rgb stem>.npy`` (3 x H x W)."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "base" / "nyuv2" / "test"
    preds = tmp_path / "pred"
    folder.mkdir(parents=True)
    preds.mkdir()
    lines, gts, ps = [], [], []
    for k, stem in enumerate(STEMS):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(folder / f"{stem}_img.png")
        gt = rng.normal(size=(H, W, 3)).astype(np.float32)
        gt[..., 2] = np.abs(gt[..., 2])
        gt /= np.linalg.norm(gt, axis=-1, keepdims=True)
        gt *= (gt_scale if gt_scale is not None else rng.uniform(0.5, 1.5, (H, W, 1))).astype(np.float32)
        gt[: 2 + 2 * k] = 0  # rows without ground truth: a different count per image
        np.save(folder / f"{stem}_normal.npy", gt)
        pred = np.moveaxis(gt, -1, 0) + rng.normal(scale=0.4, size=(3, H, W)).astype(np.float32)
        np.save(preds / f"{stem}_img.npy", pred.astype(np.float32))
        lines.append(f"{stem}_img.png {stem}_normal.npy")
        gts.append(gt)
        ps.append(pred.astype(np.float32))
    split = tmp_path / "nyuv2_test.txt"
    split.write_text("\n".join(lines) + "\n")
    return tmp_path / "base", split, preds, gts, ps


def _errors64(pred_chw, gt_hwc):
    """Angles (degrees, float64) over the pixels whose ground truth is non-zero: an independent
    re-derivation (float64 throughout)."""
    g = gt_hwc.astype(np.float64).reshape(-1, 3)
    p = np.moveaxis(pred_chw, 0, -1).astype(np.float64).reshape(-1, 3)
    keep = np.linalg.norm(g, axis=1) > 0
    g, p = g[keep], p[keep]
    cos = (p * g).sum(1) / (np.maximum(np.linalg.norm(p, axis=1), 1e-8) * np.linalg.norm(g, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _evaluate(tmp_path, base, split, preds, out, *extra):
    code = main(["evaluate", "--dataset", "nyu", "--task", "normals", "--data-root", str(base), "--split",
                 str(split), "--predictions", str(preds), "--out", str(tmp_path / out), *extra])
    rows = pd.read_csv(tmp_path / out / "per_sample.csv", dtype={"id": str}) if code == 0 else None
    summary = json.loads((tmp_path / out / "summary.json").read_text()) if code == 0 else None
    return code, rows, summary


def test_marigold_protocol_per_image_rounded_then_averaged(tmp_path):
    base, split, preds, gts, ps = _fixture(tmp_path)
    code, rows, summary = _evaluate(tmp_path, base, split, preds, "ours")
    assert code == 0
    assert list(rows["id"]) == [f"{s}_img" for s in STEMS] and (rows["status"] == "ok").all()
    assert (summary["task"], summary["frame"], summary["benchmark_frame"]) == ("normals", "opengl", "opengl")
    assert summary["frame_converted"] is False and summary["scoring"]["protocol"] == "marigold"
    assert summary["protocol_identity"]["protocol_id"] == "normals/marigold/1"
    per_image = []
    for row, pred, gt in zip(rows.itertuples(), ps, gts):
        e = _errors64(pred, gt)
        assert row.n_valid == e.size
        # float32 in the suite vs float64 here: at most one step of the 4th decimal apart
        assert abs(row.mean_angle - round(e.mean(), 4)) <= 1.1e-4
        assert abs(row.median_angle - round(float(np.median(e)), 4)) <= 1.1e-4
        for t, col in ((5, "pct_5"), (11.25, "pct_11_25"), (30, "pct_30")):
            assert abs(getattr(row, col) - 100 * (e < t).mean()) <= 100 / e.size + 1e-4
        assert getattr(row, "mean_angle") == round(row.mean_angle, 4)  # rounded per image
        per_image.append(round(e.mean(), 4))
    assert summary["metrics"]["mean_angle"] == pytest.approx(np.mean(per_image), abs=1.1e-4)
    assert summary["metrics"]["mean_angle"] == pytest.approx(rows["mean_angle"].mean(), abs=1e-12)


def test_dsine_protocol_pools_every_pixel_and_adds_rmse(tmp_path):
    base, split, preds, gts, ps = _fixture(tmp_path)
    code, rows, summary = _evaluate(tmp_path, base, split, preds, "dsine", "--protocol", "dsine")
    assert code == 0 and summary["scoring"]["protocol"] == "dsine"
    pool = np.concatenate([_errors64(p, g) for p, g in zip(ps, gts)])
    m = summary["metrics"]
    assert m["mean_angle"] == pytest.approx(pool.mean(), abs=1e-4)
    assert m["rmse_angle"] == pytest.approx(np.sqrt((pool ** 2).mean()), abs=1e-4)
    assert m["median_angle"] == pytest.approx(np.median(pool), abs=1e-3)
    assert m["pct_11_25"] == pytest.approx(100 * (pool < 11.25).mean(), abs=100 / pool.size + 1e-6)
    # images have different valid counts: the pool is not the mean of the per-image means
    assert abs(m["mean_angle"] - rows["mean_angle"].mean()) > 1e-3
    assert "_pool" not in rows.columns and "rmse_angle" in rows.columns
    # per-sample rows are each image alone, unrounded
    e0 = _errors64(ps[0], gts[0])
    assert rows["rmse_angle"][0] == pytest.approx(np.sqrt((e0 ** 2).mean()), abs=1e-4)


def test_ground_truth_that_is_not_unit_length_scores_as_its_unit_vector(tmp_path):
    base, split, preds, gts, _ = _fixture(tmp_path)  # non-unit: norms drawn in [0.5, 1.5]
    _, as_given, _ = _evaluate(tmp_path, base, split, preds, "given")
    folder = base / "nyuv2" / "test"
    for stem, gt in zip(STEMS, gts):  # the same directions at unit length
        norm = np.linalg.norm(gt, axis=-1, keepdims=True)
        np.save(folder / f"{stem}_normal.npy", np.where(norm > 0, gt / np.maximum(norm, 1e-12), 0).astype(np.float32))
    _, unit, _ = _evaluate(tmp_path, base, split, preds, "unit")
    cols = ["mean_angle", "median_angle", "pct_5", "pct_7_5", "pct_11_25", "pct_22_5", "pct_30"]
    assert np.abs(as_given[cols].to_numpy() - unit[cols].to_numpy()).max() <= 1e-4
    assert list(as_given["n_valid"]) == list(unit["n_valid"])


def test_zero_vector_predictions_are_counted_not_nan(tmp_path):
    base, split, preds, gts, ps = _fixture(tmp_path)
    zero = ps[1].copy()
    zero[:, -3:, :5] = 0
    np.save(preds / "000001_img.npy", zero)
    np.save(preds / "000008_img.npy", np.zeros((3, H, W), np.float32))
    code, rows, summary = _evaluate(tmp_path, base, split, preds, "zero")
    assert code == 0 and (rows["status"] == "ok").all()
    assert list(rows["n_zero"]) == [0, 15, int((np.linalg.norm(gts[2], axis=-1) > 0).sum())]
    assert rows["mean_angle"][2] == pytest.approx(90.0, abs=1e-3) and rows["pct_30"][2] == 0
    assert summary["n_with_zero"] == 2 and np.isfinite(summary["metrics"]["mean_angle"])


def test_predictions_in_the_other_frame_declared_with_frame_score_the_same(tmp_path):
    base, split, preds, gts, ps = _fixture(tmp_path)
    opencv = tmp_path / "opencv"
    opencv.mkdir()
    for stem, p in zip(STEMS, ps):  # OpenCV: y down, z forward (y and z negated), stored H x W x 3
        np.save(opencv / f"{stem}_img.npy", np.moveaxis(p * np.float32([1, -1, -1])[:, None, None], 0, -1))
    _, same, _ = _evaluate(tmp_path, base, split, preds, "gl")
    code, converted, summary = _evaluate(tmp_path, base, split, opencv, "cv", "--frame", "opencv")
    assert code == 0
    cols = ["mean_angle", "median_angle", "pct_5", "pct_7_5", "pct_11_25", "pct_22_5", "pct_30"]
    assert np.array_equal(same[cols].to_numpy(), converted[cols].to_numpy())
    assert (summary["frame"], summary["benchmark_frame"], summary["frame_converted"]) == ("opencv", "opengl", True)
    # undeclared, the same files are read as OpenGL and score worse: the frame is never guessed
    _, wrong, undeclared = _evaluate(tmp_path, base, split, opencv, "cv-undeclared")
    assert undeclared["frame"] == "opengl" and (wrong["mean_angle"] > same["mean_angle"] + 30).all()


def test_wrong_shape_npy_is_a_failed_sample_with_a_clear_message(tmp_path):
    base, split, preds, _, _ = _fixture(tmp_path)
    np.save(preds / "000001_img.npy", np.zeros((4, H, W), np.float32))
    np.save(preds / "000008_img.npy", np.zeros((H, W), np.float32))
    code, rows, summary = _evaluate(tmp_path, base, split, preds, "shape")
    assert code == 0 and list(rows["status"]) == ["ok", "failed", "failed"]
    assert "(4, 12, 16)" in rows["message"][1] and "expected 3xHxW" in rows["message"][1]
    assert "(12, 16)" in rows["message"][2]
    assert summary["n"] == 1 and summary["n_failed"] == 2


def test_a_tar_missing_a_ground_truth_file(tmp_path, capsys):
    base, split, preds, _, _ = _fixture(tmp_path)
    folder = base / "nyuv2" / "test"
    tar_path = tmp_path / "nyu.tar"
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(folder.iterdir()):
            if path.name != "000001_normal.npy":
                tar.add(path, arcname="./" + path.name)
    code = main(["evaluate", "--dataset", "nyu", "--task", "normals", "--data-root", str(tar_path), "--split",
                 str(split), "--predictions", str(preds), "--out", str(tmp_path / "stop")])
    assert code == 2 and "000001" in capsys.readouterr().err
    code, rows, summary = _evaluate(tmp_path, tar_path, split, preds, "skip", "--skip-missing")
    assert code == 0 and list(rows["status"]) == ["ok", "skipped", "ok"] and summary["n_skipped"] == 1


@pytest.mark.parametrize("argv, says", [
    (["--dataset", "kitti", "--task", "normals"], "kitti has no normals ground truth"),
    (["--dataset", "oasis"], "oasis has no depth ground truth"),
    (["--dataset", "nyu", "--task", "normals", "--protocol", "moge"], "moge scores depth"),
    (["--dataset", "nyu", "--protocol", "dsine"], "unknown protocol 'dsine'"),
    (["--dataset", "nyu", "--frame", "opencv"], "--frame"),
])
def test_task_mismatches_exit_2(tmp_path, capsys, argv, says):
    preds = tmp_path / "p"
    preds.mkdir()
    assert main(["evaluate", *argv, "--data-root", str(tmp_path), "--predictions", str(preds),
                 "--out", str(tmp_path / "o")]) == 2
    assert says in capsys.readouterr().err


def test_run_picks_the_ground_truth_by_the_model_task(tmp_path):
    out = tmp_path / "facing"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:facing", "--max-samples", "3",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["dataset"], summary["task"], summary["frame"]) == ("synthetic-normals", "normals", "opengl")
    rows = pd.read_csv(out / "per_sample.csv")
    assert {"mean_angle", "n_zero"} <= set(rows.columns) and "scale" not in rows.columns
    # a depth model cannot be scored against normals
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--task", "normals",
                 "--max-samples", "1", "--out", str(tmp_path / "x")]) == 2


def test_facing_baseline_scores_the_angle_to_the_camera_axis(tmp_path):
    from marigold_bench.data.registry import load_dataset
    from marigold_bench.eval.loop import score_sample
    from marigold_bench.eval.protocols import resolve_scoring
    from marigold_bench.inference.baseline import FAMILY

    predictor = FAMILY.build("baseline:facing", {})
    item = load_dataset("synthetic", task="normals")[0]
    members = predictor.predict([(item["id"], item["rgb"], [0])])[0]
    pred, _ = predictor.merge(members, item["valid"].shape)
    g = item["normals"][item["valid"]].astype(np.float64)
    want = np.degrees(np.arccos(np.clip(g[:, 2] / np.linalg.norm(g, axis=1), -1, 1)))
    record = score_sample(item, pred, resolve_scoring(load_dataset("synthetic", task="normals").protocol, "dsine"))
    assert record["mean_angle"] == pytest.approx(want.mean(), abs=1e-3)


def test_bundled_normals_checkpoint_is_the_default_for_normals():
    import argparse

    from marigold_bench.commands.common import default_normals_model
    from marigold_bench.commands.run import model_task

    folder = default_normals_model()
    assert folder.endswith("tiny-normals")
    assert model_task(argparse.Namespace(task=None, model=folder)) == "normals"
    assert model_task(argparse.Namespace(task=None, model="baseline:ramp")) == "depth"


def test_protocol_registry_by_name_and_task(capsys):
    from marigold_bench.eval.protocols import get_evaluation_protocol

    assert get_evaluation_protocol("marigold").task == "depth"
    normals = get_evaluation_protocol("marigold", "normals")
    assert (normals.task, normals.target, normals.pooled) == ("normals", "normals", None)
    assert get_evaluation_protocol("dsine", "normals").pooled is not None
    with pytest.raises(BenchError, match="dsine scores normals"):
        get_evaluation_protocol("dsine")
    assert main(["protocols"]) == 0
    listing = capsys.readouterr().out
    assert "marigold (normals)" in listing and "dsine (normals)" in listing and "not renormalised" in listing
    assert main(["protocols", "--card", "dsine"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["protocol_id"] == "normals/dsine/1" and "nyu-normals" in card["protocol_hash_by_benchmark"]


def test_the_card_hash_is_the_hash_a_run_records(tmp_path, capsys):
    from marigold_bench.eval.identity import protocol_card

    out = tmp_path / "r"
    assert main(["run", "--dataset", "synthetic", "--task", "normals", "--model", "baseline:facing",
                 "--out", str(out), "--max-samples", "2"]) == 0
    recorded = json.loads((out / "summary.json").read_text())["protocol_identity"]["protocol_hash"]
    assert protocol_card("marigold", "normals")["protocol_hash_by_benchmark"]["synthetic-normals"] == recorded
    assert protocol_card("marigold")["protocol_id"] == "marigold/1"  # the depth card as before


def test_rescore_between_the_two_protocols_and_the_sensitivity_table(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:facing", "--out", str(run),
                 "--max-samples", "4", "--protocol", "dsine"]) == 0
    assert main(["rescore", str(run), "--protocol", "marigold", "--out", str(tmp_path / "m")]) == 0
    direct = tmp_path / "direct"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:facing", "--out", str(direct),
                 "--max-samples", "4"]) == 0
    a = pd.read_csv(tmp_path / "m" / "per_sample.csv")
    b = pd.read_csv(direct / "per_sample.csv")
    assert a.drop(columns="message").equals(b.drop(columns="message"))
    capsys.readouterr()
    assert main(["rescore", str(run), "--protocol", "marigold,dsine", "--resamples", "50",
                 "--out", str(tmp_path / "sens")]) == 0
    table = pd.read_csv(tmp_path / "sens" / "sensitivity.csv")
    assert list(table["protocol"]) == ["marigold", "dsine"] and "mean_angle" in table.columns
    pooled = json.loads((run / "summary.json").read_text())["metrics"]["mean_angle"]
    assert table["mean_angle"][1] == pytest.approx(pooled) and np.isnan(table["mean_angle_low"][1])


def test_tables_keep_depth_and_normals_apart(tmp_path, capsys):
    from marigold_bench.report.rundir import load_run
    from marigold_bench.report.tables import build_table, build_tables

    depth, normals = tmp_path / "d", tmp_path / "n"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--out", str(depth),
                 "--max-samples", "2"]) == 0
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:facing", "--out", str(normals),
                 "--max-samples", "2"]) == 0
    runs = [load_run(depth), load_run(normals)]
    with pytest.raises(BenchError, match="different tasks"):
        build_table(runs, ["abs_rel"])
    tables = build_tables(runs, ["abs_rel", "delta1"])
    assert [t.metrics for t in tables] == [["abs_rel", "delta1"],
                                           ["mean_angle", "median_angle", "pct_11_25", "pct_30"]]
    assert [t.datasets for t in tables] == [["synthetic"], ["synthetic-normals"]]
    capsys.readouterr()
    for fmt in ("md", "latex", "csv"):
        assert main(["table", str(depth), str(normals), "--format", fmt]) == 0
        text = capsys.readouterr().out
        assert ("abs_rel" if fmt == "csv" else "AbsRel") in text and "median" in text
    mean = json.loads((normals / "summary.json").read_text())["metrics"]["mean_angle"]
    assert f"{mean:.3f}" in text  # degrees as scored, not ×100
