"""The compact prediction cache: stored at the model's resolution, read back at ground-truth size.

Scores from a compact cache are checked against scoring the full-resolution map that the
predictor's own (torch) resize gives; sizes against ETH3D's 4032 x 6048 frames; caches written
by 0.2 (full-resolution entries, no resize attributes) by hand.
"""

import json
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from marigold_bench.data import get_protocol
from marigold_bench.data.base import DepthDataset, make_item
from marigold_bench.errors import BenchError
from marigold_bench.eval.cache import PredictionCache
from marigold_bench.eval.distributed import fold_parts, part_path
from marigold_bench.eval.evaluator import evaluate_source, run_predictor, score_sample, split_settings
from marigold_bench.eval.predictions import PredictionSource
from marigold_bench.inference.baseline import BaselinePredictor
from marigold_bench.output_spaces import DEPTH_AFFINE

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse",
           "silog_rmse", "scale", "shift")


class LowResPredictor:
    """A baseline-like model that works at a quarter of the image size (odd sizes included) and
    resizes like Marigold in diffusers: torch bilinear, align_corners=False."""

    output_space = DEPTH_AFFINE
    device = None

    def __init__(self, mode="bilinear"):
        self.mode = mode
        self.settings = {"model": f"lowres-{mode}", "family": "test", "output_space": DEPTH_AFFINE,
                         "ensemble": 1, "ensembling": None, "resample_output": mode}

    def predict(self, jobs):
        out = []
        for _, rgb, members in jobs:
            small = rgb[::4, ::4].astype(np.float32).mean(-1) / 255.0
            out.append(np.stack([np.sqrt(small) * (1 + 0.1 * k) + 0.05 for k in members]).astype(np.float32))
        return out

    def merge(self, members, out_shape=None):
        depth = np.asarray(members, np.float32).mean(0)
        if out_shape is None:
            return depth, None
        kwargs = {"mode": "bilinear", "antialias": True} if self.mode == "bilinear-antialias" else {"mode": self.mode}
        t = F.interpolate(torch.from_numpy(depth)[None, None], size=tuple(out_shape), align_corners=False, **kwargs)
        return t[0, 0].numpy(), None


class LargeFrames(DepthDataset):
    """ETH3D-shaped samples (RGB and depth 4032 x 6048 by default) made up on the fly."""

    def __init__(self, n=2, shape=(4032, 6048), name="eth3d"):
        self.protocol = get_protocol(name)
        self.ids = [f"frame_{i}" for i in range(n)]
        self.shape = shape

    def load(self, index):
        rng = np.random.default_rng(index)
        h, w = self.shape
        y, x = np.ogrid[0:h, 0:w]
        depth = (2.0 + np.sin(x / (w / 5.0) + index) + (y / h) * 3.0).astype(np.float32)
        rgb = np.empty((h, w, 3), np.uint8)
        for c in range(3):
            rgb[..., c] = np.clip(255 * (depth / 6.0) + rng.integers(-30, 30, (h, w)), 0, 255)
        valid = np.ones((h, w), bool)
        valid[: h // 10] = False
        return make_item(self.ids[index], rgb, depth, valid)


def _records(out_dir):
    frame = pd.read_csv(os.path.join(out_dir, "per_sample.csv"))
    return {r["id"]: r for r in frame.to_dict("records")}


def _full_resolution_scores(dataset, predictor, out_dir):
    """Score the map the predictor itself resizes to ground-truth size from the cached members,
    under the scoring a run picks for the predictor's output space."""
    from marigold_bench.eval.evaluator import default_scoring

    scoring = default_scoring(dataset.protocol, predictor.output_space)
    scores = {}
    with PredictionCache(os.path.join(out_dir, "predictions.h5")) as cache:
        for item in dataset:
            members = cache.members(item["id"])
            full, _ = predictor.merge(members[:1], item["depth"].shape)
            scores[item["id"]] = score_sample(item, full, scoring)
    return scores


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "bilinear-antialias"])
def test_compact_scores_equal_full_resolution_scores(tmp_path, mode):
    dataset = LargeFrames(n=2, shape=(481, 643), name="synthetic")   # quarter: 121 x 161
    predictor = LowResPredictor(mode)
    out = str(tmp_path / "run")
    run_predictor(dataset, predictor, out, progress=False)
    with h5py.File(os.path.join(out, "predictions.h5")) as f:
        stored = f["frame_0"]
        assert stored.shape == (121, 161)
        assert list(stored.attrs["target_shape"]) == [481, 643] and stored.attrs["resample"] == mode
    ours, full = _records(out), _full_resolution_scores(dataset, predictor, out)
    assert set(ours) == set(full) == set(dataset.ids)
    for sid in dataset.ids:
        assert ours[sid]["status"] == "ok"
        for key in METRICS:
            assert ours[sid][key] == pytest.approx(full[sid][key], rel=1e-6, abs=1e-6), (sid, key)
    # reading the cache gives the same map as the predictor's own resize
    with PredictionCache(os.path.join(out, "predictions.h5")) as cache:
        merge_key = split_settings(predictor.settings)[1]
        item = dataset[1]
        expected, _ = predictor.merge(cache.members(item["id"]), item["depth"].shape)
        np.testing.assert_allclose(cache.prediction(item["id"], merge_key), expected, rtol=0, atol=1e-6)


