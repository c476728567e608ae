"""Evaluation protocols as data: resolution, overrides, bad combinations, and what gets recorded.

Numbers are checked against values worked out by hand from the definitions (docs/parity.md; the
protocols' own sources), or
against predictions built to be exact under one fit space and not under another.
"""

import json

import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.data import get_protocol, load_dataset
from marigold_bench.errors import BenchError
from marigold_bench.eval.evaluator import run_predictor, score_sample
from marigold_bench.eval.protocols import EVALUATION_PROTOCOLS, resolve_scoring
from marigold_bench.output_spaces import ALL_OUTPUT_SPACES, DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE

SYNTHETIC = get_protocol("synthetic")


class Oracle:
    """A predictor that knows the ground truth and outputs ``transform(depth)`` in ``output_space``."""

    device = None

    def __init__(self, dataset, transform, output_space):
        self.depth = {item["id"]: item["depth"] for item in dataset}
        self.transform, self.output_space = transform, output_space
        self.settings = {"model": "oracle", "family": "test", "output_space": output_space,
                         "ensemble": 1, "ensembling": None}

    def predict(self, jobs):
        return [self.transform(self.depth[sid])[None].astype(np.float32) for sid, _, _ in jobs]

    def merge(self, members, out_shape=None):
        return np.asarray(members, np.float32).mean(axis=0), None


@pytest.fixture(scope="module")
def four():
    return load_dataset("synthetic", split="test:4")


def test_the_output_space_picks_the_fit_space_and_an_override_is_recorded(tmp_path, four):
    # an exact affine transform of disparity: perfect when fitted in disparity, not in depth
    oracle = Oracle(four, lambda d: 2.0 / np.maximum(d, 1e-3) + 0.5, DISPARITY_AFFINE)
    summary = run_predictor(four, oracle, str(tmp_path / "auto"), progress=False)
    assert (summary["output_space"], summary["alignment"], summary["fit_space"]) == \
        (DISPARITY_AFFINE, "affine", "disparity")
    assert summary["scoring"]["overrides"] == [] and summary["protocol"]["fit_space"] == "disparity"
    assert summary["metrics"]["abs_rel"] == pytest.approx(0, abs=1e-6)

    forced = resolve_scoring(four.protocol, output_space=DISPARITY_AFFINE, fit_space="depth")
    summary = run_predictor(four, oracle, str(tmp_path / "forced"), progress=False, scoring=forced)
    assert summary["fit_space"] == "depth" and summary["scoring"]["overrides"] == ["fit_space"]
    assert summary["metrics"]["abs_rel"] > 0.01  # 1/d is not affine in d

    # depth models stay in depth; the CLI records an --alignment override the same way
    assert resolve_scoring(SYNTHETIC, output_space=DEPTH_AFFINE).fit_space == "depth"
    assert resolve_scoring(SYNTHETIC, output_space=DEPTH_METRIC).alignment == "none"
    assert resolve_scoring(SYNTHETIC, output_space=DEPTH_SCALE).alignment == "scale"
    out = tmp_path / "cli"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "2",
                 "--alignment", "scale", "--out", str(out)]) == 0
    recorded = json.loads((out / "summary.json").read_text())
    assert recorded["alignment"] == "scale" and recorded["scoring"]["overrides"] == ["alignment"]
    assert recorded["protocol_name"] == "marigold"
    assert "subsets" not in recorded  # only DIODE is reported by halves

    # --output-space against the model's own declaration: recorded as an override, and it moves
    # the fit (the ramp baseline declares affine-invariant depth)
    out = tmp_path / "space"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "2",
                 "--output-space", DISPARITY_AFFINE, "--out", str(out)]) == 0
    recorded = json.loads((out / "summary.json").read_text())
    assert recorded["output_space"] == DISPARITY_AFFINE and recorded["fit_space"] == "disparity"
    assert recorded["scoring"]["overrides"] == ["output_space"]


@pytest.mark.parametrize("flags,known", [
    (["--protocol", "midas"], "marigold, moge"),
    (["--alignment", "lstsq"], "affine, scale, median, none"),
])
def test_unknown_protocol_or_alignment_lists_the_known_ones(tmp_path, capsys, flags, known):
    out = tmp_path / "never"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "1",
                 *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert flags[1] in err and known in err and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(BenchError, match=known):
        resolve_scoring(SYNTHETIC, flags[1] if flags[0] == "--protocol" else "marigold",
                        alignment=flags[1] if flags[0] == "--alignment" else None)


