"""The run directory: its writer and its reader, the one place that knows the format.

A run directory holds ``summary.json`` (what was run, how it was scored, the means),
``per_sample.csv`` (one record per sample: its metrics, its status and why) and usually
``predictions.h5`` (the prediction cache, :mod:`marigold_bench.eval.cache`). The run loop
(:mod:`marigold_bench.eval.loop`) writes one with :func:`summarize` and :func:`write_run`;
tables, statistics, regression checks and figures read it back with :func:`load_run`, and
anything missing or unreadable is a :class:`BenchError` naming the file. Nothing here imports
torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import marigold_bench
from marigold_bench.data.registry import subsets_of
from marigold_bench.errors import BenchError
from marigold_bench.eval import identity, outdir
from marigold_bench.eval.metrics import METRIC_KEYS, mean_metrics
from marigold_bench.eval.protocols import Scoring, default_scoring
from marigold_bench.eval.subset import subset_mark
from marigold_bench.output_spaces import DEPTH_AFFINE

#: a sample's status in ``per_sample.csv``: scored; prediction missing or unusable; sample files
#: missing or unreadable; no valid ground-truth pixel. Only ``ok`` samples enter the means.
OK, FAILED, SKIPPED, NO_VALID = "ok", "failed", "skipped", "no_valid"

PER_SAMPLE, SUMMARY, PREDICTIONS = "per_sample.csv", "summary.json", "predictions.h5"

#: what ``--uncertainty`` adds beside them (with ``summary.json["uncertainty"]``): the per-sample
#: sparsification scores and the plot of the mean curves (``.png`` and ``.pdf``)
UNCERTAINTY_FILE, SPARSIFICATION = "uncertainty.csv", "sparsification"
UNCERTAINTY_OUTPUTS = (UNCERTAINTY_FILE, f"{SPARSIFICATION}.png", f"{SPARSIFICATION}.pdf")


# --- writing ------------------------------------------------------------------------------

def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash never leaves half a file: written next to
    the target, then renamed over it; a full disk is a one-line error (eval/outdir.py)."""
    outdir.atomic_write(path, text)


def _version(module: str) -> str | None:
    # the loaded module's own version when it is imported; else the installed distribution's,
    # so that commands which never import torch/diffusers still record them without the cost
    import sys
    if module in sys.modules:
        return sys.modules[module].__version__
    from importlib import metadata
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """The versions a run records: the suite, torch, diffusers, numpy."""
    return {"marigold_bench": marigold_bench.__version__, "torch": _version("torch"),
            "diffusers": _version("diffusers"), "numpy": np.__version__}


def subset_of(dataset_name: str, sample_id: str) -> str | None:
    """The named subset a sample belongs to (DIODE: ``indoor`` or ``outdoor``), else None."""
    return next((name for name, member in subsets_of(dataset_name).items() if member(sample_id)), None)


def dataset_metrics(ok: list[dict], scoring: Scoring) -> dict:
    """The dataset's metrics over the scored records: their means, or -- for a protocol that
    pools (``definition.pooled``, DSINE) -- its metrics of every record's ``"_pool"`` at once."""
    pooled = getattr(scoring.definition, "pooled", None)
    if pooled is None:
        return mean_metrics(ok, scoring.columns)
    if not ok:
        return {key: float("nan") for key in scoring.columns}
    return {key: float(value) for key, value in pooled([r["_pool"] for r in ok]).items()}


def subsets(records: list[dict], dataset_name: str, keys, scoring: Scoring | None = None) -> dict | None:
    """``{subset: {"n", "n_total", "metrics"}}`` plus ``"all"`` for benchmarks reported by parts
    (DIODE: indoor, outdoor, all, as papers disagree on which they print); None otherwise.
    With a pooling ``scoring`` each part is pooled on its own."""
    parts = subsets_of(dataset_name)
    if not parts:
        return None
    out = {}
    for name in (*parts, "all"):
        part = [r for r in records if name == "all" or parts[name](r["id"])]
        ok = [r for r in part if r["status"] == OK]
        metrics = dataset_metrics(ok, scoring) if scoring is not None else mean_metrics(ok, keys)
        out[name] = {"n": len(ok), "n_total": len(part), "metrics": metrics}
    return out