def test_rerun_and_evaluate_read_the_compact_cache(tmp_path):
    dataset = LargeFrames(n=2, shape=(201, 333), name="synthetic")
    out = str(tmp_path / "run")
    first = run_predictor(dataset, LowResPredictor(), out, progress=False)

    class Refusing(LowResPredictor):
        def predict(self, jobs):
            raise AssertionError("a finished sample was predicted again")

    again = run_predictor(dataset, Refusing(), out, progress=False)       # everything from the cache
    assert again["metrics"] == first["metrics"]
    source = PredictionSource(os.path.join(out, "predictions.h5"))
    assert source.get("frame_0").shape == (201, 333)
    evaluated = evaluate_source(dataset, source, str(tmp_path / "eval"), progress=False)
    source.close()
    for key in ("abs_rel", "delta1", "rmse"):
        assert evaluated["metrics"][key] == pytest.approx(first["metrics"][key], rel=1e-9)


def _tiny_official(tiny_checkpoint, **settings):
    from marigold_bench.inference import load_predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_predictor(str(tiny_checkpoint), noise="zeros", device="cpu", padding="none", **settings)


class NoiseAtProcessingSize(LowResPredictor):
    """Uniform noise at ETH3D's processing size, 504 x 756: hardly compressible, the worst case."""

    def predict(self, jobs):
        rng = np.random.default_rng(0)
        return [rng.random((len(members), 504, 756), dtype=np.float32) for _, _, members in jobs]


def test_an_eth3d_sized_sample_takes_under_4_mb(tmp_path):
    predictor = NoiseAtProcessingSize()
    (members,) = predictor.predict([("frame", None, [0])])
    path = tmp_path / "predictions.h5"
    members_settings, merge_key = split_settings(predictor.settings)
    with PredictionCache(path, members_settings) as cache:
        cache.put_members("frame", members)
        scored = cache.put_merged("frame", predictor, members, (4032, 6048), merge_key)
        read = cache.prediction("frame", merge_key)
    size = os.path.getsize(path)
    # 0.2 stored the merged map at 4032 x 6048 x 4 bytes = 97.5 MB, plus the member (1.5 MB);
    # now the member and the merged map at 504 x 756 x 4 bytes, 1.5 MB each before compression
    # (of noise only the exponent bytes shrink: 2.6 MB measured; the tiny model's maps 2.05 MB)
    assert 1e6 < size <= 4e6
    assert scored.shape == read.shape == (4032, 6048)
    np.testing.assert_array_equal(scored, read)     # a run scores what rescore will read back


