"""The one run loop (`eval.loop.score_loop`): any prediction source, batches, failures, several
scorings at once; checked against `score_sample` called by hand on the same items."""

import numpy as np
import pytest

from marigold_bench.data import load_dataset
from marigold_bench.errors import BenchError, PredictionError
from marigold_bench.eval.loop import Source, score_loop, score_sample
from marigold_bench.eval.protocols import resolve_scoring


class Counting:
    """A dataset wrapper that counts which samples were read."""

    def __init__(self, dataset):
        self.dataset, self.read = dataset, []
        self.ids, self.protocol = dataset.ids, dataset.protocol

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.read.append(index)
        return self.dataset[index]


def _ramp(item, scale=2.0):
    h, w = item["depth"].shape
    return (scale * np.linspace(0.1, 1.0, w, dtype=np.float32)[None].repeat(h, 0)) + 0.01 * item["depth"]


class InMemory(Source):
    """Sample 0 settled without its ground truth, odd samples at hand, even ones predicted in
    batches of two, sample 4 failing."""

    verb = "test"
    batch_size = 2

    def __init__(self):
        super().__init__()
        self.batches = []

    def settled(self, dataset, indices):
        return {0: {"id": dataset.ids[0], "status": "skipped", "message": "decided early", "n_valid": 0}}

    def lookup(self, item):
        index = int(item["id"].rsplit("_", 1)[-1])
        return _ramp(item) if index % 2 else None

    def predict(self, items):
        self.batches.append([item["id"] for item in items])
        return [PredictionError("out of ink") if item["id"].endswith("4") else _ramp(item, 3.0) for item in items]


def test_loop_keeps_order_batches_failures_and_scores_every_scoring_as_score_sample_does():
    dataset = Counting(load_dataset("synthetic", None, "test:7"))
    affine = resolve_scoring(dataset.protocol, "marigold")
    median = resolve_scoring(dataset.protocol, "marigold", alignment="median")
    source = InMemory()
    with pytest.warns(UserWarning, match="out of ink"):
        (by_affine, by_median), timings = score_loop(dataset, source, [affine, median], progress=False)

    assert 0 not in dataset.read  # a settled sample's ground truth is never read
    assert [r["id"] for r in by_affine] == list(dataset.ids) == [r["id"] for r in by_median]
    ids = list(dataset.ids)
    assert source.batches == [[ids[2], ids[4]], [ids[6]]]  # two per call, the rest at the end
    assert by_affine[0]["message"] == "decided early" and by_affine[4]["status"] == "failed"
    assert by_affine[4]["message"] == "out of ink" and by_median[4]["status"] == "failed"
    for index in (1, 2, 3, 5, 6):
        item = dataset.dataset[index]
        pred = _ramp(item, 2.0 if index % 2 else 3.0)
        assert by_affine[index] == score_sample(item, pred, affine)
        assert by_median[index] == score_sample(item, pred, median)
    assert by_affine[1]["abs_rel"] != by_median[1]["abs_rel"]  # two scorings, two numbers
    assert set(timings) == {"load_s", "score_s"}


def test_an_unreadable_sample_stops_with_the_sources_own_message():
    class Broken(InMemory):
        def unreadable(self, sample_id, error):
            return BenchError(f"cannot read the ground truth of {sample_id}")

    class Missing(Counting):
        def __getitem__(self, index):
            from marigold_bench.errors import SampleError
            if index == 3:
                raise SampleError("gone")
            return super().__getitem__(index)

    dataset = Missing(load_dataset("synthetic", None, "test:4"))
    scoring = resolve_scoring(dataset.protocol, "marigold")
    with pytest.raises(BenchError, match=f"cannot read the ground truth of {dataset.ids[3]}"):
        score_loop(dataset, Broken(), [scoring], progress=False)
    (records,), _ = score_loop(dataset, InMemory(), [scoring], skip_missing=True, progress=False)
    assert records[3]["status"] == "skipped" and records[3]["id"] == dataset.ids[3]


def test_fit_to_shape_takes_channel_first_and_last_three_channel_maps():
    """Normals and point maps are 3xHxW; HxWx3 files are transposed, other shapes refused."""
    from marigold_bench.errors import PredictionError
    from marigold_bench.eval.predictions import fit_to_shape
    chw = np.arange(3 * 4 * 6, dtype=np.float32).reshape(3, 4, 6)
    assert np.array_equal(fit_to_shape(chw, (4, 6), "a", channels=3), chw)
    assert np.array_equal(fit_to_shape(chw.transpose(1, 2, 0), (4, 6), "a", channels=3), chw)
    with pytest.raises(PredictionError, match="expected 3xHxW"):
        fit_to_shape(chw[:2], (4, 6), "a", channels=3)
    with pytest.raises(PredictionError, match="expected 3xHxW"):
        fit_to_shape(chw[0], (4, 6), "a", channels=3)
    with pytest.raises(PredictionError, match="expected one channel"):
        fit_to_shape(chw.transpose(1, 2, 0), (4, 6), "a")   # a depth map is never three channels
    with pytest.warns(UserWarning, match="resizing"):
        up = fit_to_shape(chw, (8, 12), "a", channels=3)
    assert up.shape == (3, 8, 12)
    assert np.isclose(up[2].mean(), chw[2].mean(), atol=1e-4)   # each channel resized on its own
