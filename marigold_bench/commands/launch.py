"""Running a leaderboard's cells as cluster jobs: ``leaderboard --launcher slurm``, through submitit.

Each cell (model x benchmark) that is not finished becomes one job; the job runs the very cell
function the local launcher runs (:func:`marigold_bench.commands.leaderboard.run_cell`, pickled by
submitit), so its run directory is an ordinary one: a later call reads it through the normal
reuse path, and the numbers are those of a local run.

What is in flight is recorded in ``OUT/launcher.json`` (cell -> job id, cluster, log files), so a
later call knows what is pending and never submits a second job for a cell whose job still runs.
Job scripts, pickles and logs go to ``OUT/slurm/<job id>/``. A call:

1. reads the record; a cell whose run directory is finished is collected (and its entry dropped);
2. a cell whose job still runs is pending; one whose job ended without finishing the cell (the
   model raised, or the job died: killed, out of memory, out of time) is reported failed with
   its log, and submitted again with the cells that have no job;
3. with ``--wait`` (the default) waits for every job and returns the cells for the table (a job
   that dies now fails its cell, with its log: the next call resubmits it); with ``--no-wait``
   returns at once after printing the job ids and where their logs are.

This module knows jobs and the record, nothing of models or benchmarks: the command hands it
the cells, a test of "finished" and the job function.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field, fields

from marigold_bench.errors import LauncherError
from marigold_bench.report.leaderboard import DONE, FAILED, REUSED, Cell

LAUNCHERS = ("local", "slurm")

#: ``OUT/launcher.json``: the jobs in flight, by cell
STATE_FILE = "launcher.json"

#: ``OUT/slurm/<job id>/``: submitit's scripts, pickles and logs of each job
JOB_FOLDER = "slurm"

#: seconds between two looks at the jobs while waiting, by cluster (sacct is not to be hammered;
#: a local job is a process of this machine, cheap to look at)
POLL_S = {"slurm": 15.0, "local": 1.0}

#: the submitit clusters a config may name: "local" runs each job as a process of this machine
#: (submitit's LocalExecutor), to try a launch out without a cluster
CLUSTERS = ("slurm", "local")

INSTALL_HINT = "pip install marigold-bench[slurm]"


@dataclass
class LauncherSettings:
    """What every job asks of the cluster (flags over ``--launcher-config`` over these defaults).

    Attributes:
        cluster: ``slurm``, or ``local`` to run the jobs as processes of this machine.
        partition: the Slurm partition (None: the cluster's default).
        gpus_per_job: GPUs per job.
        cpus_per_job: CPU cores per job (the run loop's sample decoding uses them).
        mem_gb: memory per job in GB (None: the partition's default).
        time_min: the time limit of each job in minutes.
        array_parallelism: how many jobs of one submission (a Slurm job array) run at once.
        wait: wait for the jobs (True) or return once they are submitted.
        slurm: further submitit parameters passed as they are, each named ``slurm_<name>``
            (``slurm_account``, ``slurm_qos``, ``slurm_constraint``, ``slurm_setup``, ...).
    """

    cluster: str = "slurm"
    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    mem_gb: float | None = None
    time_min: int = 240
    array_parallelism: int = 32
    wait: bool = True
    slurm: dict = field(default_factory=dict)


#: the launcher's flags (argparse dests) and the settings they set; all default to None so that
#: a flag given with ``--launcher local`` can be told from one left alone
FLAG_SETTINGS = {"partition": "partition", "gpus_per_job": "gpus_per_job", "cpus_per_job": "cpus_per_job",
                 "mem_gb": "mem_gb", "time_min": "time_min", "array_parallelism": "array_parallelism",
                 "wait": "wait"}
LAUNCHER_FLAGS = ("launcher", "launcher_config", *FLAG_SETTINGS)


def add_launcher_flags(p) -> None:
    """``--launcher`` and the Slurm flags of ``leaderboard``."""
    import argparse

    g = p.add_argument_group("launcher")
    g.add_argument("--launcher", choices=LAUNCHERS, default="local",
                   help="where the missing cells run: local (default: one after the other in this process) "
                        "or slurm (one job per missing cell through submitit; needs marigold-bench[slurm])")
    g.add_argument("--launcher-config", default=None, metavar="FILE",
                   help="YAML/JSON file of launcher settings (cluster, partition, gpus_per_job, cpus_per_job, "
                        "mem_gb, time_min, array_parallelism, wait, slurm: {slurm_account: ..., ...}); "
                        "flags override it (--launcher slurm only)")
    g.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's)")
    g.add_argument("--gpus-per-job", type=int, default=None, help="GPUs per job (default: 1)")
    g.add_argument("--cpus-per-job", type=int, default=None, help="CPU cores per job (default: 8)")
    g.add_argument("--mem-gb", type=float, default=None, help="memory per job in GB (default: the partition's)")
    g.add_argument("--time-min", type=int, default=None, help="time limit per job in minutes (default: 240)")
    g.add_argument("--array-parallelism", type=int, default=None,
                   help="jobs of one submission running at once (default: 32)")
    g.add_argument("--wait", action=argparse.BooleanOptionalAction, default=None,
                   help="wait for the jobs and write the table (default), or return at once after "
                        "submitting (--no-wait; call again to collect)")


def refuse_with_local(args) -> None:
    """Slurm flags given with ``--launcher local`` are refused: ignoring them would run a hundred
    cells one after the other on this machine when ``--launcher slurm`` was forgotten."""
    given = [f"--{name.replace('_', '-')}" for name in ("launcher_config", *FLAG_SETTINGS)
             if getattr(args, name, None) is not None]
    if args.launcher == "local" and given:
        wait = [g for g in given if g == "--wait"]
        given = [g for g in given if g != "--wait"] + (["--wait/--no-wait"] if wait else [])
        raise LauncherError(f"{', '.join(given)} only apply to --launcher slurm (this launch is --launcher local)")


def settings_from(args) -> LauncherSettings:
    """The launcher settings of a ``--launcher slurm`` call: defaults, then the config file, then
    the flags given."""
    values = {}
    if args.launcher_config:
        values.update(read_config(args.launcher_config))
    values.update({key: getattr(args, dest) for dest, key in FLAG_SETTINGS.items()
                   if getattr(args, dest, None) is not None})
    settings = LauncherSettings(**values)
    _check(settings)
    return settings


def read_config(path: str) -> dict:
    """The settings in a YAML or JSON launcher config (keys as in `LauncherSettings`, dashes allowed)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise LauncherError(f"--launcher-config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise LauncherError(f"--launcher-config {path}: not YAML/JSON ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LauncherError(f"--launcher-config {path}: expected a mapping of settings, got {type(data).__name__}")
    known = [f.name for f in fields(LauncherSettings)]
    values = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise LauncherError(f"--launcher-config {path}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return values


def _check(s: LauncherSettings) -> None:
    if s.cluster not in CLUSTERS:
        raise LauncherError(f"launcher cluster {s.cluster!r}: expected one of {', '.join(CLUSTERS)}")
    for name in ("gpus_per_job", "cpus_per_job", "time_min", "array_parallelism"):
        value = getattr(s, name)
        low = 0 if name == "gpus_per_job" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise LauncherError(f"--{name.replace('_', '-')} {value!r}: give a whole number, at least {low}")
    if s.mem_gb is not None and (isinstance(s.mem_gb, bool) or not isinstance(s.mem_gb, (int, float))
                                 or s.mem_gb <= 0):
        raise LauncherError(f"--mem-gb {s.mem_gb!r}: give a positive number of GB")
    if not isinstance(s.wait, bool):
        raise LauncherError(f"launcher wait {s.wait!r}: expected true or false")
    if not isinstance(s.slurm, dict) or any(not str(k).startswith("slurm_") for k in s.slurm):
        raise LauncherError("launcher config 'slurm': a mapping of submitit parameters named slurm_<name> "
                            "(e.g. slurm_account)")


def import_submitit():
    """submitit, or a one-line error naming the extra that installs it."""
    try:
        import submitit
    except ImportError:
        raise LauncherError(f"--launcher slurm needs submitit, which is not installed: {INSTALL_HINT}") from None
    return submitit


def check_cluster(settings: LauncherSettings) -> None:
    """Refuse a Slurm launch on a machine that cannot submit to Slurm, before anything is opened
    or written (submitit's own test: ``srun`` on the PATH)."""
    submitit = import_submitit()
    if settings.cluster == "slurm" and submitit.SlurmExecutor.affinity() <= 0:
        raise LauncherError("no Slurm cluster reachable from this machine (no srun on the PATH); "
                            "to try the launcher here, set 'cluster: local' in --launcher-config")


def make_executor(settings: LauncherSettings, out: str):
    """A submitit executor whose jobs ask for what ``settings`` say, writing to ``OUT/slurm/<job id>``."""
    submitit = import_submitit()
    try:
        executor = submitit.AutoExecutor(folder=os.path.join(out, JOB_FOLDER, "%j"), cluster=settings.cluster)
    except RuntimeError as exc:  # submitit's "Could not detect srun": no Slurm on this machine
        raise LauncherError(f"no Slurm cluster reachable from this machine ({' '.join(str(exc).split())}); "
                            "to try the launcher here, set 'cluster: local' in --launcher-config") from None
    try:
        executor.update_parameters(
            name="marigold-bench", nodes=1, tasks_per_node=1, timeout_min=settings.time_min,
            gpus_per_node=settings.gpus_per_job, cpus_per_task=settings.cpus_per_job,
            mem_gb=settings.mem_gb, slurm_partition=settings.partition,
            slurm_array_parallelism=settings.array_parallelism, **settings.slurm)
    except (NameError, AssertionError, ValueError, TypeError) as exc:  # submitit's own checks
        raise LauncherError(f"launcher settings refused by submitit: {' '.join(str(exc).split())}") from None
    return executor


# ---------------------------------------------------------------------------------------------
# the record of jobs in flight


def state_path(out: str) -> str:
    return os.path.join(out, STATE_FILE)


def read_state(out: str) -> dict:
    """``{cell key: job entry}`` of the jobs a launch left in flight (empty when none)."""
    try:
        with open(state_path(out), encoding="utf-8") as f:
            return json.load(f).get("jobs", {})
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LauncherError(f"{state_path(out)}: unreadable record of submitted jobs ({exc}); "
                            "move it away once its jobs have ended") from None


def write_state(out: str, jobs: dict) -> None:
    """Rewrite the record atomically (a reader never sees half a file)."""
    os.makedirs(out, exist_ok=True)
    tmp = state_path(out) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"jobs": jobs}, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, state_path(out))


@contextlib.contextmanager
def locked(out: str):
    """Hold ``OUT/launcher.lock`` while the record is read, acted on and written, so two calls at
    once cannot both submit a cell."""
    import fcntl

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "launcher.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cell_key(out: str, cell: Cell) -> str:
    """A cell's key in the record: its run directory relative to the leaderboard folder."""
    return os.path.relpath(cell.run_dir, out)


# ---------------------------------------------------------------------------------------------
# jobs


def job_handle(entry: dict, live: dict):
    """The submitit job of a record entry: the one submitted in this process when there is one
    (it holds the process of a local job), else one re-attached by id and kept in ``live`` (a
    Slurm job registers with submitit's watcher, which asks sacct about all of them at once)."""
    if entry["job_id"] not in live:
        submitit = import_submitit()
        kind = submitit.LocalJob if entry["cluster"] == "local" else submitit.SlurmJob
        live[entry["job_id"]] = kind(folder=entry["folder"], job_id=entry["job_id"])
    return live[entry["job_id"]]


def _pid_alive(pid: int) -> bool:
    # a job this process started and no longer holds would linger as a zombie, which signal 0
    # still reaches: reap it first (a process that is not our child raises ChildProcessError)
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_running(entry: dict, live: dict) -> bool:
    """Whether a job is still pending or running (then its cell is not submitted again)."""
    job = job_handle(entry, live)
    if job.paths.result_pickle.exists():
        return False
    if entry["cluster"] == "local":
        state = job.state  # RUNNING, FINISHED or INTERRUPTED when this process started it
        if state.startswith("NO PROCESS"):  # started by an earlier call: its controller's pid says
            return _pid_alive(int(entry["job_id"]))
        return state == "RUNNING"
    # sacct, through submitit's watcher: asked again at most every minute (sooner for new jobs)
    return not job.done()


def ended_message(entry: dict, live: dict) -> str:
    """Why an ended job did not finish its cell, with where its log is."""
    job = job_handle(entry, live)
    where = f"job {entry['job_id']}, log {entry['stderr']}"
    if job.paths.result_pickle.exists():
        from submitit.core.utils import pickle_load

        outcome, value = pickle_load(job.paths.result_pickle)
        if outcome == "success" and isinstance(value, dict) and value.get("message"):
            return f"{value['message']} ({where})"
        if outcome == "error":  # the job function itself raised: its last line says what
            lines = [line for line in str(value).strip().splitlines() if line.strip()]
            return f"{lines[-1].strip() if lines else 'the job raised'} ({where})"
        return f"the job ended without finishing the cell ({where})"
    state = "" if entry["cluster"] == "local" else f", state {job.state}"
    return f"the job died before it finished{state} ({where})"


def submit(settings: LauncherSettings, out: str, todo: list, live: dict) -> dict:
    """Submit one job per ``(key, label, fn, args)`` (one job array on Slurm); returns their
    record entries by key and keeps the job objects in ``live``."""
    if not todo:
        return {}
    executor = make_executor(settings, out)
    with executor.batch():
        jobs = [executor.submit(fn, *fn_args) for _, _, fn, fn_args in todo]
    entries = {}
    for (key, label, _, _), job in zip(todo, jobs):
        live[job.job_id] = job
        entries[key] = {"job_id": job.job_id, "cluster": settings.cluster, "cell": label,
                        "folder": os.path.join(out, JOB_FOLDER, "%j"),
                        "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
                        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return entries


def launch_cells(out: str, settings: LauncherSettings, cells: list[Cell], finished, job_of,
                 log=print) -> list[Cell] | None:
    """Collect, submit and (with ``settings.wait``) wait for the cells of a leaderboard.

    Args:
        out: the leaderboard folder.
        settings: the launcher settings.
        cells: every cell of the leaderboard, with its run directory.
        finished: ``cell -> bool``, whether its run directory holds its finished run.
        job_of: ``cell -> (fn, args)``, the job function and its (picklable) arguments.
        log: one line per event.

    Returns:
        The cells with their status (reused, done or failed) once no job is in flight, or None
        when ``settings.wait`` is False and jobs are still pending.
    """
    live: dict = {}
    keys = {cell_key(out, c): c for c in cells}
    with locked(out):
        state = read_state(out)
        for key in keys.keys() & state.keys():  # registered together: one sacct call asks about all
            job_handle(state[key], live)
        todo = []
        for key, cell in keys.items():
            entry = state.get(key)
            if finished(cell):
                cell.status = REUSED
                if entry:
                    log(f"{cell.model} on {cell.dataset}: finished by job {entry['job_id']}, collected")
                    del state[key]
                continue
            if entry and is_running(entry, live):
                log(f"{cell.model} on {cell.dataset}: job {entry['job_id']} still pending or running; "
                    "not submitted again")
                continue
            if entry:
                log(f"{cell.model} on {cell.dataset}: failed: {ended_message(entry, live)}; submitting it again")
                del state[key]
            todo.append((key, f"{cell.model} on {cell.dataset}", *job_of(cell)))
        new = submit(settings, out, todo, live)
        state.update(new)
        write_state(out, state)
    for key, entry in new.items():
        log(f"submitted job {entry['job_id']}: {entry['cell']}; log {entry['stderr']}")
    pending = {k: e for k, e in state.items() if k in keys}
    if not pending:
        return cells
    if not settings.wait:
        log(f"{len(pending)} job(s) in flight ({', '.join(e['job_id'] for e in pending.values())}); logs under "
            f"{os.path.join(out, JOB_FOLDER)}; run the same command again to collect them")
        return None
    log(f"waiting for {len(pending)} job(s) ({', '.join(e['job_id'] for e in pending.values())}); "
        f"interrupting leaves them running, the same command collects them later")
    while pending:
        ended = {k: e for k, e in pending.items() if not is_running(e, live)}
        if not ended:
            time.sleep(POLL_S[settings.cluster])
            continue
        with locked(out):
            state = read_state(out)
            for key, entry in ended.items():
                cell = keys[key]
                if finished(cell):
                    cell.status = DONE
                    log(f"{entry['cell']}: done (job {entry['job_id']})")
                else:
                    cell.status, cell.message = FAILED, ended_message(entry, live)
                    log(f"{entry['cell']}: failed: {cell.message}")
                state.pop(key, None)
                del pending[key]
            write_state(out, state)
    return cells
