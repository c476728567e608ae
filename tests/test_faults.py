"""Fault injection: a full disk, kills while writing, damaged caches, races on the run lock,
and output folders that must be refused (issue 18).

Every run here is the image-independent ``baseline:ramp`` on a few synthetic scenes, so the
whole file takes seconds. A *clean* run into its own folder is the independent reference: a
fault must never change a single number of what gets scored, only which samples are predicted
again or reported as failed.
"""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import os
import time

import h5py
import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.base import DepthDataset, make_item
from marigold_bench.data.protocol import get_protocol
from marigold_bench.inference.baseline import BaselinePredictor

N = 4
RUN = ["run", "--dataset", "synthetic", "--split", f"test:{N}", "--model", "baseline:ramp"]


def _run(out, *extra):
    return main([*RUN, "--out", str(out), *extra])


def _csv(folder):
    return pd.read_csv(folder / "per_sample.csv", dtype={"id": str})


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("marigold-bench")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The reference: the same run with nothing going wrong."""
    out = tmp_path_factory.mktemp("clean") / "run"
    assert _run(out) == 0
    return out


def _half_zero(values):
    # what a full disk left in 0.3's caches: chunks that never reached the disk read as zeros
    values = np.array(values, dtype=np.float32, copy=True)
    if values.ndim >= 2:
        values[..., values.shape[-2] // 2:, :] = 0
    return values


@pytest.fixture
def failing_writer(monkeypatch):
    """HDF5 writes that silently lose half of every array (and raise nothing)."""
    create, setitem = h5py.Group.create_dataset, h5py.Dataset.__setitem__

    def create_lossy(self, name, shape=None, dtype=None, data=None, **kw):
        return create(self, name, shape=shape, dtype=dtype, data=None if data is None else _half_zero(data), **kw)

    def set_lossy(self, key, value):
        return setitem(self, key, _half_zero(value) if np.ndim(value) >= 2 else value)

    monkeypatch.setattr(h5py.Group, "create_dataset", create_lossy)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", set_lossy)


def _damage(path, sample_id, members=False, merged=True):
    """Zero half of an entry behind the cache's back (as a failed write would have)."""
    with h5py.File(path, "a") as f:
        if merged:
            f[sample_id][...] = _half_zero(f[sample_id][()])
        if members:
            key = f"__members__/{sample_id}"
            f[key][...] = _half_zero(f[key][()])


# -- 1. a full disk ------------------------------------------------------------------------

def test_lost_writes_are_predicted_again_on_resume_never_scored(clean, tmp_path, failing_writer, monkeypatch):
    out = tmp_path / "run"
    assert _run(out) == 0      # the lost writes go unnoticed while writing (HDF5 raises nothing)
    monkeypatch.undo()         # space is back
    with pytest.warns(UserWarning, match="checksum"):
        assert _run(out) == 0
    pd.testing.assert_frame_equal(_csv(out), _csv(clean))
    assert (_csv(out)["status"] == "ok").all()


class Counting(BaselinePredictor):
    """The ramp baseline, noting which samples it was asked to predict."""

    def __init__(self):
        super().__init__("ramp")
        self.asked = []

    def predict(self, jobs):
        self.asked += [job[0] for job in jobs]
        return super().predict(jobs)


def test_only_the_damaged_entries_are_recomputed(tmp_path):
    from marigold_bench.eval.evaluator import run_predictor

    dataset = load_dataset("synthetic", split=f"test:{N}")
    out = tmp_path / "run"
    first = Counting()
    run_predictor(dataset, first, str(out), progress=False)
    assert first.asked == dataset.ids
    reference = _csv(out)
    ids = dataset.ids
    _damage(out / "predictions.h5", ids[1], members=True)    # members and merged map lost
    _damage(out / "predictions.h5", ids[2])                  # merged map lost, members intact
    again = Counting()
    with pytest.warns(UserWarning, match="checksum"):
        run_predictor(dataset, again, str(out), progress=False)
    assert again.asked == [ids[1]]      # ids[2] is merged again from its members: no prediction
    pd.testing.assert_frame_equal(_csv(out), reference)