@pytest.mark.slow
def test_eth3d_sized_run_end_to_end(tiny_checkpoint, tmp_path):
    """Two 4032 x 6048 frames through the tiny model at processing resolution 756 (~1 min here:
    its VAE attends over all 126 x 189 latent pixels); measured 2.05 MB a sample."""
    dataset = LargeFrames(n=2)
    predictor = _tiny_official(tiny_checkpoint, processing_res=756)
    out = str(tmp_path / "eth3d")
    summary = run_predictor(dataset, predictor, out, progress=False)
    assert summary["n"] == 2
    per_sample = os.path.getsize(os.path.join(out, "predictions.h5")) / 2
    print(f"predictions.h5: {per_sample / 1e6:.2f} MB per ETH3D-sized sample at N=1")
    assert per_sample <= 4e6
    with h5py.File(os.path.join(out, "predictions.h5")) as f:
        assert f["frame_0"].shape == (504, 756) and f["__members__/frame_0"].shape == (1, 504, 756)
        assert f["frame_0"].attrs["resample"] == "bilinear-antialias"
    ours, full = _records(out), _full_resolution_scores(dataset, predictor, out)
    for sid in dataset.ids:
        for key in METRICS:
            assert ours[sid][key] == pytest.approx(full[sid][key], rel=1e-6, abs=1e-6), (sid, key)


# ----------------------------------------------------------------------------- 0.2 caches


def _write_02_cache(path, dataset, predictor):
    """A predictions.h5 as marigold-bench 0.2 wrote it: full-resolution merged maps, no
    compression, no resize attributes, members at processing resolution."""
    members_settings, merge_key = split_settings(predictor.settings)
    assert "family" not in members_settings and "output_space" not in members_settings    # as 0.2's
    with h5py.File(path, "w") as f:
        f.attrs["settings"] = json.dumps(members_settings, sort_keys=True)
        for item in dataset:
            (members,) = predictor.predict([(item["id"], item["rgb"], [0])])
            f.create_dataset(f"__members__/{item['id']}", data=members)
            full, _ = predictor.merge(members, item["depth"].shape)
            f.create_dataset(item["id"], data=full).attrs["merge"] = json.dumps(merge_key)


def test_a_02_cache_is_read_resumed_and_evaluated(tmp_path):
    dataset = LargeFrames(n=3, shape=(97, 130), name="synthetic")
    out = tmp_path / "old"
    out.mkdir()
    _write_02_cache(out / "predictions.h5", dataset, LowResPredictor())
    with PredictionCache(out / "predictions.h5") as cache:
        assert cache.prediction("frame_0").shape == (97, 130)      # as stored
        assert cache.stored_prediction("frame_0")[1].get("target_shape") is None

    class Refusing(LowResPredictor):
        def predict(self, jobs):
            raise AssertionError("a sample of the 0.2 cache was predicted again")

    resumed = run_predictor(dataset, Refusing(), str(out), progress=False)
    fresh = run_predictor(dataset, LowResPredictor(), str(tmp_path / "new"), progress=False)
    for key in ("abs_rel", "delta1", "rmse", "silog_rmse"):
        assert resumed["metrics"][key] == pytest.approx(fresh["metrics"][key], rel=1e-6)
    source = PredictionSource(str(out / "predictions.h5"))
    assert source.get("frame_2").shape == (97, 130)
    source.close()
    with h5py.File(out / "predictions.h5") as f:      # the old entries kept, as they were
        assert f["frame_0"].shape == (97, 130) and "target_shape" not in f["frame_0"].attrs


def test_a_02_cache_made_with_other_settings_is_refused_with_the_difference(tmp_path):
    dataset = LargeFrames(n=1, shape=(40, 60), name="synthetic")
    out = tmp_path / "old"
    out.mkdir()
    _write_02_cache(out / "predictions.h5", dataset, LowResPredictor("bilinear"))
    with pytest.raises(BenchError, match="resample_output: cached 'bilinear' vs now 'bicubic'"):
        run_predictor(dataset, LowResPredictor("bicubic"), str(out), progress=False)
    with PredictionCache(out / "predictions.h5") as cache:     # still readable, untouched
        assert cache.prediction("frame_0").shape == (40, 60)


def test_a_cache_from_a_newer_version_is_a_clear_error(tmp_path):
    path = tmp_path / "predictions.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("a", data=np.ones((4, 5), np.float32))
        ds.attrs["target_shape"] = [8, 10]
        ds.attrs["resample"] = "lanczos3"
    with PredictionCache(path) as cache, pytest.raises(BenchError, match="unknown resize mode 'lanczos3'"):
        cache.prediction("a")