def task_record(scoring: Scoring) -> dict:
    """``summary.json``'s task entries: ``task`` always; for normals the predictions' ``frame``,
    the ``benchmark_frame`` and whether the predictions were converted (a mismatch is recorded,
    never silent)."""
    if scoring.task == "depth":
        return {"task": "depth"}
    return {"task": scoring.task, "frame": scoring.prediction_frame, "benchmark_frame": scoring.frame,
            "frame_converted": scoring.prediction_frame != scoring.frame}


def summarize(records: list[dict], dataset, settings: dict, extra: dict | None = None,
              scoring: Scoring | None = None) -> dict:
    """``summary.json``'s content; ``scoring`` (default: the dataset protocol's marigold scoring)
    is recorded whole under ``"scoring"``, its headline choices also at the top level."""
    scoring = scoring or default_scoring(dataset.protocol)
    ok = [r for r in records if r["status"] == OK]
    counts = {s: sum(r["status"] == s for r in records) for s in (FAILED, SKIPPED, NO_VALID)}
    summary = {
        "dataset": dataset.protocol.name,
        "n": len(ok),
        "n_total": len(records),
        "n_failed": counts[FAILED], "n_skipped": counts[SKIPPED], "n_no_valid": counts[NO_VALID],
        "metrics": dataset_metrics(ok, scoring),
        "settings": settings,
        **task_record(scoring),
        # the fit space is the scoring's (an output space or --fit-space may have chosen it)
        "protocol": {**dataset.protocol.to_dict(), **dataset.describe(), "fit_space": scoring.fit_space},
        "protocol_name": scoring.protocol,
        "output_space": scoring.output_space,
        "alignment": scoring.alignment,
        "fit_space": scoring.fit_space,
        "scoring": scoring.to_dict(),
        "versions": versions(),
    }
    if scoring.fit_space == "disparity":
        # predictions <= 0 have no disparity: say how many samples had any, never hide them
        summary["n_with_nonpositive"] = sum(1 for r in ok if r.get("n_nonpositive"))
    if scoring.task == "normals":  # zero-vector predictions score 90 degrees: say how many samples had any
        summary["n_with_zero"] = sum(1 for r in ok if r.get("n_zero"))
        if scoring.definition.pooled is not None:
            summary["pooled"] = "dataset metrics over every scored pixel of every scored sample"
    halves = subsets(records, dataset.protocol.name, scoring.columns, scoring)
    if halves is not None:
        summary["subsets"] = halves
    summary.update(subset_mark(dataset))  # a --max-samples run says so wherever it is shown
    # what makes two runs' numbers comparable, as an id and a hash (eval.identity)
    summary["protocol_identity"] = identity.record(summary)
    return {**summary, **(extra or {})}


def record_columns(summary: dict) -> list[str]:
    """``per_sample.csv``'s columns for a summary's scoring (the ten marigold metrics by default)."""
    scoring = summary.get("scoring") or {}
    metrics = list(scoring.get("metric_keys") or METRIC_KEYS)
    if scoring.get("task", "depth") != "depth":  # angles: no fit, zero-vector predictions counted
        return ["id", *metrics, "n_zero", "n_valid", "status", "message"]
    if scoring.get("boundary_f1_radius"):
        metrics.append("boundary_f1")
    extra = ["n_nonpositive"] if scoring.get("fit_space") == "disparity" else []
    return ["id", *metrics, "scale", "shift", *extra, "n_valid", "status", "message"]


def write_run(out_dir: str, records: list[dict], summary: dict) -> None:
    """Write ``per_sample.csv`` and ``summary.json`` atomically, then remove the
    `UNCERTAINTY_OUTPUTS` of an earlier scoring when ``summary`` has no uncertainty entry:
    they scored the results just replaced (another alignment, say), and nothing may sit in a
    run folder that its ``summary.json`` does not describe (``--uncertainty`` writes them anew
    after this)."""
    os.makedirs(out_dir, exist_ok=True)
    columns = record_columns(summary)
    frame = pd.DataFrame.from_records(records).reindex(columns=columns)
    atomic_write(os.path.join(out_dir, PER_SAMPLE), frame.to_csv(index=False, float_format="%.8g"))
    atomic_write(os.path.join(out_dir, SUMMARY), json.dumps(summary, indent=2, default=str) + "\n")
    if "uncertainty" not in summary:  # only once the new results are in place: a failed write keeps all
        remove_uncertainty_outputs(out_dir)


