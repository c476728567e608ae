"""Every predictor family follows the one Predictor interface (inference/interface.py)."""

import json
import warnings

import numpy as np
import pytest

from marigold_bench.inference.baseline import BaselinePredictor
from marigold_bench.inference.interface import Predictor, check_predictor, output_space_of

pytestmark = pytest.mark.usefixtures("one_thread")


def test_baseline_declares_its_space_and_merges_at_member_size():
    predictor = BaselinePredictor("ramp", ensemble=2)
    check_predictor(predictor)
    assert isinstance(predictor, Predictor)
    assert predictor.settings["family"] == "baseline"
    assert output_space_of(predictor) == "depth_affine_invariant"
    (members,) = predictor.predict([("a", np.zeros((6, 4, 3), np.uint8), [0, 1])])
    merged, _ = predictor.merge(members, None)
    assert merged.shape == (6, 4)
    # a ramp: 1 at the top row's centre, falling by 1/6 per row
    np.testing.assert_allclose(merged[:, 0], 1 - (np.arange(6) + 0.5) / 6, rtol=0, atol=1e-7)
    bigger, _ = predictor.merge(members, (12, 4))
    assert bigger.shape == (12, 4)


def test_marigold_declares_its_space_and_merge_none_keeps_member_size(tiny_checkpoint):
    from marigold_bench.inference import load_predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = load_predictor(str(tiny_checkpoint), device="cpu", processing_res=32, steps=1)
    check_predictor(predictor)
    assert predictor.settings["family"] == "marigold"
    assert predictor.output_space == "depth_affine_invariant"   # the tiny checkpoint predicts depth
    json.dumps(predictor.settings)
    rgb = np.random.default_rng(1).integers(0, 256, (24, 48, 3), dtype=np.uint8)
    (members,) = predictor.predict([("x", rgb, [0])])
    assert members.shape == (1, 16, 32)                           # long side 32
    kept, _ = predictor.merge(members, None)
    np.testing.assert_array_equal(kept, members[0])               # N = 1: the member, not resized
    full, _ = predictor.merge(members, (24, 48))
    assert full.shape == (24, 48)


def test_disparity_checkpoint_declares_disparity(tiny_checkpoint):
    from diffusers import MarigoldDepthPipeline

    from marigold_bench.inference.predictor import MarigoldPredictor

    pipe = MarigoldDepthPipeline.from_pretrained(tiny_checkpoint)
    pipe.register_to_config(prediction_type="disparity")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = MarigoldPredictor.from_pipeline(pipe, device="cpu", steps=1, processing_res=32)
    assert predictor.output_space == predictor.settings["output_space"] == "disparity_affine_invariant"


def test_declared_output_space_is_not_part_of_the_cache_identity(tmp_path):
    """A run directory of 0.2 (no family/output_space recorded) resumes, and reading the same
    members under another output space predicts nothing again."""
    import h5py

    from marigold_bench.data import load_dataset
    from marigold_bench.eval.evaluator import run_predictor

    class Counting(BaselinePredictor):
        calls = 0

        def predict(self, jobs):
            Counting.calls += len(jobs)
            return super().predict(jobs)

    dataset = load_dataset("synthetic", split="test:3")
    out = tmp_path / "run"
    run_predictor(dataset, Counting(), str(out), progress=False)
    assert Counting.calls == 3
    with h5py.File(out / "predictions.h5", "r") as f:   # the identity is what 0.2 wrote: without them
        stored = json.loads(f.attrs["settings"])
    assert "family" not in stored and "output_space" not in stored and stored["model"] == "baseline:ramp"
    again = Counting()
    again.output_space = "depth_scale_invariant"
    again.settings = {**again.settings, "output_space": "depth_scale_invariant"}
    run_predictor(dataset, again, str(out), progress=False)
    assert Counting.calls == 3


def test_run_fits_a_disparity_checkpoint_in_disparity_space(tiny_checkpoint, tmp_path):
    """A checkpoint whose model_index says prediction_type=disparity is scored as inverse depth
    by `run` without any flag (it was silently fitted in depth before 0.3)."""
    import shutil

    import pandas as pd

    from marigold_bench.cli import main

    folder = tmp_path / "disparity-ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["prediction_type"] = "disparity"
    (folder / "model_index.json").write_text(json.dumps(index))
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", "--dataset", "synthetic", "--max-samples", "2", "--model", str(folder),
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["output_space"] == "disparity_affine_invariant"
    assert summary["fit_space"] == "disparity" and summary["alignment"] == "affine"
    # the disparity fit reports how many predicted values could not be inverted: count them here
    # from the cached predictions and the ground truth's valid masks
    from marigold_bench.data import load_dataset
    from marigold_bench.eval.cache import PredictionCache

    frame = pd.read_csv(out / "per_sample.csv").set_index("id")
    dataset = load_dataset("synthetic").subset(2)
    with PredictionCache(out / "predictions.h5") as cache:
        for item in dataset:
            expected = int((cache.prediction(item["id"]) <= 0)[item["valid"]].sum())
            assert frame.loc[item["id"], "n_nonpositive"] == expected


def test_ablate_fits_each_run_in_the_space_its_model_declares(tiny_checkpoint, tmp_path):
    import shutil

    from marigold_bench.cli import main

    folder = tmp_path / "disparity-ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["prediction_type"] = "disparity"
    (folder / "model_index.json").write_text(json.dumps(index))
    out = tmp_path / "study"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["ablate", "--study", "ensemble", "--values", "1", "--seeds", "1", "--max-samples", "1",
                     "--model", str(folder), "--out", str(out)]) == 0
    summaries = [json.loads(p.read_text()) for p in out.rglob("summary.json")]
    assert summaries and all(s["fit_space"] == "disparity" for s in summaries)
