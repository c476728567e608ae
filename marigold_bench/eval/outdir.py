"""Output folders: refused before anything is loaded or written when results cannot go there.

Three commands write results: ``run`` (a run directory: ``predictions.h5``, ``summary.json``,
``per_sample.csv``), ``evaluate`` and ``rescore`` (``summary.json`` and ``per_sample.csv``
only). Each keeps to folders of its own kind, so that no command silently replaces another's
results (``rescore`` keeps its own, stricter rule: `marigold_bench.eval.rescore.check_out`).
An ``--out`` that is a file, lies under a file, or cannot be written is refused in one line
before a model is loaded: `check_writable` (a folder) and `check_writable_file` (one file) are
the one guard of every command that writes (table, gallery, predict, leaderboard, export,
regress --update, ablate, reproduce, data download too), called before its work starts.
Results files are written atomically; a full disk while writing them is a one-line
`~marigold_bench.errors.DiskFullError` and leaves the earlier files as they were.
"""

from __future__ import annotations

import json
import os
import tempfile

from marigold_bench.errors import BenchError, DiskFullError

PREDICTIONS, SUMMARY = "predictions.h5", "summary.json"

#: what a rescore's sensitivity table writes at the top of its folder (its rows go below)
TABLE_FILES = ("sensitivity.md", "sensitivity.csv")

#: what wrote a results folder, as `results_kind` names it
RUN, EVALUATE, RESCORE = "run", "evaluate", "rescore"


def check_writable(out: str, what: str = "--out") -> None:
    """Refuse, in one line, an output folder that is a file, lies under a file, or cannot be
    written (permissions, a read-only file system). Nothing is created: folders that are missing
    are the caller's to make, once this has passed. ``what`` names the path in the message
    (the flag that gave it)."""
    problem = folder_problem(out)
    if problem:
        raise BenchError(f"{what} {out} {problem}; choose another folder")


def check_writable_file(path: str, what: str = "--out") -> None:
    """`check_writable` for one file to be written (or replaced): refuse, in one line, a path
    that is a folder, a file that cannot be replaced, or one whose folder cannot be made or
    written. Nothing is created; the caller makes the missing folders once this has passed."""
    problem = file_problem(path)
    if problem:
        raise BenchError(f"{what} {path} {problem}; choose another file")


def folder_problem(folder: str) -> str | None:
    """Why files cannot go into ``folder`` (made first where missing), as the end of a sentence
    naming it; None when they can."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        return "is a file, not a folder"
    return _blocked(folder)


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be written as a file (its folder made first where missing), as the
    end of a sentence naming it; None when it can."""
    if os.path.isdir(path):
        return "is a folder, not a file"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "is not writable (no write permission, or a read-only file system)"
    return _blocked(os.path.dirname(path) or ".")


def _blocked(folder: str) -> str | None:
    # the nearest folder that exists decides: it must be a folder and writable (os.access also
    # says no for a read-only file system and for an immutable folder, even to root)
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"cannot be made: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"is not writable ({existing}: no write permission, or a read-only file system)"
    return None


def results_kind(out: str) -> str | None:
    """Which command's results a folder holds: ``run`` (it has ``predictions.h5``), ``rescore``
    or ``evaluate`` (told apart by their ``summary.json``; a rescore's sensitivity table by its
    `TABLE_FILES`), or None (new, empty, or a run directory whose cache was moved away)."""
    if os.path.isfile(os.path.join(out, PREDICTIONS)):
        return RUN
    if any(os.path.isfile(os.path.join(out, name)) for name in TABLE_FILES):
        return RESCORE
    try:
        with open(os.path.join(out, SUMMARY)) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    if summary.get("rescored_from"):
        return RESCORE
    if "predictions" in (summary.get("settings") or {}):  # evaluate records its source there
        return EVALUATE
    return RUN


def check_out(command: str, out: str | None) -> None:
    """Refuse ``--out`` for ``command`` (``run`` or ``evaluate``) when results cannot be written
    there or another command's results are there. ``None`` (run's default under ``runs/``)
    checks that ``runs`` can be made."""
    if out is None:
        check_writable("runs")
        return
    check_writable(out)
    kind = results_kind(out)
    if kind is None or kind == command:
        return
    if command == EVALUATE and kind == RUN:
        raise BenchError(f"--out {out} is a run directory (it holds {PREDICTIONS}); evaluate would replace the "
                         "run's summary.json and per_sample.csv: choose another folder (default: "
                         "<predictions>_eval)")
    what = {RESCORE: "a rescore's results", EVALUATE: "evaluate's results", RUN: "a run"}[kind]
    told = next((name for name in (SUMMARY, *TABLE_FILES) if os.path.isfile(os.path.join(out, name))), SUMMARY)
    raise BenchError(f"--out {out} holds {what} ({os.path.join(out, told)}); {command} would replace "
                     "them: choose a new or empty folder")


def check_run_dir(out_dir: str | None, dataset) -> None:
    """Everything ``run`` checks about its output folder before predicting: writable, not
    another command's results (`check_out`), not a run of another benchmark or split
    (`marigold_bench.eval.samples.check_same_samples`), and no run of more samples there that
    this one would replace (`marigold_bench.eval.subset.check_not_smaller`)."""
    from marigold_bench.eval.samples import check_same_samples
    from marigold_bench.eval.subset import check_not_smaller

    check_out(RUN, out_dir)
    if out_dir is not None:
        check_same_samples(out_dir, dataset)  # before the size check: another split's size says nothing
        check_not_smaller(out_dir, dataset)


def atomic_write(path: str, text: str) -> None:
    """Write ``path`` through a temporary file beside it and a rename, so that a crash or a full
    disk never leaves half a file (the old one stays as it was)."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        from marigold_bench.eval.cache import is_disk_full

        if is_disk_full(exc):
            raise DiskFullError(f"disk full: cannot write {path}; free some space and rerun the same command "
                                "(a run resumes from its cache)") from None
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
