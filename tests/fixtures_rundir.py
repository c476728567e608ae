"""Run directories written by hand for the report tests, in the one format the suite writes.

Every test that needs a finished run without running a model makes it here, and the files go
through :func:`marigold_bench.eval.rundir.write_run` (``per_sample.csv`` with the scoring's
columns, ``summary.json``), so a change of the format is made once and reaches every fake.
What a test states (metric means, counts, settings, protocol facts, how it was scored) is
written as given; what it leaves out is derived from the per-sample records when there are
any (means over the ``ok`` samples, counts by status), independently of the suite's own
``summarize``.
"""

from __future__ import annotations

import math
import os

from marigold_bench.eval.rundir import FAILED, NO_VALID, OK, SKIPPED, versions, write_run

#: the per-sample fields that are not metrics
NOT_METRICS = ("id", "status", "message", "n_valid", "scale", "shift", "n_nonpositive")


def records_from_columns(columns: dict) -> list[dict]:
    """``{"id": [...], "abs_rel": [...], ...}`` -> one record per sample (None becomes NaN)."""
    n = len(columns["id"])
    return [{k: (math.nan if v[i] is None else v[i]) for k, v in columns.items()} for i in range(n)]


def write_fake_run(folder, records: list[dict] | None = None, *, dataset: str = "nyu",
                   metrics: dict | None = None, n: int | None = None, n_total: int | None = None,
                   settings: dict | None = None, protocol: dict | None = None, scoring: dict | None = None,
                   **extra) -> str:
    """Write a finished run directory at ``folder``; returns it as a string.

    Args:
        records: per-sample records (``id``, ``status`` and metric values); None for a run known
            only by its summary (then ``metrics`` and ``n`` are required and ``per_sample.csv``
            has its header only).
        dataset: the benchmark name (``summary["dataset"]``, ``protocol["name"]``).
        metrics, n, n_total: the summary's means and counts (default: from ``records``).
        settings: the run's settings.
        protocol: the benchmark facts recorded under ``summary["protocol"]`` (besides its name).
        scoring: how the run was scored (``Scoring.to_dict`` keys); None: a run of 0.2, which
            recorded none. With ``records``, its ``metric_keys`` default to the records' metrics.
        extra: further top-level summary entries (``subsets``, ``versions``, ``leaderboard``, ...).
    """
    folder = os.fspath(folder)
    keys = []
    for record in records or []:
        keys += [k for k in record if k not in NOT_METRICS and k not in keys]
    ok = [r for r in records or [] if r.get("status", OK) == OK]
    if records is not None:
        records = [{"status": OK, "message": "", **r} for r in records]
        metrics = metrics if metrics is not None else {k: sum(r[k] for r in ok) / len(ok) for k in keys} if ok else {}
        n = len(ok) if n is None else n
        n_total = len(records) if n_total is None else n_total
        if scoring is not None or keys:
            scoring = {"metric_keys": keys, **(scoring or {})}
    elif metrics is None or n is None:
        raise ValueError("a run without per-sample records needs its metrics and n")
    n_total = n if n_total is None else n_total
    counts = {s: sum(r["status"] == s for r in records or []) for s in (FAILED, SKIPPED, NO_VALID)}
    if records is None:
        counts[FAILED] = n_total - n
    summary = {"dataset": dataset, "n": n, "n_total": n_total,
               "n_failed": counts[FAILED], "n_skipped": counts[SKIPPED], "n_no_valid": counts[NO_VALID],
               "metrics": metrics, "settings": settings or {}, "protocol": {"name": dataset, **(protocol or {})},
               "versions": versions()}
    if scoring is not None:
        summary["scoring"] = scoring
    summary.update(extra)
    write_run(folder, records or [], summary)
    return folder
