"""Protocols carry their behaviour: a new one is one spec file, knobs are fields, one dispatcher.

Every number is checked against a value worked out by hand or by a second method (numpy's
lstsq, a median taken here from the cache and the dataset), never against the suite's output.
"""

import dataclasses
import json
import textwrap

import h5py
import numpy as np
import pandas as pd
import pytest

from marigold_bench import plugins
from marigold_bench.cli import main
from marigold_bench.data import get_protocol, load_dataset
from marigold_bench.errors import BenchError
from marigold_bench.eval.align import align
from marigold_bench.eval.evaluator import score_sample
from marigold_bench.eval.protocols import EVALUATION_PROTOCOLS, get_evaluation_protocol, resolve_scoring
from marigold_bench.eval.protocols.base import EvaluationProtocol
from marigold_bench.eval.scoring import scored_pixels
from marigold_bench.output_spaces import DEPTH_AFFINE, DISPARITY_AFFINE

SYNTHETIC = get_protocol("synthetic")

#: a test-only protocol, written as a user would: median scaling, no clipping, its own scorer
MEDIAN_NONE = textwrap.dedent('''
    import numpy as np

    from marigold_bench.eval.protocols.base import EvaluationProtocol
    from marigold_bench.output_spaces import DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE


    def align(pred, depth, valid, scoring):
        p = np.asarray(pred, np.float64)
        scale = 1.0 if scoring.alignment == "none" else float(np.median(depth[valid]) / np.median(p[valid]))
        return scale * p, scale, 0.0


    def score(sample_id, pred, depth, valid, scoring, device=None):
        aligned, scale, shift = align(pred, depth, valid, scoring)
        a, g = aligned[valid], np.asarray(depth, np.float64)[valid]
        return {"abs_rel": float(np.mean(np.abs(a - g) / g)),
                "delta1": float(np.mean(np.maximum(a / g, g / a) < 1.25)), "scale": scale, "shift": shift}


    PROTOCOL = EvaluationProtocol(
        name="median-none", source="tests/test_protocol_plugins.py", description="median scaling, no clip",
        default_alignment={DEPTH_AFFINE: ("median", "depth"), DEPTH_SCALE: ("median", "depth"),
                           DISPARITY_AFFINE: ("median", "depth"), DEPTH_METRIC: ("none", "depth")},
        realisations={("median", "depth"): "median(g) / median(p)", ("none", "depth"): "none"},
        metric_keys=("abs_rel", "delta1"), align=align, score=score, clip_to_range=False)
''')

#: Marigold's own behaviour with one knob turned: fitted disparity floored at 0.3, not 1e-3
FLOOR = textwrap.dedent('''
    import dataclasses

    from marigold_bench.eval.protocols.marigold import PROTOCOL as MARIGOLD

    PROTOCOL = dataclasses.replace(MARIGOLD, name="marigold-floor", disparity_floor=0.3)
''')


@pytest.fixture
def included(tmp_path, monkeypatch):
    """A folder of spec files, included for this test only."""
    monkeypatch.setenv(plugins.INCLUDE_ENV, "")
    folder = tmp_path / "specs"
    folder.mkdir()

    def add(name, text):
        (folder / name).write_text(text)
        plugins.include(folder)
        return folder / name
    return add


