"""A run directory holds the predictions of one benchmark and split: a run of another one into it
is refused before anything is predicted or written, and a run of the same split resumes.

Sample ids repeat across benchmarks and splits, and the cache is keyed by id alone: before this
rule a second benchmark whose ids coincided read the first one's cached predictions and replaced
its results. Runs here use ``baseline:ramp`` on a few synthetic scenes (seconds); the other
benchmark is a copy of the synthetic spec under another name (the very same ids), added with
``--include``; the other split of a split-file benchmark is a second split file listing the same
samples (the same ids, another sha256).
"""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

from marigold_bench import plugins
from marigold_bench.cli import main
from test_faults import _one_line_error  # one reading of "a single error line" for the suite

N = 4
RAMP = ["--model", "baseline:ramp"]

#: a second benchmark: the synthetic scenes under another name (same ids, same describe())
COPY = '''
import dataclasses
from marigold_bench.data.synthetic import SPEC as _SYNTHETIC
SPEC = dataclasses.replace(_SYNTHETIC, name="synthcopy", title="Synthetic copy")
'''


@pytest.fixture(autouse=True)
def _no_includes(monkeypatch):
    # --include writes os.environ; set then delete so that monkeypatch restores it after the test
    monkeypatch.setenv(plugins.INCLUDE_ENV, "")
    monkeypatch.delenv(plugins.INCLUDE_ENV)


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: the folder must be refused before that."""
    import marigold_bench.commands.run as run_command

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the run folder was checked")
    monkeypatch.setattr(run_command, "build_predictor", refuse)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A finished run of the synthetic test split's first four scenes."""
    out = tmp_path_factory.mktemp("samples") / "run"
    assert main(["run", "--dataset", "synthetic", "--split", f"test:{N}", *RAMP, "--out", str(out)]) == 0
    return out


def _copy(run, tmp_path, name="run"):
    out = tmp_path / name
    shutil.copytree(run, out)
    return out


def _snapshot(folder):
    """Every file of a folder, by name, as bytes (the cache included)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _record(folder):
    with h5py.File(folder / "predictions.h5", "r") as f:
        value = f.attrs.get("samples")
    return None if value is None else json.loads(value)


def _synthcopy(tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "synthcopy.py").write_text(COPY)
    return ["--include", str(folder)]


# -- another benchmark ----------------------------------------------------------------------

def test_another_benchmark_with_the_same_ids_is_refused_and_nothing_changes(
        synthetic_run, tmp_path, capsys, no_model):
    out = _copy(synthetic_run, tmp_path)
    before = _snapshot(out)
    capsys.readouterr()
    argv = [*_synthcopy(tmp_path), "run", "--dataset", "synthcopy", "--split", f"test:{N}", *RAMP, "--out", str(out)]
    assert main(argv) == 2
    line = _one_line_error(capsys, str(out), "synthetic (split synthetic:test)", "synthcopy (split synthetic:test)",
                           f"--out {out}-synthcopy")
    assert "summary.json" in line
    assert _snapshot(out) == before
    # an interrupted run (no summary yet): its cache's own record refuses it just the same
    (out / "summary.json").unlink()
    (out / "per_sample.csv").unlink()
    before = _snapshot(out)
    assert main(argv) == 2
    _one_line_error(capsys, "predictions.h5", "synthcopy", "--out")
    assert _snapshot(out) == before


def test_the_cache_itself_refuses_another_benchmark(synthetic_run, tmp_path):
    """The check the run makes while holding its lock (any caller of run_predictor, and a folder
    whose early check could not read the record), independent of the command's."""
    from marigold_bench.errors import CacheMismatchError, OtherSamplesError
    from marigold_bench.eval.cache import PredictionCache

    out = _copy(synthetic_run, tmp_path)
    before = _snapshot(out)
    with h5py.File(out / "predictions.h5", "r") as f:
        settings = json.loads(f.attrs["settings"])
    other = {"dataset": "synthcopy", "split": "synthetic:test"}
    with pytest.raises(OtherSamplesError, match="synthcopy") as caught:
        PredictionCache(out / "predictions.h5", settings, samples=other)
    assert isinstance(caught.value, CacheMismatchError) and "\n" not in str(caught.value)
    assert _snapshot(out) == before
    # the same samples open it; its record is what the run was of, the count left out
    with PredictionCache(out / "predictions.h5", settings,
                         samples={"dataset": "synthetic", "split": "synthetic:test"}) as cache:
        ids = (out / "per_sample.csv").read_text().splitlines()[1:]
        assert sorted(cache.ids()) == sorted(line.split(",")[0] for line in ids) and len(ids) == N


