"""Bad input is refused in one line (exit 2), never scored silently or shown as a traceback
(issue 18: regress baselines, sample counts, split paths, protocols, escaping, tar links)."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

import fixtures_data as fd
from fixtures_rundir import write_fake_run
from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.errors import BenchError, InferenceSettingsError, SampleError, SplitNotFoundError
from marigold_bench.report.rundir import load_run

# --- regress: a baseline that cannot judge is bad input (2), never a pass (0) or a regression (1)

METRICS = {"abs_rel": 0.100, "sq_rel": 0.05, "rmse": 0.40, "rmse_log": 0.12, "log10": 0.045,
           "delta1": 0.900, "delta2": 0.97, "delta3": 0.99, "i_rmse": 0.08, "silog_rmse": 11.0}
SUMMARY = {"dataset": "synthetic", "n": 8, "n_total": 8, "metrics": METRICS,
           "settings": {"model": "/x/tiny", "steps": 1, "ensemble": 1, "seed": 1234},
           "protocol": {"name": "synthetic", "fit_space": "depth", "max_samples": 8, "root": None},
           "versions": {"marigold_bench": "0.1.0"}}


def _summary_run(tmp_path, name, metrics=None, n=8):
    # a run that scored nothing writes NaN means, as the evaluator does
    summary = copy.deepcopy(SUMMARY)
    protocol = {k: v for k, v in summary.pop("protocol").items() if k != "name"}
    summary["metrics"].update(metrics or {})
    summary["n"] = n
    return write_fake_run(tmp_path / name, protocol=protocol, **summary)


@pytest.fixture
def good_baseline(tmp_path):
    path = tmp_path / "baselines" / "b.json"
    assert main(["regress", "--baseline", str(path), _summary_run(tmp_path, "good"), "--update"]) == 0
    return path


def test_update_refuses_a_run_that_scored_nothing(tmp_path, capsys):
    empty = _summary_run(tmp_path, "empty", dict.fromkeys(METRICS, math.nan), n=0)
    path = tmp_path / "b.json"
    assert main(["regress", "--baseline", str(path), empty, "--update"]) == 2
    assert "scored 0 samples" in capsys.readouterr().err
    assert not path.exists()  # nothing written that would later pass every run
    half = _summary_run(tmp_path, "half", {"delta1": math.nan}, n=3)
    assert main(["regress", "--baseline", str(path), half, "--update"]) == 2
    assert "delta1" in capsys.readouterr().err and not path.exists()


def _edited(path: Path, edit) -> str:
    baseline = json.loads(path.read_text())
    baseline = edit(baseline) or baseline
    out = path.with_name("edited.json")
    out.write_text(json.dumps(baseline, allow_nan=True))
    return str(out)


@pytest.mark.parametrize("edit,why", [
    (lambda b: b["metrics"].update(abs_rel=math.nan), "metric abs_rel"),
    (lambda b: b.pop("n") and None, "missing n"),
    (lambda b: b.update(n=0), "n (samples scored)"),
    (lambda b: b.update(n="8"), "n (samples scored)"),
    (lambda b: b.update(metrics={}), "metrics must"),
    (lambda b: b.update(metrics=[0.1, 0.9]), "metrics must"),
    (lambda b: b["metrics"].update(abs_rel="0.1"), "metric abs_rel"),
    (lambda b: b.update(tolerances=0.1), "tolerances must"),
    (lambda b: b["tolerances"].update(abs_rel=-0.1), "tolerance of abs_rel"),
    (lambda b: b["tolerances"].update(abs_rel=math.nan), "tolerance of abs_rel"),
    (lambda b: b.update(settings=["steps"]), "settings must"),
    (lambda b: [b], "not a JSON object"),
])
def test_a_baseline_of_the_wrong_shape_is_bad_input(tmp_path, good_baseline, capsys, edit, why):
    # every one of these passed (0) or crashed (a traceback: exit 1 from Python) on a real regression
    worse = _summary_run(tmp_path, "worse", {"abs_rel": 0.2, "delta1": 0.5}, n=7)
    assert main(["regress", "--baseline", _edited(good_baseline, edit), worse]) == 2
    err = capsys.readouterr().err
    assert "edited.json" in err and why in err and "rewrite it" in err


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-0.001", "abs_rel=nan", "abs_rel=-1"])
def test_a_tolerance_that_accepts_anything_is_refused(tmp_path, good_baseline, capsys, tolerance):
    worse = _summary_run(tmp_path, "worse", {"abs_rel": 0.5})
    assert main(["regress", "--baseline", str(good_baseline), worse, f"--tolerance={tolerance}"]) == 2
    assert "--tolerance" in capsys.readouterr().err


def test_update_over_a_broken_baseline_writes_a_fresh_one(tmp_path, good_baseline, capsys):
    broken = _edited(good_baseline, lambda b: b["tolerances"].update(abs_rel=math.nan))
    assert main(["regress", "--baseline", broken, _summary_run(tmp_path, "again"), "--update"]) == 0
    rewritten = json.loads(Path(broken).read_text())
    assert rewritten["tolerances"]["abs_rel"] == 0.002 and rewritten["n"] == 8  # the default, not NaN
    assert "ignoring" in capsys.readouterr().err


# --- counts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("count", ["-1", "0"])
def test_max_samples_below_one_is_refused(tmp_path, capsys, count):
    # -1 used to score 31 of 32 samples (a Python slice), 0 to "succeed" with NaN means
    out = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", count,
                 "--out", str(out)]) == 2
    assert f"--max-samples {count}" in capsys.readouterr().err
    assert not out.exists()
    ds = load_dataset("synthetic", split="test:4")
    with pytest.raises(BenchError, match="at least 1"):
        ds.subset(int(count))


@pytest.mark.parametrize("kind", ["folder", "h5"])
def test_evaluate_with_no_prediction_found_is_an_error_naming_where_it_looked(tmp_path, capsys, kind):
    preds = tmp_path / "preds"
    preds.mkdir()
    np.save(preds / "not_a_sample.npy", np.ones((4, 4), np.float32))
    if kind == "h5":
        import h5py
        preds = tmp_path / "preds.h5"
        with h5py.File(preds, "w") as f:
            f["not_a_sample"] = np.ones((4, 4), np.float32)
    out = tmp_path / "eval"
    assert main(["evaluate", "--dataset", "synthetic", "--max-samples", "3", "--predictions", str(preds),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no prediction" in err and str(preds) in err and "Traceback" not in err
    assert not out.exists()


def test_evaluate_that_scores_nothing_exits_2_after_recording_why(tmp_path, capsys):
    ds = load_dataset("synthetic", split="test:3")
    preds = tmp_path / "preds"
    preds.mkdir()
    for sample_id in ds.ids:  # found, but none can be scored
        path = preds / f"{sample_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.full((72, 96), np.nan, np.float32))
    out = tmp_path / "eval"
    assert main(["evaluate", "--dataset", "synthetic", "--max-samples", "3", "--predictions", str(preds),
                 "--out", str(out)]) == 2
    assert "no sample was scored" in capsys.readouterr().err
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    assert [r["status"] for r in rows] == ["failed"] * 3  # the reasons stay on disk


def _config_blocks(folder: Path) -> int:
    return len(json.loads(folder.read_text())["block_out_channels"])


def test_processing_res_below_the_checkpoints_geometry_is_refused(tiny_checkpoint, tmp_path, capsys):
    from marigold_bench.inference import load_predictor

    # read off the configs: the VAE halves the image (blocks - 1) times, the UNet the latent too
    vae = 2 ** (_config_blocks(Path(tiny_checkpoint) / "vae" / "config.json") - 1)
    unet = 2 ** (_config_blocks(Path(tiny_checkpoint) / "unet" / "config.json") - 1)
    smallest = vae * unet
    assert smallest == 16  # the tiny checkpoint: 4 x 4
    for res in (7, smallest - 1):
        with pytest.raises(InferenceSettingsError, match=f"processing resolution {res} .* {smallest}"):
            load_predictor(str(tiny_checkpoint), processing_res=res, device="cpu")
    assert load_predictor(str(tiny_checkpoint), processing_res=smallest, device="cpu").processing_res == smallest
    assert load_predictor(str(tiny_checkpoint), processing_res=0, device="cpu").processing_res == 0
    assert main(["run", "--dataset", "synthetic", "--model", str(tiny_checkpoint), "--max-samples", "1",
                 "--processing-res", "7", "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    assert "processing resolution 7" in capsys.readouterr().err


# --- split lines must stay inside the data root ----------------------------------------------

@pytest.fixture
def nyu(tmp_path):
    fx = fd.build_nyu(tmp_path / "data")
    return fx


@pytest.mark.parametrize("escape", ["../outside/", "ABS"])
def test_split_lines_outside_the_data_root_are_refused(tmp_path, nyu, capsys, escape):
    # a copy of the second sample outside the benchmark folder, reachable by ../ or its absolute path
    outside = tmp_path / "data" / "outside"
    shutil.copytree(nyu.folder / "test" / "office_0005", outside)
    prefix = str(outside) + "/" if escape == "ABS" else escape
    lines = nyu.split.read_text().splitlines()
    bad = f"{prefix}rgb_0002.png {prefix}depth_0002.png {prefix}filled_0002.png"
    split = fd.write_split(tmp_path / "bad.txt", [lines[0], bad])
    with pytest.raises(SplitNotFoundError) as err:
        load_dataset("nyu", nyu.folder, split=str(split))
    message = str(err.value)
    assert "record 2" in message and f"{prefix}rgb_0002.png" in message and "data root" in message
    out = tmp_path / "run"
    assert main(["run", "--dataset", "nyu", "--data-root", str(nyu.folder), "--split", str(split),
                 "--model", "baseline:ramp", "--out", str(out)]) == 2
    assert "record 2" in capsys.readouterr().err and not out.exists()


def test_a_source_never_reads_outside_its_root(tmp_path, nyu):
    from marigold_bench.data.source import Source

    source = Source(nyu.folder)
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    for rel in ("../secret.txt", str(secret), "test/../../secret.txt"):
        assert not source.exists(rel)
        with pytest.raises(SampleError, match="outside"):
            source.read(rel)


# --- tar archives with links ----------------------------------------------------------------

def _tar_with_links(nyu, tar_path: Path, links: list[tuple[str, str, bytes]]) -> Path:
    """The NYU fixture as a tar whose named members are links: (name, target, kind SYMTYPE/LNKTYPE)."""
    replaced = {name for name, _, _ in links}
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(nyu.folder.rglob("*")):
            rel = path.relative_to(nyu.folder).as_posix()
            if path.is_file() and rel not in replaced:
                tar.add(path, arcname=rel)
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return tar_path


DEPTH2 = "test/office_0005/depth_0002.png"


@pytest.mark.parametrize("links,says", [
    ([(DEPTH2, "../../../../../etc/passwd", tarfile.SYMTYPE)], "outside the archive"),
    ([(DEPTH2, "/etc/passwd", tarfile.SYMTYPE)], "outside the archive"),
    ([(DEPTH2, "loop_a", tarfile.SYMTYPE), ("test/office_0005/loop_a", "depth_0002.png", tarfile.SYMTYPE)],
     "loop"),
    ([(DEPTH2, "depth_0002.png", tarfile.SYMTYPE)], "loop"),
    ([(DEPTH2, "test/office_0005/nothing.png", tarfile.LNKTYPE)], "not in the archive"),
    ([(DEPTH2, "../../../etc/passwd", tarfile.LNKTYPE)], "outside the archive"),
])
def test_tar_links_that_leave_the_archive_or_loop_are_one_line(tmp_path, nyu, capsys, links, says):
    tar = _tar_with_links(nyu, tmp_path / "nyu.tar", links)
    ds = load_dataset("nyu", tar, split=str(nyu.split))
    assert ds[0]["id"] == nyu.samples[0].id  # the other sample is untouched
    with pytest.raises(SampleError) as err:
        ds[1]
    assert DEPTH2 in str(err.value) and says in str(err.value) and "\n" not in str(err.value)
    args = ["run", "--dataset", "nyu", "--data-root", str(tar), "--split", str(nyu.split),
            "--model", "baseline:ramp"]
    assert main(args + ["--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert DEPTH2 in err and "Traceback" not in err
    # --skip-missing records the sample as skipped and scores the other one
    assert main(args + ["--out", str(tmp_path / "r2"), "--skip-missing"]) == 0
    rows = list(csv.DictReader((tmp_path / "r2" / "per_sample.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "skipped"]


def test_tar_links_to_a_member_read_that_member(tmp_path, nyu):
    # tar stores a second copy of a file as a hard link; a symlink inside the archive is as safe
    depth1 = "test/kitchen_0004/depth_0001.png"
    hard = _tar_with_links(nyu, tmp_path / "hard.tar", [(DEPTH2, depth1, tarfile.LNKTYPE)])
    soft = _tar_with_links(nyu, tmp_path / "soft.tar", [(DEPTH2, "../kitchen_0004/depth_0001.png",
                                                         tarfile.SYMTYPE)])
    for tar in (hard, soft):
        ds = load_dataset("nyu", tar, split=str(nyu.split))
        # sample 2 now has sample 1's depth, read from the archive (the fixture's raw values)
        np.testing.assert_allclose(ds[1]["depth"], nyu.samples[0].depth, rtol=1e-6, atol=0)


# --- rows scored under different protocols are never ranked together ----------------------

def _scored_run(folder: Path, scoring: dict, values, dataset="nyu", model="m"):
    records = [{"id": f"s{i:02d}", "abs_rel": float(v), "delta1": float(1 - v)} for i, v in enumerate(values)]
    return write_fake_run(folder, records, dataset=dataset, settings={"model": model, "steps": 1, "ensemble": 1},
                          protocol={"fit_space": scoring.get("fit_space", "depth")},
                          scoring={"protocol": "marigold", "output_space": "depth_affine_invariant",
                                   "alignment": "affine", "fit_space": "depth", **scoring})


def test_compare_names_no_winner_across_protocols(tmp_path, capsys):
    rng = np.random.default_rng(7)
    base = rng.uniform(0.05, 0.15, 20)
    a = _scored_run(tmp_path / "a", {}, base)
    # the same predictions scored with a disparity fit: every sample's AbsRel differs by 0.02
    b = _scored_run(tmp_path / "b", {"fit_space": "disparity"}, base - 0.02)
    assert main(["compare", a, b, "--metric", "abs_rel", "--resamples", "500"]) == 0
    out = capsys.readouterr().out
    assert "B better" not in out and "A better" not in out
    assert "not ranked" in out and "fit_space" in out
    # the same two numbers under one protocol do have a winner
    c = _scored_run(tmp_path / "c", {}, base - 0.02)
    assert main(["compare", a, c, "--metric", "abs_rel", "--resamples", "500"]) == 0
    assert "B better" in capsys.readouterr().out


def test_table_bolds_only_within_rows_scored_alike(tmp_path):
    from marigold_bench.report.tables import build_table, render

    # two depth-fitted rows, one disparity-fitted row that is better than both
    runs = [_scored_run(tmp_path / "a", {}, [0.10, 0.10], model="a"),
            _scored_run(tmp_path / "b", {}, [0.08, 0.08], model="b"),
            _scored_run(tmp_path / "c", {"fit_space": "disparity"}, [0.05, 0.05], model="c")]
    text = render(build_table([load_run(r) for r in runs]), "md")
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    assert "**8.0**" in rows["b, 1 step, N=1"]  # best of the depth fits
    assert "**" not in rows["c, 1 step, N=1"] and "**" not in rows["a, 1 step, N=1"]
    assert "not ranked together" in text


# --- labels are text, never markup or a formula ------------------------------------------

def test_labels_are_escaped_in_markdown_html_and_csv(tmp_path):
    from marigold_bench.report.leaderboard import write_outputs
    from marigold_bench.report.tables import build_table

    hostile = _scored_run(tmp_path / "x", {}, [0.1, 0.2], model="=SUM(1;2)<script>x<script>")
    minus = _scored_run(tmp_path / "y", {"fit_space": "disparity"}, [0.3, 0.4], model="-2+3")
    table = build_table([load_run(hostile), load_run(minus)])
    paths = write_outputs(table, str(tmp_path / "board"))
    md = Path(paths["md"]).read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "<script>" not in Path(paths["html"]).read_text()
    rows = list(csv.reader(io.StringIO(Path(paths["csv"]).read_text())))
    methods = [r[0] for r in rows[1:]]
    assert methods[0].startswith("'=SUM(1;2)<script>") and methods[1] == "'-2+3, 1 step, N=1"
    # numbers stay numbers: AbsRel ×100 of the runs, 15 and 35, however they are signed
    header = rows[0]
    assert [float(r[header.index("nyu_abs_rel")]) for r in rows[1:]] == pytest.approx([15.0, 35.0])


def test_negative_numbers_stay_numbers_in_csv():
    from marigold_bench.report.tables import Row, Table, render_csv

    table = Table(["nyu"], ["abs_rel"], [Row("a", values={("nyu", "abs_rel"): -0.5})])
    rows = list(csv.reader(io.StringIO(render_csv(table))))
    assert rows[1][rows[0].index("nyu_abs_rel")] == "-0.5"


def test_a_run_summary_of_the_wrong_shape_is_bad_input_to_regress(tmp_path, good_baseline, capsys):
    folder = Path(_summary_run(tmp_path, "odd"))
    summary = json.loads((folder / "summary.json").read_text())
    summary["metrics"] = [0.1]
    (folder / "summary.json").write_text(json.dumps(summary))
    assert main(["regress", "--baseline", str(good_baseline), str(folder)]) == 2
    assert "metrics must be an object" in capsys.readouterr().err
