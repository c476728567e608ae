"""Score a finished run's cached predictions again, under any protocol, without a model.

A run directory holds everything needed: ``summary.json`` says which benchmark (and where its
data and split file were), which settings merged the members (the cache key) and how the run
was scored; ``predictions.h5`` holds every merged prediction. :func:`rescore_run` reloads the
ground truth, reads each prediction once and scores it under one or more resolved
:class:`~marigold_bench.eval.protocols.Scoring` s; :func:`sensitivity_table` turns several
into one table of headline means with their bootstrap intervals.

Nothing here imports torch: the cache is read with h5py (compact entries resized in numpy) and
scored on the host. Every check runs before anything is written, and each file is written
atomically, so a failed rescore leaves no half-written directory behind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from marigold_bench.errors import BenchError, SampleError
from marigold_bench.eval.protocols import Scoring, resolve_scoring
from marigold_bench.report.rundir import recorded_choices

PREDICTIONS = "predictions.h5"

#: the headline metrics of the sensitivity table
SENSITIVITY_METRICS = ("abs_rel", "delta1")


@dataclass
class CachedRun:
    """A run directory opened for rescoring: its summary, per-sample rows, dataset and cache."""

    path: str
    summary: dict
    rows: dict            # sample id -> the run's own per-sample record (status, message, n_valid)
    dataset: object
    cache: object
    merge: dict
    predictions: str

    def close(self) -> None:
        self.cache.close()


def resolve_for_run(run: CachedRun, protocol: str | None = None, alignment: str | None = None,
                    fit_space: str | None = None, output_space: str | None = None,
                    boundary_f1: int | None = None) -> Scoring:
    """The scoring of a rescore: the run's own where nothing is asked for.

    Each choice given replaces the run's; once the protocol or the alignment changes, the
    choices not given (alignment, fit space, boundary F1) are the new protocol's defaults.
    """
    own = recorded_choices(run.summary)
    changed = (protocol not in (None, own["protocol"])) or (alignment not in (None, own["alignment"]))
    return resolve_scoring(
        run.dataset.protocol, protocol or own["protocol"],
        output_space=output_space or own["output_space"],
        alignment=alignment if changed else (alignment or own["alignment"]),
        fit_space=fit_space if (changed or output_space) else (fit_space or own["fit_space"]),
        boundary_f1=boundary_f1 if (changed or boundary_f1 is not None) else own["boundary_f1"])


def _predictions_file(path: str, summary: dict) -> str:
    here = os.path.join(path, PREDICTIONS)
    if os.path.isfile(here):
        return here
    source = summary.get("rescored_from")  # a rescore's directory points at the run it scored
    if source and os.path.isfile(os.path.join(source, PREDICTIONS)):
        return os.path.join(source, PREDICTIONS)
    raise BenchError(f"{path}: no {PREDICTIONS} (the prediction cache `marigold-bench run` writes); "
                     "only a run directory with its cached predictions can be rescored")


def _reload_dataset(summary: dict, run_path: str, data_root=None, split=None):
    """The run's benchmark, from the data and split file it recorded (or the ones given)."""
    from marigold_bench.data import get_benchmark, load_dataset

    name = summary["dataset"]
    recorded = summary.get("protocol") or {}
    if not get_benchmark(name).needs_root:  # rendered, not read: its split is a name and a count
        if split is None:
            split = str(recorded.get("split", "test")).split(":", 1)[-1]
            split += f":{recorded['count']}" if recorded.get("count") else ""  # e.g. "test:4"
    else:
        split = split or recorded.get("split_file")
        if split and not os.path.isfile(split) and not recorded.get("split_official"):
            raise BenchError(f"{run_path}: the run's split file {split} is not on this machine; give --split")
    root = data_root or recorded.get("root")
    try:
        dataset = load_dataset(name, root, split)
    except BenchError as exc:
        raise BenchError(f"{run_path}: cannot reload the run's {name} data ({exc}); "
                         "point --data-root at it") from None
    return dataset.subset(recorded.get("max_samples"))


def open_run(path: str, data_root=None, split=None) -> CachedRun:
    """Open a finished run for rescoring.

    Raises:
        BenchError: not a run directory, no ``predictions.h5``, a cache that cannot be opened,
            or ground truth whose samples are not the run's.
    """
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.eval.evaluator import split_settings
    from marigold_bench.report.rundir import load_run

    loaded = load_run(path)
    predictions = _predictions_file(loaded.path, loaded.summary)
    frame = loaded.per_sample()
    rows = {str(r["id"]): r for r in frame.to_dict("records")}
    dataset = _reload_dataset(loaded.summary, loaded.path, data_root, split)
    if list(dataset.ids) != list(rows):
        only_run = [i for i in rows if i not in set(dataset.ids)]
        raise BenchError(f"{loaded.path}: the reloaded {loaded.dataset} data does not hold the run's "
                         f"{len(rows)} samples ({len(only_run)} of them missing, e.g. "
                         f"{', '.join(only_run[:3]) or 'order differs'}); check --data-root/--split")
    try:
        cache = PredictionCache(predictions)
    except BenchError as exc:
        raise BenchError(f"{predictions}: damaged prediction cache, cannot be opened ({exc})") from None
    _, merge = split_settings(loaded.summary.get("settings") or {})
    return CachedRun(loaded.path, loaded.summary, rows, dataset, cache, merge, predictions)


