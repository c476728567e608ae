"""`leaderboard --launcher slurm`: jobs through submitit's local executor score what the local
launcher scores, a model that raises and a job that is killed fail their cells only (with the
job's log), pending jobs are never submitted twice, the next call resubmits failed cells, and
the launcher's bad input (submitit missing, unknown launcher, Slurm flags with the local one).

Jobs of the local executor are processes that import the package: the tests start five in all.
The rest replace the executor by a recorder."""

import builtins
import contextlib
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from marigold_bench import plugins
from marigold_bench.cli import build_parser, main
from marigold_bench.commands import launch
from marigold_bench.commands import leaderboard as command
from marigold_bench.commands.common import BUNDLED_TINY
from marigold_bench.report.leaderboard import request_of

ARGS = ["--datasets", "synthetic", "--max-samples", "2"]

# a test-only family whose predictor fails the two ways a job can: `doom:raise` raises inside the
# model (the job ends normally, its cell failed), `doom:kill` kills its own process as the
# kernel's out-of-memory killer would (the job dies without a result)
DOOM = '''
import os, signal
from marigold_bench.inference.families import Family
from marigold_bench.output_spaces import DEPTH_AFFINE


class DoomPredictor:
    output_space = DEPTH_AFFINE
    device = None

    def __init__(self, how):
        self.how = how
        self.settings = {"model": f"doom:{how}", "family": "doom", "output_space": self.output_space,
                         "ensemble": 1, "ensembling": None}

    def predict(self, jobs):
        if self.how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("the doom model raised")

    def merge(self, members, out_shape=None):
        raise AssertionError("never reached")


class DoomFamily(Family):
    name = "doom"
    description = "fails on purpose (a test-only family)"
    prefix = "doom"
    output_space = DEPTH_AFFINE
    value_range = None

    def build(self, model, settings):
        return DoomPredictor(model.split(":", 1)[1])

    def example(self, folder):
        return "doom:raise"


FAMILY = DoomFamily()
'''


@pytest.fixture
def local_cluster(tmp_path):
    """A launcher config running the jobs through submitit's LocalExecutor (no cluster needed)."""
    path = tmp_path / "launcher.yaml"
    path.write_text("cluster: local\ngpus_per_job: 0\ncpus_per_job: 1\ntime_min: 10\n")
    return ["--launcher", "slurm", "--launcher-config", str(path)]


def run_dirs(out: Path) -> dict:
    """``{model folder/cell folder: summary}`` of the finished cells under a leaderboard folder."""
    return {str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("*/*/summary.json"))}


def test_a_job_scores_what_the_local_launcher_scores(tmp_path, local_cluster, capsys, monkeypatch):
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    argv = ["leaderboard", "--models", str(BUNDLED_TINY), *ARGS]
    assert main([*argv, "--out", str(local)]) == 0
    local_table = capsys.readouterr().out
    assert main([*argv, "--out", str(slurm), *local_cluster]) == 0
    captured = capsys.readouterr()
    assert captured.out == local_table
    (job_id,) = [line.split()[2].rstrip(":") for line in captured.err.splitlines()
                 if line.startswith("submitted job ")]
    assert job_id.isdigit() and job_id != str(os.getpid())  # it ran in another process
    assert (slurm / "slurm" / job_id / f"{job_id}_0_log.err").is_file()

    ran_here, ran_as_job = run_dirs(local), run_dirs(slurm)
    assert list(ran_here) == list(ran_as_job) and len(ran_here) == 1  # the same cell folder (request)
    (cell,) = ran_here
    assert ran_as_job[cell]["metrics"] == ran_here[cell]["metrics"]  # every summary metric, exactly
    assert ran_as_job[cell]["leaderboard"] == ran_here[cell]["leaderboard"]
    pd.testing.assert_frame_equal(pd.read_csv(slurm / cell / "per_sample.csv"),
                                  pd.read_csv(local / cell / "per_sample.csv"))
    assert json.loads((slurm / "launcher.json").read_text()) == {"jobs": {}}  # nothing left in flight

    # a cell a job finished is an ordinary run directory: a local launch reuses it untouched
    monkeypatch.setattr(command, "build_predictor", lambda *a, **k: pytest.fail("a finished cell was run again"))
    assert main([*argv, "--out", str(slurm)]) == 0
    assert "finished before, reused" in capsys.readouterr().err


