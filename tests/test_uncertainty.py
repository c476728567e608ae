"""Sparsification, AUSE and AURG (marigold_bench.eval.uncertainty) against values worked by hand.

(The same definitions were compared with mono-uncertainty's ``compute_aucs`` on 40 random
images, ties included: equal to the last bit; see CHANGELOG.)
"""

from __future__ import annotations

import numpy as np
import pytest

from marigold_bench.eval.uncertainty import scores_of, sparsification

GT = np.ones(4)
PRED = np.array([1.0, 1.1, 1.5, 2.0])  # AbsRel terms 0, .1, .5, 1; ratios 1, 1.1, 1.5, 2


def test_a_perfect_ranking_matches_the_oracle():
    # intervals=2: keep all (mean .4), keep the two least uncertain (mean .05), then nothing (0)
    result = sparsification(PRED, GT, np.array([0.0, 1.0, 2.0, 3.0]), intervals=2)
    abs_rel = result["abs_rel"]
    np.testing.assert_allclose(abs_rel["curve"], [0.4, 0.05, 0.0])
    np.testing.assert_allclose(abs_rel["oracle"], [0.4, 0.05, 0.0])
    # area: (.4 + .05) / 2 * .5 + (.05 + 0) / 2 * .5 = .125
    assert abs_rel["ause"] == pytest.approx(0.0)
    assert abs_rel["aurg"] == pytest.approx(0.4 - 0.125)
    # δ1 outliers: ratios >= 1.25 are the last two pixels: .5 of all, none of the first two
    outliers = result["delta1_outliers"]
    np.testing.assert_allclose(outliers["curve"], [0.5, 0.0, 0.0])
    assert outliers["aurg"] == pytest.approx(0.5 - 0.125)


def test_a_reversed_ranking_is_worse_than_chance():
    result = sparsification(PRED, GT, np.array([3.0, 2.0, 1.0, 0.0]), intervals=2)["abs_rel"]
    # the two kept pixels are the worst: mean .75; area (.4 + .75)/4 + .75/4 = .475
    np.testing.assert_allclose(result["curve"], [0.4, 0.75, 0.0])
    assert result["ause"] == pytest.approx(0.475 - 0.125)
    assert result["aurg"] == pytest.approx(0.4 - 0.475)
    assert result["aurg"] < 0


def test_rmse_is_the_root_of_the_kept_pixels_mean_square():
    result = sparsification(PRED, GT, np.array([0.0, 1.0, 2.0, 3.0]), intervals=2)["rmse"]
    np.testing.assert_allclose(result["curve"], [np.sqrt((0 + .01 + .25 + 1) / 4), np.sqrt(.01 / 2), 0.0])


def test_mask_scale_of_the_uncertainty_and_columns():
    valid = np.array([True, True, True, True, False])
    pred, gt = np.append(PRED, 50.0), np.append(GT, 1.0)
    a = sparsification(pred, gt, np.array([0.0, 1.0, 2.0, 3.0, -9.0]), valid, intervals=2)
    b = sparsification(PRED, GT, 1000.0 * np.array([0.0, 1.0, 2.0, 3.0]), intervals=2)
    assert scores_of(a) == pytest.approx(scores_of(b))  # only the ranking matters
    assert sorted(scores_of(a)) == sorted(f"{k}_{m}" for k in ("ause", "aurg")
                                          for m in ("abs_rel", "rmse", "delta1_outliers"))


@pytest.mark.parametrize("pred, unc, message", [
    (np.array([1.0, np.nan, 1, 1]), np.zeros(4), "NaN or inf"),
    (np.array([1.0, -1, 1, 1]), np.zeros(4), "positive"),
    (PRED, np.zeros(3), "differ in shape"),
])
def test_bad_input_is_a_clear_error(pred, unc, message):
    with pytest.raises(ValueError, match=message):
        sparsification(pred, GT, unc)


def test_no_valid_pixel_is_a_clear_error():
    with pytest.raises(ValueError, match="no valid pixel"):
        sparsification(PRED, GT, np.zeros(4), valid=np.zeros(4, bool))