def score_cached(run: CachedRun, scorings: list[Scoring], progress: bool = False) -> tuple[list, dict]:
    """Every sample's records under each scoring (one list per scoring, in the run's order).

    Each prediction is read once and scored under all scorings. A sample the run recorded as
    failed or skipped without a cached prediction keeps its record.

    Raises:
        BenchError: a prediction the run scored is missing from the cache or cannot be read
            (named, with how many), or a sample's ground truth cannot be read.
    """
    from tqdm.auto import tqdm

    from marigold_bench.eval.evaluator import NO_VALID, OK, score_sample

    out = [[] for _ in scorings]
    timings = {"load_s": 0.0, "read_s": 0.0, "score_s": 0.0}
    try:  # a damaged or incomplete cache is found before any time is spent scoring
        cached = set(run.cache.ids())
    except Exception as exc:
        raise BenchError(f"{run.predictions}: damaged prediction cache: cannot list it ({exc})") from None
    missing = [sid for sid in run.dataset.ids
               if sid not in cached and run.rows[sid].get("status") in (OK, NO_VALID)]
    _refuse_missing(run, missing)
    for index in tqdm(range(len(run.dataset)), desc=f"rescore {run.summary['dataset']}", disable=not progress):
        sample_id = run.dataset.ids[index]
        own = run.rows[sample_id]
        t0 = time.perf_counter()
        try:
            pred = run.cache.prediction(sample_id, run.merge)
        except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError on damaged data
            raise BenchError(f"{run.predictions}: damaged prediction cache: cannot read {sample_id} ({exc})") from None
        t1 = time.perf_counter()
        timings["read_s"] += t1 - t0
        if pred is None:
            if own.get("status") in (OK, NO_VALID):
                missing.append(sample_id)
            else:  # failed before a prediction existed, or skipped: nothing to score
                for records in out:
                    records.append({k: own.get(k) for k in ("id", "status", "message", "n_valid")})
            continue
        try:
            item = run.dataset[index]
        except SampleError as exc:
            raise BenchError(f"cannot read the ground truth of {sample_id} ({exc})") from None
        t2 = time.perf_counter()
        timings["load_s"] += t2 - t1
        for records, scoring in zip(out, scorings):
            records.append(score_sample(item, pred, scoring))
        timings["score_s"] += time.perf_counter() - t2
    _refuse_missing(run, missing)
    return out, timings


def _refuse_missing(run: CachedRun, missing: list) -> None:
    if missing:
        raise BenchError(f"{run.predictions}: damaged or incomplete prediction cache: {len(missing)} "
                         f"sample(s) the run scored have no prediction there ({', '.join(missing[:5])}"
                         f"{', ...' if len(missing) > 5 else ''}); nothing was written")


def summary_of(run: CachedRun, records: list, scoring: Scoring, timings: dict | None = None) -> dict:
    """``summary.json`` of a rescore: the run's settings, the new scoring, where it came from."""
    from marigold_bench.eval.evaluator import summarize

    extra = {"rescored_from": os.path.abspath(run.path)}
    if timings is not None:
        extra["rescore_timing"] = timings
    summary = summarize(records, run.dataset, run.summary.get("settings") or {}, extra, scoring=scoring)
    # the data may have been found elsewhere this time; the sample set is the run's
    summary["protocol"] = {**summary["protocol"], **{k: v for k, v in (run.summary.get("protocol") or {}).items()
                                                      if k in ("root", "source", "split_file")}}
    return summary


def check_out(run: CachedRun, out: str) -> None:
    """Refuse to write over the run itself or over any other run's results.

    ``out`` may be new, empty, or an earlier rescore of this same run (rescoring again
    replaces it). A folder with a ``predictions.h5``, or with a ``summary.json`` that is not a
    rescore of ``run``, belongs to another run: writing there would leave its cache beside
    our records, and a later rescore of the folder would read that cache.
    """
    import json

    if os.path.abspath(out) == os.path.abspath(run.path):
        raise BenchError(f"--out {out} is the run directory itself; choose another folder")
    if os.path.exists(out) and not os.path.isdir(out):
        raise BenchError(f"--out {out} exists and is not a folder")
    if os.path.isfile(os.path.join(out, PREDICTIONS)):
        raise BenchError(f"--out {out} holds a run's {PREDICTIONS}; rescore results go to a folder of "
                         "their own: choose a new or empty folder")
    summary = os.path.join(out, "summary.json")
    if os.path.isfile(summary):
        try:
            with open(summary) as f:
                source = json.load(f).get("rescored_from")
        except (OSError, ValueError, AttributeError):
            source = None
        if source is None or os.path.abspath(source) != os.path.abspath(run.path):
            raise BenchError(f"--out {out} holds the results of another run ({summary}); choose a new or "
                             f"empty folder, or an earlier rescore of {run.path}")