def test_rescore_and_evaluate_report_a_damaged_entry_as_failed(clean, tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(run) == 0
    bad = _csv(clean)["id"][2]
    _damage(run / "predictions.h5", bad)
    capsys.readouterr()
    assert main(["rescore", str(run), "--out", str(tmp_path / "rescored")]) == 0
    assert main(["evaluate", "--dataset", "synthetic", "--split", f"test:{N}", "--predictions",
                 str(run / "predictions.h5"), "--out", str(tmp_path / "evaluated")]) == 0
    reference = _csv(clean).set_index("id")
    for folder in ("rescored", "evaluated"):
        frame = _csv(tmp_path / folder).set_index("id")
        assert frame.loc[bad, "status"] == "failed" and "checksum" in frame.loc[bad, "message"]
        assert np.isnan(frame.loc[bad, "abs_rel"])
        others = [i for i in reference.index if i != bad]
        assert (frame.loc[others, "status"] == "ok").all()
        np.testing.assert_allclose(frame.loc[others, "abs_rel"], reference.loc[others, "abs_rel"], rtol=1e-7)
        summary = json.loads((tmp_path / folder / "summary.json").read_text())
        assert summary["n"] == N - 1 and summary["n_failed"] == 1


def _killed_at(stage, nth, out, queue):
    # a child process that dies like kill -9 at the nth time an entry write reaches ``stage``
    import marigold_bench.eval.cache as cache

    seen = {"n": 0}

    def fault(reached):
        if reached == stage:
            seen["n"] += 1
            if seen["n"] == nth:
                os._exit(77)
    cache._fault_point = fault
    queue.put(_run(out))


@pytest.mark.parametrize("stage", ["created", "data", "checksum"])
def test_a_kill_during_each_write_stage_resumes_to_the_clean_numbers(clean, tmp_path, stage):
    out = tmp_path / "run"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_killed_at, args=(stage, 4, out, queue))   # 4th entry: sample 1's merged map
    child.start()
    child.join(120)
    assert child.exitcode == 77, "the child was not stopped at the write stage"
    assert (out / "run.lock").exists()   # left behind by the dead process, taken over below
    if stage == "checksum":              # the entry was complete: simply resumed
        assert _run(out) == 0
    else:                                # cut short: found, and that entry alone merged again
        with pytest.warns(UserWarning, match="incomplete"):
            assert _run(out) == 0
    pd.testing.assert_frame_equal(_csv(out), _csv(clean))


def test_too_little_free_space_is_one_line_before_writing(tmp_path, monkeypatch, capsys):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    assert _run(tmp_path / "run") == 2
    _one_line_error(capsys, "disk full")
    with h5py.File(tmp_path / "run" / "predictions.h5", "r") as f:
        assert [k for k in f] == []   # nothing half-written


def test_enospc_inside_hdf5_is_one_line(tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(h5py.Group, "create_dataset", full)
    assert _run(tmp_path / "run") == 2
    _one_line_error(capsys, "disk full")


def test_enospc_at_the_lock_is_one_line(tmp_path, monkeypatch, capsys):
    real_open = os.open

    def no_space(path, *args, **kwargs):
        if os.path.basename(os.fspath(path)).startswith("run.lock"):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", no_space)
    assert _run(tmp_path / "run") == 2
    _one_line_error(capsys, "disk full")


def test_enospc_at_the_results_is_one_line_and_keeps_the_old_results(clean, tmp_path, monkeypatch, capsys):
    import shutil
    import tempfile

    out = tmp_path / "run"
    shutil.copytree(clean, out)
    before = (out / "summary.json").read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(tempfile, "mkstemp", no_space)
    assert _run(out) == 2
    _one_line_error(capsys, "disk full")
    assert (out / "summary.json").read_bytes() == before
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]


# -- 2. a smaller run never replaces a fuller one -----------------------------------------

