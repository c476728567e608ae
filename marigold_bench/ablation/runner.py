"""Execute a study's runs into one study directory, skipping what is already done.

Layout of a study directory::

    study.json            which study, dataset and base settings it holds
    runs/<key>/           one run per planned Run: summary.json + per_sample.csv
                          (+ predictions.h5, except for runs that share members)
    members/<cache>/      shared member caches (the ensemble study): a run directory whose
                          predictions.h5 holds every member, re-merged for each N
    results.csv           one row per run; table.md, table.csv, plot.png/.pdf (see report.py)

A run counts as done when ``runs/<key>/summary.json`` records the same request (the full
inference settings, the study and the sample count). Anything else is (re)run through
:func:`marigold_bench.eval.evaluator.run_predictor`, whose prediction cache resumes a run that
was interrupted half-way; so rerunning an interrupted study continues where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pandas as pd

from marigold_bench.ablation.studies import Run, Study
from marigold_bench.errors import BenchError
from marigold_bench.eval.evaluator import run_predictor
from marigold_bench.eval.metrics import METRIC_KEYS
from marigold_bench.report.rundir import finished_summary, result_settings


def _normal(value):
    return json.loads(json.dumps(value, default=str))


def request_of(run: Run, base_settings: dict) -> dict:
    """The full settings one run asks for (base flags with the run's own on top).

    Settings that only decide where and how fast inference goes (device, batch size) are left
    out, so a study started on one machine may be finished on another.
    """
    return _normal(result_settings({**base_settings, **run.settings}))


def _identity(study: Study, dataset) -> dict:
    return {"study": study.name, "dataset": dataset.protocol.name, "n_samples": len(dataset)}


def _check_study_dir(out_dir: str, study: Study, dataset, base_settings: dict, runs: list[Run]) -> None:
    """Write ``study.json``, or refuse a directory that holds another study or dataset."""
    path = os.path.join(out_dir, "study.json")
    identity = _identity(study, dataset)
    if os.path.isfile(path):
        with open(path) as f:
            stored = json.load(f)
        other = {k: (stored.get(k), v) for k, v in identity.items() if k != "n_samples" and stored.get(k) != v}
        if other:
            said = ", ".join(f"{k} {old!r} (now {new!r})" for k, (old, new) in other.items())
            raise BenchError(f"{out_dir} holds another study: {said}; choose another --out")
    os.makedirs(out_dir, exist_ok=True)
    record = {**identity, "base_settings": _normal(base_settings),
              "runs": [{"key": r.key, "labels": r.labels, "settings": r.settings, "cache": r.cache} for r in runs]}
    with open(path, "w") as f:
        json.dump(record, f, indent=2, default=str)


def _done(result_dir: str, study: Study, request: dict, dataset) -> bool:
    summary = finished_summary(result_dir)
    if summary is None:
        return False
    recorded = summary.get("ablation") or {}
    return (recorded.get("study") == study.name and recorded.get("request") == request
            and summary.get("dataset") == dataset.protocol.name and summary.get("n_total") == len(dataset))


def _record_result(result_dir: str, summary: dict, source_dir: str, study: Study, run: Run,
                   request: dict) -> None:
    """Write the run's summary (with what the study asked for) and per-sample rows."""
    os.makedirs(result_dir, exist_ok=True)
    if os.path.abspath(source_dir) != os.path.abspath(result_dir):
        shutil.copyfile(os.path.join(source_dir, "per_sample.csv"), os.path.join(result_dir, "per_sample.csv"))
    ablation = {"study": study.name, "key": run.key, "labels": run.labels, "request": request,
                "predictions": os.path.relpath(os.path.join(source_dir, "predictions.h5"), result_dir)}
    # summary.json is written last and atomically (temporary file, then rename): a summary
    # with the ablation block marks the run as done, so a crash never leaves a false "done"
    fd, tmp = tempfile.mkstemp(dir=result_dir, prefix=".tmp-summary-")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({**summary, "ablation": ablation}, indent=2, default=str) + "\n")
    os.replace(tmp, os.path.join(result_dir, "summary.json"))


def run_study(study: Study, runs: list[Run], dataset, out_dir: str, make_predictor, base_settings: dict,
              progress: bool = True, log=print, run_options: dict | None = None) -> pd.DataFrame:
    """Run every planned run that is not done yet and collect all results.

    Args:
        study: the study spec.
        runs: from :func:`marigold_bench.ablation.studies.plan`.
        dataset: the evaluation dataset (any benchmark).
        out_dir: the study directory.
        make_predictor: ``settings -> predictor`` (the interface of ``run_predictor``); called
            with ``{**base_settings, **run.settings}``, only for runs that still need work.
        base_settings: the command's inference settings.
        log: where one line per run goes (``None`` for silence).
        run_options: keyword arguments of ``run_predictor`` for every run (``skip_missing``,
            ``score_device``, ...); ``scoring`` may be a function of the run's predictor.

    Returns:
        One row per run: ``key``, the run's labels, ``n``, ``n_total``, ``n_failed``,
        ``n_skipped``, ``n_no_valid``, every metric (fractions) and ``path``.
    """
    _check_study_dir(out_dir, study, dataset, base_settings, runs)
    rows = []
    for i, run in enumerate(runs, 1):
        result_dir = os.path.join(out_dir, "runs", run.key)
        request = request_of(run, base_settings)
        if _done(result_dir, study, request, dataset):
            if log:
                log(f"[{i}/{len(runs)}] {run.key}: done before, skipped")
        else:
            if log:
                log(f"[{i}/{len(runs)}] {run.key}: running")
            source = os.path.join(out_dir, "members", run.cache) if study.shared_members else result_dir
            predictor = make_predictor({**base_settings, **run.settings})
            options = dict(run_options or {})
            if callable(options.get("scoring")):  # resolved per predictor: it declares its output space
                options["scoring"] = options["scoring"](predictor)
            summary = run_predictor(dataset, predictor, source, progress=progress, **options)
            _record_result(result_dir, summary, source, study, run, request)
        with open(os.path.join(result_dir, "summary.json")) as f:
            summary = json.load(f)
        rows.append({"key": run.key, **run.labels,
                     **{k: summary.get(k) for k in ("n", "n_total", "n_failed", "n_skipped", "n_no_valid")},
                     **{m: summary["metrics"].get(m) for m in METRIC_KEYS}, "path": result_dir})
    return pd.DataFrame.from_records(rows)
