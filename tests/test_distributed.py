"""Sharded evaluation under torchrun (gloo, CPU): equal to one process, resumable, locked."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import os, sys
    import numpy as np
    from marigold_bench.data import load_dataset
    from marigold_bench.eval.evaluator import run_predictor
    from marigold_bench.inference.baseline import BaselinePredictor

    class ImageDependent(BaselinePredictor):
        """Members that depend on the image and the member index, so mix-ups would show."""
        def __init__(self, die_after=None):
            super().__init__("ramp", ensemble=3)
            self.done, self.die_after = 0, die_after
        def predict(self, jobs):
            rank = int(os.environ.get("RANK", 0))
            if self.die_after is not None and rank == 1 and self.done >= self.die_after:
                os._exit(17)  # a rank dying hard, mid-run
            self.done += len(jobs)
            log = os.environ.get("PREDICT_LOG")
            if log:  # which samples this process predicted, one line each, written at once
                with open(f"{log}.rank{rank}", "a") as f:
                    f.writelines(sid + "\\n" for sid, _, _ in jobs)
            out = []
            for sid, rgb, members in jobs:
                g = rgb.mean(-1) / 255.0
                out.append(np.stack([(g + 0.1 * k) / 1.5 for k in members]).astype(np.float32))
            return out
        def merge(self, members, shape):
            return members.mean(0), None

    out, die_after = sys.argv[1], (int(sys.argv[2]) if len(sys.argv) > 2 else None)
    ds = load_dataset("synthetic", split="test:9")
    summary = run_predictor(ds, ImageDependent(die_after), out, progress=False)
    # one write per rank: both ranks share the pipe, and print's pieces could interleave
    sys.stdout.write(f"RESULT {summary['n']} {summary['timing']['processes']}\\n")
    sys.stdout.flush()
''')


def _launch(tmp_path, nproc, out, *extra, log=None):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if log:
        env["PREDICT_LOG"] = str(log)
    if nproc == 1:
        cmd = [sys.executable, str(script), str(out), *extra]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--standalone", str(script), str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    result = _launch(tmp, 1, tmp / "run")
    assert result.returncode == 0, result.stderr
    return (tmp / "run" / "per_sample.csv").read_text()


def test_two_processes_equal_one(tmp_path, single):
    result = _launch(tmp_path, 2, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RESULT 9 2" in result.stdout
    assert (tmp_path / "run" / "per_sample.csv").read_text() == single
    assert not list((tmp_path / "run" / "parts").glob("*.h5"))  # folded into predictions.h5


def _logged(log, rank) -> list[str]:
    path = log.with_name(f"{log.name}.rank{rank}")
    return path.read_text().split() if path.exists() else []


def test_killed_rank_resumes_even_with_another_world_size(tmp_path, single):
    out = tmp_path / "run"
    died = _launch(tmp_path, 2, out, "2", log=tmp_path / "first")
    assert died.returncode != 0
    assert not (out / "per_sample.csv").exists()
    finished_by_dead_rank = _logged(tmp_path / "first", 1)
    assert len(finished_by_dead_rank) == 2  # rank 1 completed two samples, then died in the third
    started_by_rank0 = _logged(tmp_path / "first", 0)
    # relaunch as a single process: it folds what the dead launch finished and does the rest
    again = _launch(tmp_path, 1, out, log=tmp_path / "second")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "per_sample.csv").read_text() == single
    # finished work was reused, not redone: the relaunch predicted none of the dead rank's
    # finished samples, each remaining sample exactly once, and only those
    redone = _logged(tmp_path / "second", 0)
    assert len(redone) == len(set(redone)) and not set(redone) & set(finished_by_dead_rank)
    all_ids = {line.split(",")[0] for line in single.splitlines()[1:]}
    assert set(redone) | set(finished_by_dead_rank) | set(started_by_rank0) == all_ids
    assert len(redone) <= 9 - len(finished_by_dead_rank)


def test_second_launch_on_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # a live process (this test) holds the lock
    (out / "run.lock").write_text('{"host": "%s", "pid": %d}' % (os.uname().nodename, os.getpid()))
    result = _launch(tmp_path, 1, out)
    assert result.returncode != 0 and "in use by another launch" in result.stderr
    # a lock left by a dead process is taken over
    (out / "run.lock").write_text('{"host": "%s", "pid": 999999999}' % os.uname().nodename)
    assert _launch(tmp_path, 1, out).returncode == 0