def test_an_included_protocol_is_listed_and_rescores_a_run_end_to_end(tmp_path, included, capsys):
    spec_file = included("median_none.py", MEDIAN_NONE)
    assert main(["protocols"]) == 0
    listing = capsys.readouterr().out
    assert "median-none: median scaling, no clip" in listing
    assert f"origin: include {spec_file.resolve()}" in listing and "origin: built-in" in listing

    run, out = tmp_path / "run", tmp_path / "median-none"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "3",
                 "--out", str(run)]) == 0
    assert main(["rescore", str(run), "--protocol", "median-none", "--out", str(out)]) == 0
    frame = pd.read_csv(out / "per_sample.csv")
    assert list(frame.columns) == ["id", "abs_rel", "delta1", "scale", "shift", "n_valid", "status", "message"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scoring"]["protocol"] == "median-none" and summary["scoring"]["alignment"] == "median"
    assert summary["scoring"]["clip_to_range"] is False

    # by hand, from the run's cache and the dataset: s = median(g) / median(p) over the valid pixels
    ds = load_dataset("synthetic", split="test:3")
    with h5py.File(run / "predictions.h5") as f:
        for item, (_, row) in zip(ds, frame.iterrows()):
            v = item["valid"]
            p, g = f[item["id"]][()].astype(np.float64)[v], item["depth"][v].astype(np.float64)
            s = np.median(g) / np.median(p)
            assert row["id"] == item["id"] and row["status"] == "ok" and row["n_valid"] == v.sum()
            # per_sample.csv keeps 8 significant digits
            assert row["scale"] == pytest.approx(s, rel=1e-7) and row["shift"] == 0
            assert row["abs_rel"] == pytest.approx(np.mean(np.abs(s * p - g) / g), rel=1e-7)
    assert summary["metrics"]["abs_rel"] == pytest.approx(frame["abs_rel"].mean(), rel=1e-7)
    # and the rescored run is a run like any other: it makes a table
    assert main(["table", str(out), "--format", "csv"]) == 0
    assert "median-none: median" in capsys.readouterr().out


def test_a_plugin_that_is_no_protocol_or_takes_a_builtin_name_is_a_warning_and_left_out(included):
    included("not_one.py", "PROTOCOL = 'median'\n")
    included("clash.py", FLOOR.replace('name="marigold-floor", ', ""))  # named "marigold" as well
    with pytest.warns(plugins.PluginWarning) as caught:
        names = list(EVALUATION_PROTOCOLS)
    messages = " ".join(str(w.message) for w in caught)
    assert "not_one.py: PROTOCOL is a str, not an EvaluationProtocol" in messages
    assert "clash.py: protocol 'marigold' is already defined (built-in)" in messages
    assert names == ["marigold", "moge", "moge-lifted", "zoedepth", "unidepth", "monodepth2", "da2k"]
    assert get_evaluation_protocol("marigold").disparity_floor == 1e-3  # the built-in won


def test_the_disparity_floor_is_a_knob_that_moves_the_numbers_as_worked_out_by_hand(included):
    included("floor.py", FLOOR)
    depth = np.array([[1.0, 2.0], [4.0, 10.0]], np.float32)
    item = {"id": "hand", "depth": depth, "valid": np.ones((2, 2), bool)}
    pred = (1 / depth).astype(np.float32)  # exact disparity: the affine fit is s = 1, t = 0
    default = resolve_scoring(SYNTHETIC, "marigold", DISPARITY_AFFINE)
    floored = resolve_scoring(SYNTHETIC, "marigold-floor", DISPARITY_AFFINE)
    assert (default.disparity_floor, floored.disparity_floor) == (1e-3, 0.3)
    assert score_sample(item, pred, default)["abs_rel"] == pytest.approx(0, abs=1e-6)
    # floored at 0.3: disparities 0.25 and 0.1 become 0.3, depth 10/3 at g = 4 and g = 10;
    # AbsRel = (0 + 0 + (4 - 10/3) / 4 + (10 - 10/3) / 10) / 4 = (1/6 + 2/3) / 4 = 5/24
    for device in (None, "cpu"):
        record = score_sample(item, pred, floored, device=device)
        assert record["abs_rel"] == pytest.approx(5 / 24, rel=1e-6), device
        assert record["scale"] == pytest.approx(1, rel=1e-6) and record["shift"] == pytest.approx(0, abs=1e-6)
    aligned, _, _ = align(pred, depth, item["valid"], floored)
    np.testing.assert_allclose(aligned, [[1, 2], [10 / 3, 10 / 3]], rtol=1e-6)


@pytest.mark.parametrize("name,output_space", [("nyu", DEPTH_AFFINE), ("eth3d", DEPTH_AFFINE),
                                               ("kitti", DISPARITY_AFFINE)])
def test_one_dispatcher_gives_the_scorers_own_fit(name, output_space):
    rng = np.random.default_rng(7)
    protocol = get_protocol(name)
    h, w = (60, 80) if name != "eth3d" else (1500, 2250)
    depth = rng.uniform(0.5, 9.0, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) < 0.7
    noisy = depth * (1 + rng.normal(0, 0.1, (h, w)))
    pred = (2 / noisy + 0.1 if output_space == DISPARITY_AFFINE else 0.5 * noisy - 0.2).astype(np.float32)
    scoring = resolve_scoring(protocol, "marigold", output_space)
    aligned, scale, shift = align(pred, depth, valid, scoring)
    record = score_sample({"id": "x", "depth": depth, "valid": valid}, pred, scoring)
    assert (record["scale"], record["shift"]) == (scale, shift)
    if name == "eth3d":  # fitted on the width-only downsampled copy: checked in test_align
        return
    # independently: numpy's lstsq on the valid pixels (in disparity where the scoring fits there)
    p = pred[valid].astype(np.float64)
    g = depth[valid].astype(np.float64)
    target = 1 / g if scoring.fit_space == "disparity" else g
    (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], axis=1), target, rcond=None)
    assert scale == pytest.approx(s, rel=1e-9) and shift == pytest.approx(t, rel=1e-9, abs=1e-12)
    fitted = s * pred.astype(np.float64) + t
    expected = 1 / np.maximum(fitted, 1e-3) if scoring.fit_space == "disparity" else fitted
    np.testing.assert_allclose(aligned, np.clip(expected, protocol.min_depth, protocol.max_depth), rtol=1e-9)