def test_a_raising_model_and_a_killed_job_fail_their_cells_only(tmp_path, local_cluster, capsys, monkeypatch):
    # set, then delete: monkeypatch restores the variable although --include writes os.environ
    monkeypatch.setenv(plugins.INCLUDE_ENV, "")
    monkeypatch.delenv(plugins.INCLUDE_ENV)
    doom = tmp_path / "doom"
    doom.mkdir()
    (doom / "doom.py").write_text(DOOM)
    out = tmp_path / "lb"
    argv = ["leaderboard", "--include", str(doom), "--models", "baseline:ramp,doom:raise,doom:kill", *ARGS,
            "--out", str(out), *local_cluster]

    # --no-wait: back at once with the job ids and where the logs are, no table yet
    assert main([*argv, "--no-wait"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and not (out / "leaderboard.md").exists()
    submitted = [line for line in captured.err.splitlines() if line.startswith("submitted job ")]
    assert len(submitted) == 3 and all(f"log {out}/slurm/" in line for line in submitted)
    assert f"logs under {out}/slurm" in captured.err
    jobs = json.loads((out / "launcher.json").read_text())["jobs"]
    assert sorted(e["cell"] for e in jobs.values()) == ["baseline:ramp on synthetic", "doom:kill on synthetic",
                                                        "doom:raise on synthetic"]

    # the same command waits: the ramp cell is collected, the two others fail with their logs
    assert main(argv) == 1
    captured = capsys.readouterr()
    rows = {line.split(" |")[0]: line for line in captured.out.splitlines() if line.startswith("| ")}
    assert rows["| baseline:ramp, N=1"].endswith(" | 2 |")
    record = {c["model"]: c for c in json.loads((out / "leaderboard.json").read_text())["cells"]}
    assert record["baseline:ramp"]["status"] in ("done", "reused")
    raised, killed = record["doom:raise"], record["doom:kill"]
    assert raised["status"] == killed["status"] == "failed"
    assert raised["message"].startswith("RuntimeError: the doom model raised (job ")
    assert killed["message"].startswith("the job died before it finished (job ")
    for cell in (raised, killed):
        log = cell["message"].rsplit("log ", 1)[1].rstrip(")")
        assert os.path.isfile(log) and log.startswith(f"{out}/slurm/")
        assert any(line.startswith(f"| doom:{cell['model'].split(':')[1]} (failed: ") for line in rows.values())
    assert "the doom model raised" in Path(raised["message"].rsplit("log ", 1)[1].rstrip(")")).read_text()
    assert "2 failed" in captured.err
    assert json.loads((out / "launcher.json").read_text()) == {"jobs": {}}

    # the next call resubmits exactly the failed cells (recorded by a stand-in executor)
    recorder = Recorder(monkeypatch)
    assert main([*argv, "--no-wait"]) == 0
    assert sorted(f"{f['model']} on {f['dataset']}" for f in recorder.flags) == ["doom:kill on synthetic",
                                                                                   "doom:raise on synthetic"]
    assert recorder.includes == [[str(doom.resolve())]] * 2  # the job sees the --include folders too


class FakeJob:
    """What the launcher reads of a submitit job; it never ends (its id is a live process: ours)."""

    def __init__(self, folder):
        import submitit

        self.job_id = str(os.getpid())
        self.paths = submitit.core.utils.JobPaths(folder, job_id=self.job_id, task_id=0)

    state = "RUNNING"

    def done(self, force_check=False):
        return False


class Recorder:
    """Stands in for submitit's executor: records the cells submitted, starts nothing."""

    def __init__(self, monkeypatch):
        self.flags, self.includes, self.batches = [], [], 0
        monkeypatch.setattr(launch, "make_executor", self.make)

    def make(self, settings, out):
        self.settings = settings
        self.folder = os.path.join(out, "slurm", "%j")
        return self

    @contextlib.contextmanager
    def batch(self):
        self.batches += 1
        yield

    def submit(self, fn, flags, task, run_dir, request, includes):
        assert fn is command.run_cell and request == request_of(flags) and task == "depth"
        self.flags.append(flags)
        self.includes.append(includes)
        return FakeJob(self.folder)


def test_a_cell_whose_job_is_in_flight_is_not_submitted_again(tmp_path, local_cluster, capsys, monkeypatch):
    # jobs of the local cluster: whether one runs is whether its process lives (no sacct here)
    out = tmp_path / "lb"
    argv = ["leaderboard", "--models", "baseline:ramp,baseline:constant", *ARGS, "--out", str(out),
            *local_cluster, "--no-wait", "--partition", "gpu", "--time-min", "30"]
    recorder = Recorder(monkeypatch)
    assert main(argv) == 0
    assert [f["model"] for f in recorder.flags] == ["baseline:ramp", "baseline:constant"]
    assert recorder.batches == 1  # one submission: one job array on Slurm
    assert (recorder.settings.partition, recorder.settings.time_min, recorder.settings.wait) == ("gpu", 30, False)
    jobs = json.loads((out / "launcher.json").read_text())["jobs"]
    assert len(jobs) == 2

    # both jobs still run (their ids are live processes): a second call submits nothing
    recorder.flags.clear()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert recorder.flags == [] and err.count("still pending or running; not submitted again") == 2
    assert json.loads((out / "launcher.json").read_text())["jobs"] == jobs

    # one of them is gone without finishing its cell: that cell alone goes again
    key = next(k for k, e in jobs.items() if e["cell"].startswith("baseline:constant"))
    jobs[key]["job_id"] = str(2 ** 22 + 7)  # above the kernel's pid_max: no such process
    (out / "launcher.json").write_text(json.dumps({"jobs": jobs}))
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert [f["model"] for f in recorder.flags] == ["baseline:constant"]
    assert "baseline:constant on synthetic: failed: the job died before it finished" in err


def test_launcher_flags_do_not_change_a_cells_request():
    plain = build_parser().parse_args(["leaderboard", "--models", "baseline:ramp", *ARGS])
    slurm = build_parser().parse_args(["leaderboard", "--models", "baseline:ramp", *ARGS, "--launcher", "slurm",
                                       "--partition", "a100", "--gpus-per-job", "2", "--no-wait"])
    assert request_of(command.cell_flags(slurm, "baseline:ramp", "synthetic")) == \
        request_of(command.cell_flags(plain, "baseline:ramp", "synthetic"))


def test_without_slurm_the_launch_says_so(tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp", *ARGS, "--out", str(out), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("marigold-bench leaderboard: error: no Slurm cluster reachable from this machine (")
    assert err.endswith("set 'cluster: local' in --launcher-config\n") and len(err.splitlines()) == 1
    assert not out.exists()  # said before anything was opened or written


def test_settings_and_their_sbatch_script(tmp_path, monkeypatch):
    import submitit

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # as on a cluster
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"partition": "a100", "time-min": 90, "mem_gb": 32, "array_parallelism": 4,
                                  "slurm": {"slurm_account": "vision"}}))
    args = build_parser().parse_args(["leaderboard", "--models", "m", "--datasets", "nyu", "--launcher", "slurm",
                                      "--launcher-config", str(config), "--time-min", "120", "--gpus-per-job", "2"])
    settings = launch.settings_from(args)  # flags over the file over the defaults
    assert (settings.partition, settings.time_min, settings.mem_gb, settings.gpus_per_job, settings.cpus_per_job,
            settings.array_parallelism, settings.wait) == ("a100", 120, 32, 2, 8, 4, True)
    executor = launch.make_executor(settings, str(tmp_path / "lb"))
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=a100", "#SBATCH --time=120", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --account=vision",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --nodes=1"):
        assert line in script.splitlines(), line
    assert executor._executor.parameters["array_parallelism"] == 4


@pytest.mark.parametrize("text, said", [
    ("partition: a\nqueue: b\n", "unknown queue"),
    ("time_min: 0\n", "--time-min 0: give a whole number, at least 1"),
    ("cluster: pbs\n", "launcher cluster 'pbs'"),
    ("[1, 2]\n", "expected a mapping"),
    ("slurm: {account: x}\n", "named slurm_<name>"),
])
def test_bad_launcher_config_is_one_line(tmp_path, capsys, text, said):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp", *ARGS, "--out", str(out), "--launcher", "slurm",
                 "--launcher-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_submitit_names_the_extra(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_submitit(name, *args, **kwargs):
        if name == "submitit" or name.startswith("submitit."):
            raise ModuleNotFoundError("No module named 'submitit'", name="submitit")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "submitit", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_submitit)
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp", *ARGS, "--out", str(out), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err == ("marigold-bench leaderboard: error: --launcher slurm needs submitit, which is not installed: "
                   "pip install marigold-bench[slurm]\n")
    assert not out.exists()  # nothing was run or written
    # the local launcher does not need it
    assert main(["leaderboard", "--models", "baseline:ramp", *ARGS, "--out", str(out)]) == 0


def test_unknown_launcher_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "--models", "baseline:ramp", *ARGS, "--launcher", "pbs"])
    assert exc.value.code == 2
    assert "argument --launcher: invalid choice: 'pbs' (choose from" in capsys.readouterr().err


def test_slurm_flags_with_the_local_launcher_are_refused(tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp", *ARGS, "--out", str(out), "--partition", "a100",
                 "--no-wait"]) == 2
    err = capsys.readouterr().err
    assert err == ("marigold-bench leaderboard: error: --partition, --wait/--no-wait only apply to --launcher slurm "
                   "(this launch is --launcher local)\n")
    assert not out.exists()