def remove_uncertainty_outputs(out_dir: str) -> None:
    """Delete ``out_dir``'s `UNCERTAINTY_OUTPUTS` (those present)."""
    for name in UNCERTAINTY_OUTPUTS:
        try:
            os.remove(os.path.join(out_dir, name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise BenchError(f"cannot remove the stale {os.path.join(out_dir, name)} of an earlier --uncertainty "
                             f"scoring ({exc.strerror or exc}); remove it by hand") from None


def add_to_summary(run_dir: str, key: str, value) -> None:
    """Add (or replace) one top-level entry of a written run's ``summary.json``.

    Written atomically: a caller that marks a run with it (a leaderboard cell's request) never
    leaves a half-written summary, nor a mark without the rest.
    """
    path = os.path.join(run_dir, SUMMARY)
    with open(path) as f:
        summary = json.load(f)
    summary[key] = value
    atomic_write(path, json.dumps(summary, indent=2, default=str) + "\n")


# --- reading ------------------------------------------------------------------------------

#: settings that decide where and how fast a run went, not what it predicted
RUNTIME_ONLY_SETTINGS = ("device", "batch_size")

#: protocol entries that only say where the data lay on one machine
LOCATION_ONLY_PROTOCOL = ("root",)


def finished_summary(run_dir: str) -> dict | None:
    """The parsed ``summary.json`` of a run directory that finished (it has ``per_sample.csv``
    too), or None: absent, or half-written by a crash, so the run should simply go again.

    What a finished run must also match (a study's request, a leaderboard cell's flags) is
    the caller's to check.
    """
    path = os.path.join(run_dir, "summary.json")
    if not (os.path.isfile(path) and os.path.isfile(os.path.join(run_dir, "per_sample.csv"))):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


@dataclass
class RunDir:
    """A loaded run directory.

    Attributes:
        path: the directory as given.
        summary: the parsed ``summary.json``.
    """

    path: str
    summary: dict
    _per_sample: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def dataset(self) -> str:
        return self.summary["dataset"]

    @property
    def settings(self) -> dict:
        return self.summary.get("settings") or {}

    @property
    def metrics(self) -> dict:
        return self.summary.get("metrics") or {}

    @property
    def n(self) -> int:
        return int(self.summary.get("n", 0))

    @property
    def n_total(self) -> int:
        return int(self.summary.get("n_total", self.n))

    @property
    def partial(self) -> bool:
        """True when some samples failed, were skipped or had no valid pixel."""
        return self.n < self.n_total

    def per_sample(self) -> pd.DataFrame:
        """``per_sample.csv`` as a frame (read once, on first use; a damaged file is a
        `BenchError`, see `read_per_sample`)."""
        if self._per_sample is None:
            self._per_sample = read_per_sample(self.path, self.summary)
        return self._per_sample

    def ok_samples(self) -> pd.DataFrame:
        """Per-sample rows of the samples that were scored (status ``ok``), indexed by id."""
        frame = self.per_sample()
        if "status" in frame:
            frame = frame[frame["status"] == "ok"]
        return frame.set_index("id")


def read_per_sample(run_dir: str, summary: dict) -> pd.DataFrame:
    """``per_sample.csv`` of ``run_dir``, checked against its ``summary.json``.

    An empty file, one without an ``id`` column, a row cut short (no ``status``) or a row count
    other than the summary's ``n_total`` is damage (a copy or a disk that stopped mid-file): a
    one-line `BenchError` naming the file and how to rebuild it, never a pandas traceback or a
    later, misleading complaint about the samples.
    """
    path = os.path.join(run_dir, PER_SAMPLE)
    if not os.path.isfile(path):
        raise BenchError(f"{run_dir}: no per_sample.csv; is this a run directory?")
    try:
        frame = pd.read_csv(path, dtype={"id": str}, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise _damaged(run_dir, "the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _damaged(run_dir, f"not readable as CSV: {' '.join(str(exc).split())}") from None
    if "id" not in frame:
        raise _damaged(run_dir, "no header with an id column")
    if "status" in frame and frame["status"].isna().any():
        first = int(frame["status"].isna().to_numpy().argmax()) + 2  # line number: header is line 1
        raise _damaged(run_dir, f"line {first} is cut short, it has no status")
    expected = summary.get("n_total")
    if isinstance(expected, int) and len(frame) != expected:
        raise _damaged(run_dir, f"{len(frame)} sample row(s), summary.json counts {expected}")
    return frame


def _damaged(run_dir: str, why: str) -> BenchError:
    """The error for a damaged ``per_sample.csv``: what is wrong and the command that rebuilds it."""
    return BenchError(f"{os.path.join(run_dir, PER_SAMPLE)} is damaged ({why}); "
                      f"{_rebuild_hint(run_dir)}")


def _rebuild_hint(run_dir: str) -> str:
    # per_sample.csv is derived: `run` rescores its cache when rerun with the same flags, and
    # evaluate/rescore may write over their own earlier results (eval/outdir.py, eval/rescore.py)
    if os.path.isfile(os.path.join(run_dir, PREDICTIONS)):
        return (f"rerun the `marigold-bench run` that made it with the same flags and --out {run_dir}: it scores "
                "the predictions cached in predictions.h5 again and rewrites the file without predicting")
    kind = outdir.results_kind(run_dir)
    if kind == outdir.RESCORE:
        return f"rerun the `marigold-bench rescore` that wrote it, with --out {run_dir}"
    if kind == outdir.EVALUATE:
        return f"rerun the `marigold-bench evaluate` that wrote it, with --out {run_dir}"
    return "its predictions.h5 is not beside it, so only a new `marigold-bench run` can rebuild it"


def load_run(path: str | os.PathLike) -> RunDir:
    """Load a run directory (the folder, or its ``summary.json``)."""
    path = os.fspath(path)
    if os.path.basename(path) == "summary.json":
        path = os.path.dirname(path) or "."
    summary_path = os.path.join(path, "summary.json")
    if not os.path.isfile(summary_path):
        raise BenchError(f"{path}: no summary.json; give the directory that `marigold-bench run` wrote")
    try:
        with open(summary_path) as f:
            summary = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{summary_path}: cannot read it ({exc})") from None
    missing = [k for k in ("dataset", "n", "metrics") if k not in summary]
    if missing:
        raise BenchError(f"{summary_path}: not a run summary (missing {', '.join(missing)})")
    return RunDir(path, summary)


def result_settings(settings: dict) -> dict:
    """The settings that can change a run's numbers (runtime-only ones dropped)."""
    return {k: v for k, v in settings.items() if k not in RUNTIME_ONLY_SETTINGS}


def sample_set(summary: dict) -> dict:
    """What defines the scored sample set and protocol of a run, minus machine-local paths."""
    protocol = summary.get("protocol") or {}
    described = {k: v for k, v in protocol.items() if k not in LOCATION_ONLY_PROTOCOL}
    return {"dataset": summary.get("dataset"), "n_total": summary.get("n_total"), **described}


def differences(old: dict, new: dict, old_name: str = "a", new_name: str = "b") -> list[str]:
    """Readable ``key: a X vs b Y`` lines for every key whose value differs."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old_name} {old.get(k, '<absent>')!r} vs {new_name} {new.get(k, '<absent>')!r}"
            for k in keys if old.get(k) != new.get(k)]


def recorded_choices(summary: dict) -> dict:
    """How the run was scored: protocol, output space, alignment, fit space, boundary-F1 radius.

    Runs made before 0.3 record no ``scoring``: they were scored by the ``marigold`` protocol
    as depth predictions, fitted in the space ``summary["protocol"]["fit_space"]`` names.
    """
    scoring = summary.get("scoring") or {}
    protocol = summary.get("protocol") or {}
    settings = summary.get("settings") or {}
    return {
        "protocol": scoring.get("protocol", "marigold"),
        "output_space": scoring.get("output_space", settings.get("output_space", DEPTH_AFFINE)),
        "alignment": scoring.get("alignment", "affine"),
        "fit_space": scoring.get("fit_space", protocol.get("fit_space", "depth")),
        "boundary_f1": scoring.get("boundary_f1_radius") or 0,
    }
