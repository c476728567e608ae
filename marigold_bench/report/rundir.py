"""Reading run directories back: the one place the report modules learn what a run holds.

A run directory (see DESIGN.md) has ``summary.json`` and ``per_sample.csv`` and usually
``predictions.h5``. Tables and regression checks need only the summary; statistics need the
per-sample rows. Anything missing or unreadable is a :class:`BenchError` naming the file, so
``table``, ``compare`` and ``regress`` never show a traceback for a wrong path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pandas as pd

from marigold_bench.errors import BenchError
from marigold_bench.output_spaces import DEPTH_AFFINE

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
        """``per_sample.csv`` as a frame (read once, on first use)."""
        if self._per_sample is None:
            path = os.path.join(self.path, "per_sample.csv")
            if not os.path.isfile(path):
                raise BenchError(f"{self.path}: no per_sample.csv; is this a run directory?")
            self._per_sample = pd.read_csv(path, dtype={"id": str}, keep_default_na=False,
                                           na_values=[""])
        return self._per_sample

    def ok_samples(self) -> pd.DataFrame:
        """Per-sample rows of the samples that were scored (status ``ok``), indexed by id."""
        frame = self.per_sample()
        if "status" in frame:
            frame = frame[frame["status"] == "ok"]
        return frame.set_index("id")


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