# -- another split --------------------------------------------------------------------------

def test_another_split_of_the_synthetic_set_is_refused(synthetic_run, tmp_path, capsys, no_model):
    out = _copy(synthetic_run, tmp_path)
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["run", "--dataset", "synthetic", "--split", f"val:{N}", *RAMP, "--out", str(out)]) == 2
    _one_line_error(capsys, "split synthetic:test", "split synthetic:val", f"--out {out}-val")
    assert _snapshot(out) == before


def _nyu_with_two_splits(tmp_path):
    from fixtures_data import build, write_split

    fx = build("nyu", tmp_path)
    # the same RGB images (the same ids, in the same order) scored against the filled-in depth
    # maps: another split file, and other ground truth
    lines = [" ".join(line.split()[i] for i in (0, 2, 1)) for line in fx.split.read_text().splitlines()]
    other = write_split(tmp_path / "splits" / "nyu_filled.txt", lines)
    return fx, other


def test_another_split_file_with_the_same_ids_is_refused_by_run_and_rescore(tmp_path, capsys):
    import hashlib

    fx, other = _nyu_with_two_splits(tmp_path)
    out = tmp_path / "run"
    base = ["run", "--dataset", "nyu", "--data-root", str(fx.folder), *RAMP, "--out", str(out)]
    assert main([*base, "--split", str(fx.split)]) == 0
    assert _record(out) == {"dataset": "nyu", "split_sha256": hashlib.sha256(fx.split.read_bytes()).hexdigest()}
    before = _snapshot(out)
    capsys.readouterr()
    assert main([*base, "--split", str(other)]) == 2
    theirs, ours = (hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in (fx.split, other))
    _one_line_error(capsys, f"nyu (split sha256 {theirs})", f"nyu (split sha256 {ours})", "--out")
    assert _snapshot(out) == before
    # rescore reloading the run with the other file would score its predictions against it
    assert main(["rescore", str(out), "--split", str(other), "--out", str(tmp_path / "rescored")]) == 2
    _one_line_error(capsys, "nyu (split sha256", "--split")
    assert not (tmp_path / "rescored").exists()
    # the same split file at another path is the same split: the run resumes
    moved = shutil.copy(fx.split, tmp_path / "nyu_test_copy.txt")
    assert main([*base, "--split", str(moved)]) == 0
    assert (out / "per_sample.csv").read_bytes() == before["per_sample.csv"]


# -- the same split -------------------------------------------------------------------------

def test_the_same_split_resumes_at_any_length(synthetic_run, tmp_path, capsys):
    clean = json.loads((synthetic_run / "summary.json").read_text())["protocol"]
    # the record: the benchmark and its split's recipe, not how many scenes were run
    assert _record(synthetic_run) == {"dataset": "synthetic", "split": "synthetic:test",
                                      "first_seed": clean["first_seed"], "resolution": clean["resolution"]}
    out = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--split", "test:2", *RAMP, "--out", str(out)]) == 0
    # more samples of the same split into it: resumed, to the clean run's numbers
    assert main(["run", "--dataset", "synthetic", "--split", f"test:{N}", *RAMP, "--out", str(out)]) == 0
    assert (out / "per_sample.csv").read_bytes() == (synthetic_run / "per_sample.csv").read_bytes()
    # --max-samples of the same split: as before, refused only where it would replace a fuller run
    capsys.readouterr()
    assert main(["run", "--dataset", "synthetic", "--split", f"test:{N}", "--max-samples", "2", *RAMP,
                 "--out", str(out)]) == 2
    _one_line_error(capsys, f"{N} samples", "--out")
    assert main(["run", "--dataset", "synthetic", "--split", f"test:{N}", *RAMP, "--out", str(out)]) == 0