def test_the_dispatcher_follows_moge_as_its_scorer_does():
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 5, (48, 64)).astype(np.float32)
    valid = rng.random((48, 64)) < 0.8
    pred = (0.3 * depth + 1 + rng.normal(0, 0.05, depth.shape)).astype(np.float32)
    scoring = resolve_scoring(SYNTHETIC, "moge", DEPTH_AFFINE, boundary_f1=0)
    aligned, scale, shift = align(pred, depth, valid, scoring)
    record = score_sample({"id": "x", "depth": depth, "valid": valid}, pred, scoring)
    assert (record["scale"], record["shift"]) == (scale, shift)
    g = depth[valid].astype(np.float64)
    np.testing.assert_allclose(aligned, scale * pred.astype(np.float64) + shift, rtol=1e-12)  # no clipping
    assert record["abs_rel"] == pytest.approx(np.mean(np.abs(aligned[valid] - g) / (g + 1e-6)), rel=1e-9)


class Checkerboard:
    """A benchmark description with named crops, an uncropped ``mask`` and a sharp-edges fact."""

    name, min_depth, max_depth = "checker", 0.1, 100.0
    fit_max_resolution, fit_downsample = None, "width_only"
    default_crop = "none"
    crops = {"none": None, "left": None}

    def __init__(self, sharp_edges=False):
        self.sharp_edges = sharp_edges

    def crop_mask(self, crop, shape):
        mask = np.ones(shape, bool)
        if crop == "left":
            mask[:, shape[1] // 2:] = False
        return mask


def test_the_crop_is_chosen_at_scoring_time():
    bench = Checkerboard()
    depth = np.array([[1.0, 2.0, 4.0, 8.0]] * 2, np.float32)
    mask = np.array([[True, True, True, True], [True, False, True, False]])
    item = {"id": "c", "depth": depth, "mask": mask, "valid": mask}  # its default crop is none
    pred = np.array([[1.0, 1.0, 1.0, 1.0]] * 2, np.float32)
    own = resolve_scoring(bench, output_space="depth_metric")
    left = resolve_scoring(bench, output_space="depth_metric", crop="left")
    assert (own.crop, left.crop) == ("none", "left") and left.to_dict()["crop"] == "left"
    assert (scored_pixels(item, own) == mask).all()
    np.testing.assert_array_equal(scored_pixels(item, left), [[True, True, False, False], [True, False, False, False]])
    # left half, as is: p = 1 at g = 1, 2, 1 -> AbsRel = (0 + 1/2 + 0) / 3
    record = score_sample(item, pred, left)
    assert record["n_valid"] == 3 and record["abs_rel"] == pytest.approx(1 / 6)
    with pytest.raises(BenchError, match="no crop 'garg'; its crops: none, left"):
        resolve_scoring(bench, crop="garg")
    with pytest.raises(BenchError, match="nyu has no crop 'garg'; its crops: eigen, none"):
        resolve_scoring(get_protocol("nyu"), crop="garg")

    class Bare:  # a benchmark description that names no crops: only its own can be scored
        name, min_depth, max_depth, fit_max_resolution, fit_downsample = "bare", 0.1, 10.0, None, "2d"
    with pytest.raises(BenchError, match="offers only its own crop"):
        resolve_scoring(Bare(), crop="left")
    # a crop without the uncropped mask cannot be cut at scoring time
    with pytest.raises(BenchError, match="carry no uncropped mask"):
        scored_pixels({"id": "c", "depth": depth, "valid": mask}, left)


def test_kitti_scored_with_the_garg_crop_instead_of_its_own_eigen_crop():
    kitti = get_protocol("kitti")
    own, garg = resolve_scoring(kitti), resolve_scoring(kitti, crop="garg")
    assert (own.crop, garg.crop) == ("eigen", "garg")
    h, w = 352, 1216
    rng = np.random.default_rng(5)
    mask = rng.random((h, w)) < 0.3
    valid = mask.copy()
    valid[:, :100] = False  # stands for the default crop baked into valid: own scores exactly it
    item = {"id": "k", "depth": np.ones((h, w), np.float32), "valid": valid, "mask": mask}
    assert (scored_pixels(item, own) == valid).all()
    # Garg et al.'s crop on the 352x1216 benchmark frame, written out here from its fractions
    crop = np.zeros((h, w), bool)
    crop[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    np.testing.assert_array_equal(scored_pixels(item, garg), mask & crop)


def test_boundary_f1_by_default_follows_the_benchmarks_sharp_edges():
    assert resolve_scoring(Checkerboard(sharp_edges=True), "moge").boundary_f1_radius == 1
    assert resolve_scoring(Checkerboard(sharp_edges=False), "moge").boundary_f1_radius is None
    assert resolve_scoring(Checkerboard(sharp_edges=True), "marigold").boundary_f1_radius is None
    # the benchmarks of today, until their specs say: synthetic only (MoGe's choice kept)
    assert resolve_scoring(SYNTHETIC, "moge").boundary_f1_radius == 1
    assert resolve_scoring(get_protocol("nyu"), "moge").boundary_f1_radius is None


def test_table_shows_boundary_f1_of_a_run_scored_with_it(tmp_path, capsys):
    ds = load_dataset("synthetic", split="test:3")
    preds = tmp_path / "preds.h5"
    with h5py.File(preds, "w") as f:  # two exact maps (every edge found), one without any edge
        for n, item in enumerate(ds):
            f[item["id"]] = item["depth"] if n < 2 else np.linspace(1, 2, item["depth"].size,
                                                                     dtype=np.float32).reshape(item["depth"].shape)
    run = tmp_path / "run"
    assert main(["evaluate", "--dataset", "synthetic", "--max-samples", "3", "--predictions", str(preds),
                 "--boundary-f1", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    frame = pd.read_csv(run / "per_sample.csv")
    assert list(frame["boundary_f1"]) == [1.0, 1.0, 0.0]
    assert main(["table", str(run), "--metrics", "abs_rel,boundary_f1"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    assert header.endswith("| Synthetic AbsRel↓ | Synthetic BoundaryF1↑ |")
    # a fraction, not ×100, with three decimals (the † marks a --max-samples subset)
    assert row.endswith("| 0.667† |")
    assert main(["table", str(run), "--metrics", "no_such_metric"]) == 2
    assert "unknown metric(s) no_such_metric" in capsys.readouterr().err


def test_an_evaluation_protocol_must_be_complete():
    fields = {f.name for f in dataclasses.fields(EvaluationProtocol) if f.default is dataclasses.MISSING}
    assert {"align", "score", "metric_keys"} <= fields
    for spec in EVALUATION_PROTOCOLS.values():
        assert callable(spec.align) and callable(spec.score) and spec.origin == "built-in"


def test_a_finished_runs_scoring_is_recovered_and_the_dispatcher_aligns_as_scored(tmp_path):
    # the gallery bug of issue 17: a median-aligned run re-fitted by least squares showed other
    # numbers; aligned through its own scoring, the picture's AbsRel is the per_sample.csv one
    from marigold_bench.eval.protocols import scoring_of_summary

    run = tmp_path / "median"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "2",
                 "--alignment", "median", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    frame = pd.read_csv(run / "per_sample.csv")
    ds = load_dataset("synthetic", split="test:2")
    scoring = scoring_of_summary(ds.protocol, summary)
    assert scoring.to_dict() == summary["scoring"]
    with h5py.File(run / "predictions.h5") as f:
        for item, (_, row) in zip(ds, frame.iterrows()):
            pred = f[item["id"]][()]
            valid = scored_pixels(item, scoring)
            aligned, scale, _ = align(pred, item["depth"], valid, scoring)
            g = item["depth"][valid].astype(np.float64)
            # by hand: median scaling, clipped to the synthetic range
            p = pred[valid].astype(np.float64)
            assert scale == pytest.approx(np.median(g) / np.median(p), rel=1e-9)
            abs_rel = np.mean(np.abs(aligned[valid] - g) / g)
            assert abs_rel == pytest.approx(row["abs_rel"], rel=1e-7)
            assert abs_rel == pytest.approx(np.mean(np.abs(np.clip(scale * p, 1e-3, 200.0) - g) / g), rel=1e-9)
    # a run from before 0.3 (no "scoring"): marigold, least squares in the recorded fit space
    old = scoring_of_summary(ds.protocol, {"protocol": {"fit_space": "disparity"}})
    assert (old.protocol, old.alignment, old.fit_space) == ("marigold", "affine", "disparity")


def test_an_entry_point_protocol_is_registered_with_its_origin(monkeypatch):
    import importlib

    floor = dataclasses.replace(importlib.import_module("marigold_bench.eval.protocols.marigold").PROTOCOL,
                                name="ep-floor", disparity_floor=0.25)
    found = [plugins.Found(floor, "plugin my-dist (ep-floor = my_pkg:PROTOCOL)")]
    monkeypatch.setattr(plugins, "discover", lambda kind: found if kind == "protocols" else [])
    EVALUATION_PROTOCOLS.refresh()
    try:
        spec = get_evaluation_protocol("ep-floor")
        assert spec.origin == "plugin my-dist (ep-floor = my_pkg:PROTOCOL)" and spec.disparity_floor == 0.25
        assert resolve_scoring(SYNTHETIC, "ep-floor", DISPARITY_AFFINE).disparity_floor == 0.25
    finally:
        monkeypatch.undo()
        EVALUATION_PROTOCOLS.refresh()
    with pytest.raises(BenchError, match="unknown protocol 'ep-floor'; known protocols: marigold, moge"):
        get_evaluation_protocol("ep-floor")