def test_a_predictor_without_a_resize_mode_is_stored_as_it_returns(tmp_path):
    dataset = LargeFrames(n=1, shape=(40, 60), name="synthetic")
    out = str(tmp_path / "baseline")
    run_predictor(dataset, BaselinePredictor("ramp"), out, progress=False)
    with h5py.File(os.path.join(out, "predictions.h5")) as f:
        assert f["frame_0"].shape == (40, 60) and "target_shape" not in f["frame_0"].attrs


def test_put_prediction_needs_a_known_mode_for_a_compact_entry(tmp_path):
    with PredictionCache(tmp_path / "p.h5", {"model": "x"}) as cache:
        with pytest.raises(ValueError, match="needs a resize mode"):
            cache.put_prediction("a", np.zeros((2, 3)), None, (4, 6), None)
        cache.put_prediction("b", np.zeros((4, 6)), None, (4, 6), None)    # full size: nothing to record
        assert cache.prediction("b").shape == (4, 6)


# ----------------------------------------------------------------------------- sharded runs


def test_folded_parts_keep_the_resize_attributes(tmp_path):
    settings = {"model": "lowres"}
    main = PredictionCache(tmp_path / "predictions.h5", settings)
    part = PredictionCache(part_path(str(tmp_path), 1), settings)
    small = np.random.default_rng(0).random((11, 17)).astype(np.float32)
    part.put_prediction("a", small, {"n_members": 1}, (33, 50), "bicubic")
    part.put_prediction("b", np.ones((5, 5), np.float32), {"n_members": 1})
    part.put_members("a", small[None])
    expected = part.prediction("a")
    part.close()
    assert fold_parts(str(tmp_path), main) == 2
    stored, attrs = main.stored_prediction("a", {"n_members": 1})
    assert stored.shape == (11, 17) and list(attrs["target_shape"]) == [33, 50] and attrs["resample"] == "bicubic"
    assert main.prediction("a").shape == (33, 50)
    np.testing.assert_array_equal(main.prediction("a"), expected)
    assert "target_shape" not in main.stored_prediction("b")[1]
    np.testing.assert_array_equal(main.members("a"), small[None])
    main.close()


def test_reading_a_compact_cache_imports_no_torch(tmp_path):
    path = tmp_path / "predictions.h5"
    with PredictionCache(path, {"model": "x"}) as cache:
        cache.put_prediction("s", np.random.default_rng(1).random((9, 13)), {"n_members": 1}, (27, 40), "bilinear")
    code = ("import sys; from marigold_bench.eval.cache import PredictionCache; "
            "from marigold_bench.eval.predictions import PredictionSource; "
            f"c = PredictionCache({str(path)!r}); assert c.prediction('s').shape == (27, 40); "
            f"assert PredictionSource({str(path)!r}).get('s').shape == (27, 40); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_transformers_model_is_cached_at_its_own_resolution(tmp_path):
    from fixtures_transformers import make_tiny_depth_model

    from marigold_bench.inference.transformers_depth import TransformersDepthPredictor

    folder = make_tiny_depth_model(tmp_path / "dpt", "dpt")
    predictor = TransformersDepthPredictor.from_pretrained(str(folder), device="cpu")
    assert predictor.settings["resample_output"] == "bicubic"
    dataset = LargeFrames(n=2, shape=(150, 230), name="synthetic")
    out = str(tmp_path / "run")
    run_predictor(dataset, predictor, out, progress=False)
    with h5py.File(os.path.join(out, "predictions.h5")) as f:
        stored = f["frame_0"]
        assert stored.shape != (150, 230) and stored.attrs["resample"] == "bicubic"
        # the model's own resolution: the fixture's processor gives 32x32, DPT's head doubles it
        assert stored.shape == (64, 64) and list(stored.attrs["target_shape"]) == [150, 230]
    ours, full = _records(out), _full_resolution_scores(dataset, predictor, out)
    for sid in dataset.ids:
        for key in METRICS:
            assert ours[sid][key] == pytest.approx(full[sid][key], rel=1e-6, abs=1e-6), (sid, key)