def test_a_subset_run_never_replaces_a_fuller_run(clean, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(clean, out)
    files = {name: (out / name).read_bytes() for name in ("summary.json", "per_sample.csv")}
    assert _run(out, "--max-samples", "2") == 2
    line = _one_line_error(capsys, str(out), f"{N} samples", "--out")
    assert "2" in line
    assert {name: (out / name).read_bytes() for name in files} == files
    # the same number of samples again, or more, is a rerun: allowed
    assert _run(out) == 0


def test_a_subset_is_marked_in_its_summary_and_in_table(clean, tmp_path, capsys):
    sub = tmp_path / "sub"
    assert _run(sub, "--max-samples", "2") == 0
    summary = json.loads((sub / "summary.json").read_text())
    assert summary["subset"] == {"n": 2, "of": N}     # the first 2 of the split's 4
    assert "subset" not in json.loads((clean / "summary.json").read_text())
    capsys.readouterr()
    assert main(["table", str(sub)]) == 0
    shown = capsys.readouterr().out
    assert "†" in shown and "first 2 of 4" in shown
    assert main(["table", str(sub), "--format", "csv"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out))["subset"].tolist() == ["synthetic: first 2 of 4"]
    assert main(["table", str(clean)]) == 0
    assert "†" not in capsys.readouterr().out


# -- 3. sample ids that are path prefixes of each other ------------------------------------

class Nested(DepthDataset):
    """Three scenes whose ids are path prefixes of each other, in either order."""

    def __init__(self, ids):
        self.protocol = get_protocol("synthetic")
        self.ids = list(ids)
        self.source = load_dataset("synthetic", split="test:3")

    def load(self, index):
        item = self.source[index]
        return make_item(self.ids[index], item["rgb"], item["depth"], item["valid"])


@pytest.mark.parametrize("ids", [["a/b", "a/b/c", "a/b/c/d"], ["a/b/c/d", "a/b/c", "a/b"]])
def test_ids_that_are_path_prefixes_of_each_other(tmp_path, ids):
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.eval.evaluator import run_predictor
    from marigold_bench.eval.predictions import PredictionSource

    dataset = Nested(ids)
    out = tmp_path / "run"
    first = Counting()
    summary = run_predictor(dataset, first, str(out), progress=False)
    assert summary["n"] == 3
    again = Counting()
    run_predictor(dataset, again, str(out), progress=False)
    assert again.asked == []                      # every one found in the cache
    with PredictionCache(out / "predictions.h5") as cache:
        assert sorted(cache.ids()) == sorted(ids)
        source = PredictionSource(out / "predictions.h5")
        for index, sample_id in enumerate(ids):
            h, w = dataset[index]["depth"].shape
            expected = 1.0 - (np.arange(h, dtype=np.float32) + 0.5) / h   # the ramp, by hand
            np.testing.assert_allclose(cache.prediction(sample_id)[:, 0], expected, rtol=1e-6)
            np.testing.assert_allclose(source.get(sample_id)[:, w - 1], expected, rtol=1e-6)
        source.close()


# -- 4. the run lock -----------------------------------------------------------------------

class OneProcess:
    """The launch context of a plain single-process run."""

    is_main, rank, world = True, 0, 1

    def broadcast(self, value):
        return value


def _dead_pid():
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=lambda: None)
    child.start()
    child.join()
    return child.pid


def _race(out, start, queue):
    from marigold_bench.errors import BenchError
    from marigold_bench.eval.distributed import RunLock

    lock = RunLock(str(out), OneProcess())
    start.wait()
    try:
        with lock:
            queue.put("won")
            time.sleep(1.0)   # hold it while the other one tries
    except BenchError as exc:
        queue.put(f"refused: {exc}")