def test_run_and_rescore_score_the_ensemble_spread_and_refuse_one_member(tmp_path, capsys):
    import json

    import pandas as pd

    from marigold_bench.cli import main

    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--max-samples", "2", "--steps", "1", "--ensemble", "3",
                 "--uncertainty", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    part = summary["uncertainty"]
    assert part["ranking"] == "median absolute deviation of the aligned members" and part["n"] == 2
    rows = pd.read_csv(run / "uncertainty.csv")
    assert list(rows["id"]) == list(pd.read_csv(run / "per_sample.csv")["id"])
    # the curve's first point is AbsRel on every scored pixel: the scorer's own per-sample value
    per_sample = pd.read_csv(run / "per_sample.csv")
    np.testing.assert_allclose(part["curves"]["abs_rel"]["curve"][0], per_sample["abs_rel"].mean(), rtol=1e-6)  # the csv keeps 8 digits
    # AURG = that value minus the curve's area; the means are the per-sample means
    assert part["metrics"]["aurg_abs_rel"] == pytest.approx(rows["aurg_abs_rel"].mean())
    assert summary["metrics"]["ause_abs_rel"] == part["metrics"]["ause_abs_rel"] >= 0
    assert (run / "sparsification.png").is_file()
    assert main(["table", str(run), "--metrics", "abs_rel,ause_abs_rel"]) == 0
    assert "AUSE AbsRel↓" in capsys.readouterr().out
    # rescore under MoGe's protocol scores the spread against MoGe's alignment, no model
    assert main(["rescore", str(run), "--protocol", "moge", "--uncertainty", "--out", str(tmp_path / "moge")]) == 0
    moge = json.loads((tmp_path / "moge" / "summary.json").read_text())
    assert moge["uncertainty"]["scoring"]["protocol"] == "moge"
    # one member: refused before anything runs, and on a finished N=1 run
    capsys.readouterr()
    assert main(["run", "--dataset", "synthetic", "--max-samples", "1", "--uncertainty",
                 "--out", str(tmp_path / "n1")]) == 2
    assert "needs an ensemble" in capsys.readouterr().err and not (tmp_path / "n1" / "summary.json").exists()
    assert main(["run", "--dataset", "synthetic", "--max-samples", "1", "--steps", "1",
                 "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main(["rescore", str(tmp_path / "one"), "--uncertainty", "--out", str(tmp_path / "r1")]) == 2
    assert "N = 1" in capsys.readouterr().err


@pytest.mark.parametrize("model, task, message", [
    (None, "normals", "scores depth ensembles"),
    ("baseline:ramp", "depth", "does not merge its members with Marigold's ensembling"),
])
def test_uncertainty_of_a_model_without_a_depth_ensemble_is_refused_before_inference(
        tmp_path, capsys, model, task, message):
    from marigold_bench.cli import main

    argv = ["run", "--dataset", "synthetic", "--task", task, "--ensemble", "2", "--max-samples", "1",
            "--uncertainty", "--out", str(tmp_path / "r")] + (["--model", model] if model else [])
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()   # nothing ran, nothing written


UNCERTAINTY_OUTPUTS = ("uncertainty.csv", "sparsification.png", "sparsification.pdf")


def test_scoring_again_without_uncertainty_leaves_no_stale_uncertainty_files(tmp_path):
    """A rerun of `run` with other scoring flags rescores the cached members and replaces the
    results: files of an earlier --uncertainty scoring would no longer match summary.json."""
    import json

    import pandas as pd

    from marigold_bench.cli import main

    run = tmp_path / "run"
    base = ["run", "--dataset", "synthetic", "--max-samples", "2", "--steps", "1", "--ensemble", "2",
            "--out", str(run)]
    assert main([*base, "--uncertainty"]) == 0
    assert all((run / name).is_file() for name in UNCERTAINTY_OUTPUTS)
    assert main([*base, "--alignment", "scale"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["alignment"] == "scale" and summary["timing"]["predict_s"] == 0.0  # the cache, rescored
    assert "uncertainty" not in summary and not any(k.startswith(("ause", "aurg")) for k in summary["metrics"])
    assert not any((run / name).exists() for name in UNCERTAINTY_OUTPUTS)
    # with --uncertainty again they are rewritten, now for the scale fit
    assert main([*base, "--alignment", "scale", "--uncertainty"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["uncertainty"]["scoring"]["alignment"] == "scale"
    rows = pd.read_csv(run / "uncertainty.csv")
    assert summary["uncertainty"]["metrics"]["ause_abs_rel"] == pytest.approx(rows["ause_abs_rel"].mean())
    assert all((run / name).is_file() for name in UNCERTAINTY_OUTPUTS)
    # the same for a rescore folder scored again without --uncertainty
    rescored = tmp_path / "rescored"
    assert main(["rescore", str(run), "--uncertainty", "--out", str(rescored)]) == 0
    assert (rescored / "uncertainty.csv").is_file()
    assert main(["rescore", str(run), "--protocol", "moge", "--out", str(rescored)]) == 0
    assert "uncertainty" not in json.loads((rescored / "summary.json").read_text())
    assert not any((rescored / name).exists() for name in UNCERTAINTY_OUTPUTS)