def test_an_alignment_the_output_space_cannot_take(tmp_path, capsys, four):
    # affine- and scale-invariant predictions have no metric meaning: `none` cannot score them
    for space in (DEPTH_AFFINE, DISPARITY_AFFINE, DEPTH_SCALE):
        with pytest.raises(BenchError, match="cannot serve --output-space"):
            resolve_scoring(SYNTHETIC, output_space=space, alignment="none")
    # a protocol that does not define a pair says which pairs it has
    with pytest.raises(BenchError, match="moge has no scale alignment in disparity space.*affine in depth"):
        resolve_scoring(SYNTHETIC, "moge", output_space=DISPARITY_AFFINE, alignment="scale")
    with pytest.raises(BenchError, match="fits nothing"):
        resolve_scoring(SYNTHETIC, output_space=DEPTH_METRIC, alignment="none", fit_space="disparity")

    preds = tmp_path / "scaled.h5"
    import h5py
    with h5py.File(preds, "w") as f:
        for item in four:
            f[item["id"]] = 0.6 * item["depth"]
    out = tmp_path / "refused"
    assert main(["evaluate", "--dataset", "synthetic", "--max-samples", "4", "--predictions", str(preds),
                 "--alignment", "none", "--out", str(out)]) == 2
    assert "--output-space depth_affine_invariant" in capsys.readouterr().err and not out.exists()

    # declared metric, scored as is: |0.6 g - g| / g = 0.4 everywhere; max(g/p, p/g) = 1/0.6 = 1.667
    # is above 1.25 and 1.25^2 = 1.5625, below 1.25^3 = 1.953
    out = tmp_path / "metric"
    assert main(["evaluate", "--dataset", "synthetic", "--max-samples", "4", "--predictions", str(preds),
                 "--output-space", "depth_metric", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alignment"] == "none" and summary["output_space"] == DEPTH_METRIC
    assert summary["metrics"]["abs_rel"] == pytest.approx(0.4, rel=1e-6)
    assert (summary["metrics"]["delta1"], summary["metrics"]["delta2"], summary["metrics"]["delta3"]) == (0, 0, 1)


def test_scale_and_median_alignments_score_as_worked_out_by_hand():
    depth = np.array([[2.0, 2.0], [2.4, 10.0]], np.float32)
    item = {"id": "hand", "depth": depth, "valid": np.ones((2, 2), bool)}
    pred = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    # median: s = median(g) / median(p) = 2.2 / 2.5 = 0.88 -> 0.88, 1.76, 2.64, 3.52
    # AbsRel = mean(1.12/2, 0.24/2, 0.24/2.4, 6.48/10) = mean(0.56, 0.12, 0.1, 0.648) = 0.357
    # δ1: ratios 2.27, 1.136, 1.1, 2.84 -> two of four below 1.25
    median = score_sample(item, pred, resolve_scoring(SYNTHETIC, alignment="median"))
    assert median["status"] == "ok" and median["scale"] == pytest.approx(0.88) and median["shift"] == 0
    assert median["abs_rel"] == pytest.approx(0.357)
    assert median["delta1"] == 0.5
    # least-squares scale: s = sum(p g) / sum(p^2) = (2 + 4 + 7.2 + 40) / 30
    scale = score_sample(item, pred, resolve_scoring(SYNTHETIC, alignment="scale"))
    s = 53.2 / 30
    by_hand = np.mean(np.abs(s * pred.ravel() - depth.ravel()) / depth.ravel())
    assert scale["scale"] == pytest.approx(s) and scale["abs_rel"] == pytest.approx(by_hand)


def test_nonpositive_predictions_under_a_disparity_fit_are_recorded(tmp_path, four):
    def disparity_with_holes(d):
        out = 1.0 / np.maximum(d, 1e-3)
        out[:3, :5] = -1.0  # 15 pixels with no disparity
        out[3, 0] = 0.0     # and one at zero
        return out

    ds = load_dataset("synthetic", split="test:2")
    nonpositive = [int((disparity_with_holes(item["depth"]) <= 0)[item["valid"]].sum()) for item in ds]
    assert min(nonpositive) > 0
    oracle = Oracle(ds, disparity_with_holes, DISPARITY_AFFINE)
    summary = run_predictor(ds, oracle, str(tmp_path / "run"), progress=False)
    frame = pd.read_csv(tmp_path / "run" / "per_sample.csv")
    assert list(frame["n_nonpositive"]) == nonpositive
    assert summary["n_with_nonpositive"] == 2
    from marigold_bench.commands.common import summary_table
    assert "2 with non-positive predicted disparity" in summary_table(summary)  # said, not only averaged
    # the same under MoGe's disparity fit, which keeps them in its least squares
    moge = resolve_scoring(ds.protocol, "moge", output_space=DISPARITY_AFFINE, boundary_f1=0)
    record = score_sample(ds[0], disparity_with_holes(ds[0]["depth"]), moge)
    assert record["n_nonpositive"] == nonpositive[0]


def test_marigold_is_the_default_and_reproduces_todays_numbers(four):
    # no scoring given: the numbers of the benchmark protocol alone (the 0.2 behaviour)
    item = four[1]
    rng = np.random.default_rng(3)
    pred = (0.3 * item["depth"] + 1 + rng.normal(0, 0.5, item["depth"].shape)).astype(np.float32)
    old = score_sample(item, pred, four.protocol)
    new = score_sample(item, pred, resolve_scoring(four.protocol, "marigold", DEPTH_AFFINE))
    assert old == new
    # an independent recomputation: least squares by numpy's lstsq, clip, AbsRel
    v = item["valid"]
    A = np.stack([pred[v].astype(np.float64), np.ones(v.sum())], axis=1)
    (s, t), *_ = np.linalg.lstsq(A, item["depth"][v].astype(np.float64), rcond=None)
    aligned = np.clip(s * pred[v] + t, 1e-3, 200.0)
    g = item["depth"][v].astype(np.float64)
    assert new["abs_rel"] == pytest.approx(np.mean(np.abs(aligned - g) / g), rel=1e-9)


def test_every_protocol_names_its_source_and_the_listing_shows_it(capsys):
    assert main(["protocols"]) == 0
    text = capsys.readouterr().out
    for spec in EVALUATION_PROTOCOLS.values():
        assert spec.source in text
        # every protocol scores metric depth; the metric ones have no default for the others
        assert DEPTH_METRIC in spec.default_alignment
        assert set(spec.default_alignment) <= set(ALL_OUTPUT_SPACES)  # point maps: moge
        for pair in spec.default_alignment.values():
            assert pair in spec.realisations
    assert "disparity_affine_invariant  affine in disparity" in text


def test_diode_is_reported_as_indoor_outdoor_and_all(tmp_path):
    from fixtures_data import build

    fx = build("diode", tmp_path)
    ds = load_dataset("diode", fx.folder, split=str(fx.split))
    assert [i.split("/")[0] for i in ds.ids] == ["indoors", "outdoor"]
    preds = tmp_path / "preds.h5"
    import h5py
    with h5py.File(preds, "w") as f:
        for item in ds:  # indoor: exact up to an affine map; outdoor: a constant-ish guess
            f[item["id"]] = (3 * item["depth"] + 1 if item["id"].startswith("indoors")
                             else np.linspace(1, 2, item["depth"].size).reshape(item["depth"].shape))
    out = tmp_path / "eval"
    assert main(["evaluate", "--dataset", "diode", "--data-root", str(fx.folder), "--split", str(fx.split),
                 "--predictions", str(preds), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    frame = pd.read_csv(out / "per_sample.csv").set_index("id")
    subsets = summary["subsets"]
    assert set(subsets) == {"indoor", "outdoor", "all"}
    assert {k: (v["n"], v["n_total"]) for k, v in subsets.items()} == \
        {"indoor": (1, 1), "outdoor": (1, 1), "all": (2, 2)}
    indoor, outdoor = ds.ids
    for name, sid in (("indoor", indoor), ("outdoor", outdoor)):
        assert subsets[name]["metrics"]["abs_rel"] == pytest.approx(frame.loc[sid, "abs_rel"], rel=1e-6)
    assert subsets["indoor"]["metrics"]["abs_rel"] < subsets["outdoor"]["metrics"]["abs_rel"]
    assert subsets["all"]["metrics"] == summary["metrics"]
    assert subsets["all"]["metrics"]["abs_rel"] == pytest.approx(frame["abs_rel"].mean(), rel=1e-6)
    assert subsets["all"]["n"] == len(frame)


def _torch_devices():
    import torch
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _torch_devices())
@pytest.mark.parametrize("name,output_space,alignment", [
    ("nyu", DEPTH_AFFINE, "scale"), ("nyu", DEPTH_AFFINE, "median"),
    ("eth3d", DEPTH_AFFINE, "median"),            # fitted on the width-only downsampled copy
    ("eth3d", DEPTH_SCALE, "scale"),
    ("kitti", DISPARITY_AFFINE, "scale"), ("kitti", DISPARITY_AFFINE, "median"),
    ("nyu", DEPTH_METRIC, "none"),
])
def test_the_torch_path_covers_every_alignment(device, name, output_space, alignment):
    rng = np.random.default_rng(len(name) + len(alignment))
    protocol = get_protocol(name)
    h, w = (1500, 2250) if name == "eth3d" else (352, 1216) if name == "kitti" else (480, 640)
    depth = (rng.uniform(0.5, 9.0, (h, w)) * np.linspace(1.0, 0.3, h)[:, None]).astype(np.float32)
    from marigold_bench.data.protocol import valid_mask
    valid = valid_mask(depth, protocol, rng.random((h, w)) < 0.6)
    noisy = depth * (1 + rng.normal(0, 0.05, (h, w)))
    pred = (1 / noisy if output_space == DISPARITY_AFFINE else noisy).astype(np.float32)
    item = {"id": f"{name}/x", "depth": depth, "valid": valid}
    scoring = resolve_scoring(protocol, output_space=output_space, alignment=alignment)
    host, moved = score_sample(item, pred, scoring), score_sample(item, pred, scoring, device=device)
    assert host["status"] == moved["status"] == "ok", (host["message"], moved["message"])
    for key in (*scoring.metric_keys, "scale", "shift"):
        assert moved[key] == pytest.approx(host[key], rel=1e-9, abs=1e-12), key
