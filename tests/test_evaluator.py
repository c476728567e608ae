"""End to end: run directories, perfect predictions, resume, and every kind of bad input."""

import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.base import DepthDataset, make_item
from marigold_bench.data.synthetic import SyntheticDataset
from marigold_bench.errors import SampleError
from marigold_bench.eval.evaluator import evaluate_source, run_predictor
from marigold_bench.eval.predictions import PredictionSource
from marigold_bench.inference.baseline import BaselinePredictor


def test_run_writes_the_contract_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "5",
                 "--out", str(out)]) == 0
    assert "AbsRel" in capsys.readouterr().out
    assert {"predictions.h5", "per_sample.csv", "summary.json"} <= set(os.listdir(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "synthetic" and summary["n"] == 5
    assert summary["settings"]["model"] == "baseline:ramp"
    assert summary["protocol"]["fit_space"] == "depth" and "torch" in summary["versions"]
    frame = pd.read_csv(out / "per_sample.csv")
    assert list(frame["id"]) == load_dataset("synthetic").ids[:5]
    # the summary is the plain mean of the per-sample rows
    assert summary["metrics"]["abs_rel"] == pytest.approx(frame["abs_rel"].mean())
    # the cache holds the raw (unaligned) prediction in [0, 1] under the sample id
    import h5py
    with h5py.File(out / "predictions.h5") as f:
        raw = f[frame["id"][0]][()]
    assert raw.shape == (72, 96) and raw.min() >= 0 and raw.max() <= 1


def _write_predictions(folder, ds, transform, ext=".npy"):
    for item in ds:
        path = folder / (item["id"] + ext)
        path.parent.mkdir(parents=True, exist_ok=True)
        if ext == ".npy":
            np.save(path, transform(item["depth"]).astype(np.float32))
        else:
            from PIL import Image
            Image.fromarray(transform(item["depth"]).astype(np.uint16)).save(path)


@pytest.mark.parametrize("ext", [".npy", ".png", ".h5"])
def test_perfect_affine_prediction_scores_zero(tmp_path, ext):
    # any positive affine transform of the truth is perfect for an affine-invariant protocol
    ds = load_dataset("synthetic", split="test:4")
    preds = tmp_path / "preds"
    if ext == ".h5":
        import h5py
        preds = tmp_path / "preds.h5"
        with h5py.File(preds, "w") as f:
            for item in ds:
                f[item["id"]] = 0.01 * item["depth"] + 3
    else:
        # 16-bit PNGs hold integers: 1/256 m (KITTI's unit) is exact enough for AbsRel < 1e-3
        scale = 256.0 if ext == ".png" else 0.1
        _write_predictions(preds, ds, lambda d: d * scale + (0 if ext == ".png" else 2), ext)
    out = tmp_path / "eval"
    assert main(["evaluate", "--dataset", "synthetic", "--predictions", str(preds), "--max-samples", "4",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4
    assert summary["metrics"]["abs_rel"] == pytest.approx(0, abs=1e-3 if ext == ".png" else 1e-5)
    assert summary["metrics"]["delta1"] == 1.0


def test_nan_missing_and_misshapen_predictions_are_recorded(tmp_path):
    ds = load_dataset("synthetic", split="test:5")
    preds = tmp_path / "p"
    _write_predictions(preds, ds, lambda d: d)
    ids = ds.ids
    bad = np.load(preds / f"{ids[0]}.npy")
    bad[10, 10] = np.nan
    ds0 = ds[0]
    bad[~ds0["valid"]] = 0
    np.save(preds / f"{ids[0]}.npy", bad)
    os.remove(preds / f"{ids[1]}.npy")
    np.save(preds / f"{ids[2]}.npy", np.ones((50, 50), np.float32))  # wrong aspect ratio
    half = ds[3]["depth"][::2, ::2]  # same aspect ratio: resized with a warning
    np.save(preds / f"{ids[3]}.npy", half)
    with pytest.warns(UserWarning, match="resizing"):
        summary = evaluate_source(ds, PredictionSource(preds), str(tmp_path / "out"), progress=False)
    frame = pd.read_csv(tmp_path / "out" / "per_sample.csv").set_index("id")
    assert frame.loc[ids[0], "status"] == "failed" and "NaN" in frame.loc[ids[0], "message"]
    assert frame.loc[ids[1], "status"] == "failed" and "no prediction" in frame.loc[ids[1], "message"]
    assert frame.loc[ids[2], "status"] == "failed" and "aspect" in frame.loc[ids[2], "message"]
    assert frame.loc[ids[3], "status"] == "ok" and frame.loc[ids[3], "abs_rel"] < 0.2  # edges blur when upsampled
    assert summary["n"] == 2 and summary["n_failed"] == 3
    # failed samples are not averaged in: the mean is over the ok rows only
    assert summary["metrics"]["abs_rel"] == pytest.approx(frame[frame.status == "ok"]["abs_rel"].mean())


class _Flaky(DepthDataset):
    """Synthetic samples where one is missing on disk and one has no valid pixel."""

    def __init__(self):
        self.base = load_dataset("synthetic", split="test:4")
        self.protocol, self.ids = self.base.protocol, self.base.ids

    def load(self, index):
        if index == 1:
            raise SampleError("missing file /data/x.png", "/data/x.png")
        item = self.base[index]
        if index == 2:
            return make_item(item["id"], item["rgb"], item["depth"], np.zeros_like(item["valid"]))
        return item


def test_missing_sample_stops_unless_skipped(tmp_path):
    with pytest.raises(SampleError, match="x.png"):
        run_predictor(_Flaky(), BaselinePredictor(), str(tmp_path / "a"), progress=False)
    summary = run_predictor(_Flaky(), BaselinePredictor(), str(tmp_path / "b"), skip_missing=True, progress=False)
    assert (summary["n"], summary["n_skipped"], summary["n_no_valid"]) == (2, 1, 1)
    frame = pd.read_csv(tmp_path / "b" / "per_sample.csv")
    assert list(frame["status"]) == ["ok", "skipped", "no_valid", "ok"]


class _CountingPredictor(BaselinePredictor):
    """Counts predicted members and can be made to die after k images."""

    def __init__(self, die_after=None):
        super().__init__("ramp")
        self.calls, self.die_after = 0, die_after

    def predict(self, jobs):
        if self.die_after is not None and self.calls >= self.die_after:
            raise KeyboardInterrupt
        self.calls += len(jobs)
        out = super().predict(jobs)
        # make members depend on the image so a mix-up between samples would show
        return [o * (1 + rgb.mean() / 255) for o, (_, rgb, _) in zip(out, jobs)]


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    ds = load_dataset("synthetic", split="test:6")
    full = tmp_path / "full"
    run_predictor(ds, _CountingPredictor(), str(full), progress=False)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_predictor(ds, _CountingPredictor(die_after=4), str(part), progress=False)
    resumed = _CountingPredictor()
    run_predictor(ds, resumed, str(part), progress=False)
    assert resumed.calls == 2  # only the samples the interrupted run had not finished
    assert (part / "per_sample.csv").read_text() == (full / "per_sample.csv").read_text()


def test_cache_refuses_other_settings(tmp_path, capsys):
    out = str(tmp_path / "r")
    args = ["run", "--dataset", "synthetic", "--max-samples", "2", "--out", out]
    assert main(args + ["--model", "baseline:ramp"]) == 0
    assert main(args + ["--model", "baseline:constant"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "baseline:constant" in err and "Traceback" not in err


def test_unknown_flag_and_dataset_are_clear(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--dataset", "synthetic", "--no-such-flag"])
    with pytest.raises(SystemExit):
        main(["run", "--dataset", "imagenet"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="known datasets: da2k, ddad, .*, diode, eth3d, .*, kitti, moge/ddad, .*, nyu, scannet, sunrgbd, synthetic, vkitti2"):
        load_dataset("imagenet")


def test_bad_run_options_are_clear_and_write_nothing(tmp_path, capsys):
    for flags, message in ((["--images-per-batch", "-1"], "--images-per-batch must be >= 0"),
                           (["--score-device", "gpu0"], "not a device")):
        out = tmp_path / flags[0].strip("-")
        assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "2",
                     "--out", str(out), *flags]) == 2
        assert message in capsys.readouterr().err
        assert not (out / "predictions.h5").exists()


class _SlowToDecode(SyntheticDataset):
    """Synthetic samples that take 0.15 s each to "decode", as files on a slow disk would; with
    ``log`` set, each decode appends the id of the process that did it there."""

    log = None

    def load(self, index):
        time.sleep(0.15)
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\n")
        return super().load(index)


class _SlowPredictor(_CountingPredictor):
    def predict(self, jobs):
        time.sleep(0.2 * len(jobs))
        return super().predict(jobs)


def test_worker_processes_give_the_same_records(tmp_path):
    ds = _SlowToDecode("test:6")
    inline = run_predictor(ds, _SlowPredictor(), str(tmp_path / "a"), progress=False, images_per_batch=1)
    ds.log = str(tmp_path / "decoders.txt")
    pooled = run_predictor(ds, _SlowPredictor(), str(tmp_path / "b"), progress=False, workers=2,
                           images_per_batch=1)
    assert pooled["metrics"] == inline["metrics"]
    assert (tmp_path / "a" / "per_sample.csv").read_text() == (tmp_path / "b" / "per_sample.csv").read_text()
    # load_s is the time the run waited for samples: inline it holds all six decodes (>= 6 x 0.15 s
    # of sleep, a floor, not a speed); with workers every decode ran in another process (how much
    # time that saves is the evaluation benchmark's to say, not a test's)
    assert inline["timing"]["load_s"] >= 6 * 0.15
    decoders = (tmp_path / "decoders.txt").read_text().split()
    assert len(decoders) == 6 and str(os.getpid()) not in decoders


def test_missing_sample_is_reported_from_worker_processes_too(tmp_path):
    with pytest.raises(SampleError, match="x.png"):
        run_predictor(_Flaky(), BaselinePredictor(), str(tmp_path / "a"), progress=False, workers=1)
    summary = run_predictor(_Flaky(), BaselinePredictor(), str(tmp_path / "b"), skip_missing=True,
                            progress=False, workers=1)
    assert summary["n_skipped"] == 1


class _OneBadSample(_CountingPredictor):
    """Fails one sample of every batch it sees, like a NaN from the model; ``tell`` says whether
    the error names the failed job (``results``) or leaves the caller to find it."""

    def __init__(self, bad_id, tell):
        super().__init__()
        self.bad_id, self.tell, self.jobs_seen = bad_id, tell, 0

    def predict(self, jobs):
        from marigold_bench.errors import PredictionError
        self.jobs_seen += len(jobs)
        out = super().predict(jobs)
        if any(sid == self.bad_id for sid, _, _ in jobs):
            error = PredictionError(f"NaN for {self.bad_id}")
            if self.tell:
                error.results = [None if sid == self.bad_id else o for o, (sid, _, _) in zip(out, jobs)]
            raise error
        return out


@pytest.mark.parametrize("tell", [True, False])
def test_a_failed_sample_in_a_batch_spares_the_others(tmp_path, tell):
    ds = load_dataset("synthetic", split="test:4")
    predictor = _OneBadSample(ds.ids[1], tell)
    with pytest.warns(UserWarning, match="NaN"):
        summary = run_predictor(ds, predictor, str(tmp_path / "r"), progress=False, images_per_batch=4)
    frame = pd.read_csv(tmp_path / "r" / "per_sample.csv")
    assert list(frame["status"]) == ["ok", "failed", "ok", "ok"] and summary["n_failed"] == 1
    # named failures keep the batch's other outputs (4 jobs); unnamed ones are redone alone (4 + 4)
    assert predictor.jobs_seen == (4 if tell else 8)