# -- caches written before the record ------------------------------------------------------

def _strip_record(folder):
    with h5py.File(folder / "predictions.h5", "a") as f:
        del f.attrs["samples"]


def test_an_old_cache_resumes_when_its_summary_names_the_same_benchmark(synthetic_run, tmp_path, capsys):
    out = _copy(synthetic_run, tmp_path)
    _strip_record(out)
    assert _record(out) is None
    assert main(["run", "--dataset", "synthetic", "--split", f"test:{N}", *RAMP, "--out", str(out)]) == 0
    assert (out / "per_sample.csv").read_bytes() == (synthetic_run / "per_sample.csv").read_bytes()
    assert _record(out) == _record(synthetic_run)  # taken over: recorded from now on
    # its summary names another benchmark: refused, though the cache records nothing
    old = _copy(synthetic_run, tmp_path, "old")
    _strip_record(old)
    before = _snapshot(old)
    capsys.readouterr()
    assert main([*_synthcopy(tmp_path), "run", "--dataset", "synthcopy", "--split", f"test:{N}", *RAMP,
                 "--out", str(old)]) == 2
    _one_line_error(capsys, "summary.json", "synthcopy")
    assert _snapshot(old) == before


def test_an_old_cache_without_a_summary_is_taken_over_as_before(synthetic_run, tmp_path):
    out = _copy(synthetic_run, tmp_path)
    _strip_record(out)
    for name in ("summary.json", "per_sample.csv"):
        (out / name).unlink()
    assert main([*_synthcopy(tmp_path), "run", "--dataset", "synthcopy", "--split", f"test:{N}", *RAMP,
                 "--out", str(out)]) == 0
    assert _record(out)["dataset"] == "synthcopy"
    assert json.loads((out / "summary.json").read_text())["dataset"] == "synthcopy"


def test_a_rank_part_of_another_split_is_never_folded(tmp_path):
    from marigold_bench.errors import BenchError
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.eval.distributed import fold_parts, part_path

    settings = {"model": "m", "seed": 1}
    ours, theirs = ({"dataset": "synthetic", "split": f"synthetic:{s}"} for s in ("test", "val"))
    with PredictionCache(part_path(str(tmp_path), 1), settings, samples=theirs) as part:
        part.put_prediction("test/indoor_00000", [[1.0, 2.0]])
    with PredictionCache(tmp_path / "predictions.h5", settings, samples=ours) as cache:
        with pytest.raises(BenchError, match="synthetic:val"):
            fold_parts(str(tmp_path), cache)
        assert cache.ids() == []
    assert (tmp_path / "parts" / "rank1.h5").is_file()  # left for the user to move away


def test_evaluate_refuses_a_run_s_cache_of_another_benchmark_with_the_same_ids(synthetic_run, tmp_path, capsys):
    cache = str(synthetic_run / "predictions.h5")
    capsys.readouterr()
    argv = [*_synthcopy(tmp_path), "evaluate", "--dataset", "synthcopy", "--split", f"test:{N}",
            "--predictions", cache, "--out", str(tmp_path / "ev")]
    assert main(argv) == 2
    _one_line_error(capsys, "holds predictions of synthetic (split synthetic:test)", "of synthcopy")
    assert not (tmp_path / "ev").exists()
    # the run's own benchmark and split: read as before
    assert main(["evaluate", "--dataset", "synthetic", "--split", f"test:{N}", "--predictions", cache,
                 "--out", str(tmp_path / "ok")]) == 0