def rescore_run(run: CachedRun, scoring: Scoring, out: str, progress: bool = False) -> dict:
    """Score ``run`` under ``scoring`` and write ``per_sample.csv`` and ``summary.json`` to ``out``."""
    from marigold_bench.eval.evaluator import write_run

    check_out(run, out)
    t0 = time.perf_counter()
    (records,), timings = score_cached(run, [scoring], progress)
    summary = summary_of(run, records, scoring, {**timings, "total_s": time.perf_counter() - t0})
    write_run(out, records, summary)
    return summary


def combination_name(scoring: Scoring) -> str:
    """Folder name of one combination under a sensitivity table's folder."""
    return f"{scoring.protocol}_{scoring.alignment}_{scoring.fit_space}"


@dataclass(frozen=True)
class Undefined:
    """A row of a sensitivity table that its protocol does not define (with the reason)."""

    protocol: str
    alignment: str | None
    message: str


def sensitivity(run: CachedRun, entries: list, out: str, progress: bool = False,
                n_resamples: int = 10_000, seed: int = 0):
    """Score ``run`` under every scoring, write one run folder per combination under ``out``
    and the table (``sensitivity.md``, ``sensitivity.csv``); returns the table as a frame.

    ``entries`` are :class:`Scoring` s or :class:`Undefined` rows, in table order. Rows are
    (protocol, alignment, fit space); columns the headline means with the bootstrap 95 %
    interval of `marigold_bench.report.stats.bootstrap_ci` over the ok samples; an undefined
    row has no numbers and says why in ``note``.
    """
    import math

    import pandas as pd

    from marigold_bench.eval.evaluator import OK, _atomic_write, write_run
    from marigold_bench.report.stats import bootstrap_ci

    check_out(run, out)
    scorings = [e for e in entries if isinstance(e, Scoring)]
    names = [combination_name(s) for s in scorings]
    if len(set(names)) != len(names):
        raise BenchError("the same protocol and alignment is asked for twice")
    results, timings = score_cached(run, scorings, progress)
    by_name = dict(zip(names, results))
    rows = []
    for entry in entries:
        if isinstance(entry, Undefined):
            rows.append({"protocol": entry.protocol, "alignment": entry.alignment or "default", "fit_space": "",
                         "n": 0, "n_total": len(run.dataset),
                         **{f"{m}{end}": math.nan for m in SENSITIVITY_METRICS for end in ("", "_low", "_high")},
                         "note": entry.message})
            continue
        records = by_name[combination_name(entry)]
        ok = [r for r in records if r["status"] == OK]
        row = {"protocol": entry.protocol, "alignment": entry.alignment, "fit_space": entry.fit_space,
               "n": len(ok), "n_total": len(records)}
        for metric in SENSITIVITY_METRICS:
            iv = bootstrap_ci([r[metric] for r in ok], n_resamples=n_resamples, seed=seed)
            row.update({metric: iv.mean, f"{metric}_low": iv.low, f"{metric}_high": iv.high})
        rows.append({**row, "note": ""})
    frame = pd.DataFrame(rows)
    # all scoring is done: only now is anything written
    for scoring, name, records in zip(scorings, names, results):
        write_run(os.path.join(out, name), records, summary_of(run, records, scoring))
    _atomic_write(os.path.join(out, "sensitivity.csv"), frame.to_csv(index=False, float_format="%.8g"))
    _atomic_write(os.path.join(out, "sensitivity.md"), render_sensitivity(frame, run) + "\n")
    return frame


def render_sensitivity(frame, run: CachedRun | None = None) -> str:
    """The table as GitHub Markdown, metrics ×100 as papers print them; rows a protocol does
    not define are listed under the table with the reason."""
    import math

    from tabulate import tabulate

    def cell(row, metric):
        if row.get("note"):
            return "not defined"
        mean, low, high = (100 * row[metric], 100 * row[f"{metric}_low"], 100 * row[f"{metric}_high"])
        return f"{mean:.2f}" if math.isnan(low) else f"{mean:.2f} [{low:.2f}, {high:.2f}]"

    body = [[r["protocol"], r["alignment"], r["fit_space"], f"{r['n']}/{r['n_total']}",
             cell(r, "abs_rel"), cell(r, "delta1")] for _, r in frame.iterrows()]
    table = tabulate(body, headers=["protocol", "alignment", "fit space", "n", "AbsRel↓ ×100 [95% CI]",
                                    "δ1↑ ×100 [95% CI]"], tablefmt="github", disable_numparse=True)
    notes = [f"\n{r['protocol']} / {r['alignment']}: {r['note']}" for _, r in frame.iterrows() if r.get("note")]
    table += "\n" + "".join(notes) if notes else ""
    if run is None:
        return table
    head = (f"Protocol sensitivity of {run.path} ({run.summary['dataset']}, "
            f"{recorded_choices(run.summary)['output_space']}); bootstrap 95% intervals over samples.\n\n")
    return head + table