def test_two_relaunches_racing_on_a_stale_lock_exactly_one_wins(tmp_path, monkeypatch):
    import socket

    from marigold_bench.eval.distributed import RunLock

    judge = RunLock._stale

    def slow_judge(self):
        stale = judge(self)
        time.sleep(0.3)   # widen the window between judging the lock stale and acting on it
        return stale
    monkeypatch.setattr(RunLock, "_stale", slow_judge)
    ctx = multiprocessing.get_context("fork")
    for attempt in range(3):
        out = tmp_path / f"run{attempt}"
        out.mkdir()
        (out / "run.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
        start, queue = ctx.Event(), ctx.Queue()
        racers = [ctx.Process(target=_race, args=(out, start, queue)) for _ in range(2)]
        for racer in racers:
            racer.start()
        start.set()
        for racer in racers:
            racer.join(30)
        results = sorted(queue.get(timeout=5) for _ in racers)
        assert [r == "won" for r in results].count(True) == 1, results
        assert "in use" in results[0]
        assert not (out / "run.lock").exists()   # the winner released it


def test_a_held_lock_or_cache_is_never_advised_away(tmp_path, capsys):
    import socket

    out = tmp_path / "run"
    out.mkdir()
    # a live launch on this host: this very process
    (out / "run.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    assert _run(out) == 2
    line = _one_line_error(capsys, "in use", "wait")
    assert "delete" not in line and "move" not in line


@pytest.mark.skipif(os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
                    reason="HDF5 file locking is off here")
def test_a_cache_open_elsewhere_is_never_advised_away(tmp_path):
    from marigold_bench.errors import BenchError
    from marigold_bench.eval.cache import PredictionCache

    path = tmp_path / "predictions.h5"
    PredictionCache(path, {"model": "m"}).close()
    ctx = multiprocessing.get_context("fork")
    opened, done = ctx.Event(), ctx.Event()

    def hold():
        with h5py.File(path, "a"):
            opened.set()
            done.wait(30)
    holder = ctx.Process(target=hold)
    holder.start()
    try:
        assert opened.wait(30)
        with pytest.raises(BenchError) as caught:
            PredictionCache(path, {"model": "m"})
    finally:
        done.set()
        holder.join(30)
    message = str(caught.value)
    assert "another process" in message and "move" not in message and "\n" not in message


# -- 5. output folders ---------------------------------------------------------------------

@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: an output folder must be refused before that."""
    import marigold_bench.commands.run as run_command

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")
    monkeypatch.setattr(run_command, "build_predictor", refuse)


def test_a_file_valued_out_is_refused_before_the_model_loads(tmp_path, no_model, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert _run(afile) == 2
    _one_line_error(capsys, str(afile), "not a folder")
    assert _run(afile / "below") == 2
    _one_line_error(capsys, str(afile), "not a folder")
    assert main(["evaluate", "--dataset", "synthetic", "--split", f"test:{N}", "--predictions",
                 str(tmp_path), "--out", str(afile)]) == 2
    _one_line_error(capsys, str(afile), "not a folder")
    assert afile.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_out_is_refused_before_the_model_loads(tmp_path, no_model, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert _run(locked / "run") == 2
    _one_line_error(capsys, "not writable")


def test_evaluate_never_writes_over_a_run(clean, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(clean, run)
    files = {name: (run / name).read_bytes() for name in ("summary.json", "per_sample.csv")}
    capsys.readouterr()
    assert main(["evaluate", "--dataset", "synthetic", "--split", f"test:{N}", "--predictions",
                 str(run / "predictions.h5"), "--out", str(run)]) == 2
    _one_line_error(capsys, str(run), "predictions.h5")
    assert {name: (run / name).read_bytes() for name in files} == files


def test_run_never_writes_over_a_rescore(clean, tmp_path, capsys):
    rescored = tmp_path / "rescored"
    assert main(["rescore", str(clean), "--out", str(rescored)]) == 0
    files = {name: (rescored / name).read_bytes() for name in ("summary.json", "per_sample.csv")}
    capsys.readouterr()
    assert _run(rescored) == 2
    _one_line_error(capsys, str(rescored), "rescore")
    assert {name: (rescored / name).read_bytes() for name in files} == files
    assert not (rescored / "predictions.h5").exists()


GARBLED = [(0, 64), (96, 200), (400, 800), (1600, 3000)]


@pytest.mark.parametrize("start,end", GARBLED)
def test_damaged_cache_metadata_is_one_line_in_run_and_evaluate(clean, tmp_path, capsys, start, end):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(clean, run)
    path = run / "predictions.h5"
    data = bytearray(path.read_bytes())
    for i in range(start, min(end, len(data))):
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    capsys.readouterr()
    for argv in (RUN + ["--out", str(run)],
                 ["evaluate", "--dataset", "synthetic", "--split", f"test:{N}", "--predictions", str(path),
                  "--out", str(tmp_path / "evaluated")]):
        code = main(argv)
        assert code in (0, 2)
        if code == 2:
            line = _one_line_error(capsys)
            if "no sample was scored" in line:   # every entry unreadable: each row says where and why
                messages = _csv(tmp_path / "evaluated")["message"]
                assert all(str(path) in m and "cannot be read" in m for m in messages)
            else:
                assert str(path) in line and ("damaged" in line or "HDF5" in line)
        else:   # damage where nothing is read: what is scored is still the clean run's numbers
            frame = _csv(run if argv[0] == "run" else tmp_path / "evaluated")
            ok = frame["status"] == "ok"
            np.testing.assert_allclose(frame["abs_rel"][ok], _csv(clean)["abs_rel"][ok], rtol=1e-7)


# -- caches of 0.2/0.3 and the parts of sharded runs ----------------------------------------

def test_entries_without_a_checksum_are_read_as_before(clean, tmp_path, capsys):
    """Caches of 0.2/0.3 carry no checksum: they are trusted as they always were."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(clean, run)
    with h5py.File(run / "predictions.h5", "a") as f:
        entries = []
        f.visititems(lambda k, o: entries.append(o) if isinstance(o, h5py.Dataset) else None)
        assert len(entries) == 2 * N
        for entry in entries:
            del entry.attrs["sha256"]
    again = Counting()
    from marigold_bench.eval.evaluator import run_predictor

    run_predictor(load_dataset("synthetic", split=f"test:{N}"), again, str(run), progress=False)
    assert again.asked == []
    pd.testing.assert_frame_equal(_csv(run), _csv(clean))
    assert main(["rescore", str(run), "--out", str(tmp_path / "rescored")]) == 0
    pd.testing.assert_frame_equal(_csv(tmp_path / "rescored"), _csv(clean))


def test_a_damaged_entry_of_a_rank_part_is_not_folded(tmp_path):
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.eval.distributed import fold_parts, part_path

    out = tmp_path / "run"
    good, bad = np.full((3, 4), 0.25, np.float32), np.full((3, 4), 0.75, np.float32)
    with PredictionCache(part_path(str(out), 1), {"model": "m"}) as part:
        part.put_prediction("x/good", good, {"n_members": 1})
        part.put_prediction("x/bad", bad, {"n_members": 1})
        part.put_members("x/bad", bad[None])
    _damage(part_path(str(out), 1), "x/bad", members=True)
    with PredictionCache(out / "predictions.h5", {"model": "m"}) as cache:
        with pytest.warns(UserWarning, match="checksum"):
            assert fold_parts(str(out), cache) == 1
        assert cache.ids() == ["x/good"] and cache.member_ids() == []
        np.testing.assert_array_equal(cache.prediction("x/good"), good)
    assert not os.path.exists(part_path(str(out), 1))


def test_rescore_refuses_a_file_valued_out_with_the_same_guard(clean, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["rescore", str(clean), "--out", str(afile / "below")]) == 2
    _one_line_error(capsys, str(afile), "not a folder")


def test_an_id_named_like_the_caches_own_groups_clobbers_nothing(tmp_path):
    from marigold_bench.eval.cache import PredictionCache

    ones, zeros = np.ones((1, 2, 2), np.float32), np.zeros((2, 2), np.float32)
    with PredictionCache(tmp_path / "p.h5", {"model": "m"}) as cache:
        cache.put_members("x", ones)
        assert cache.prediction("__members__/x") is None       # x's members are not a prediction
        cache.put_prediction("__members__/x", zeros)
        np.testing.assert_array_equal(cache.members("x"), ones)
        np.testing.assert_array_equal(cache.prediction("__members__/x"), zeros)
        assert cache.ids() == ["__members__/x"] and cache.member_ids() == ["x"]
