"""Score a finished run's cached predictions again, under any protocol, without a model.

A run directory holds everything needed: ``summary.json`` says which benchmark (and where its
data and split file were), which settings merged the members (the cache key) and how the run
was scored; ``predictions.h5`` holds every merged prediction. :func:`rescore_run` reloads the
ground truth and goes through the run loop (:func:`marigold_bench.eval.loop.score_loop` with a
:class:`~marigold_bench.eval.loop.CachedRunSource`), which reads each prediction once and scores
it under one or more resolved :class:`~marigold_bench.eval.protocols.Scoring` s; the
protocol-sensitivity table made of several is :mod:`marigold_bench.report.sensitivity`'s.

Nothing here imports torch: the cache is read with h5py (compact entries resized in numpy) and
scored on the host. Every check runs before anything is written, and each file is written
atomically, so a failed rescore leaves no half-written directory behind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from marigold_bench.errors import BenchError, SplitNotFoundError
from marigold_bench.eval.protocols import Scoring, resolve_scoring
from marigold_bench.eval.rundir import PREDICTIONS, load_run, recorded_choices, summarize, write_run


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

    Each choice given replaces the run's; once the protocol, the alignment or the output space
    changes, the choices not given (alignment, fit space, boundary F1) are the new defaults.
    """
    own = recorded_choices(run.summary)
    if (run.summary.get("task") or "depth") == "normals":  # no fit to choose: the frames stay the run's
        return resolve_scoring(run.dataset.protocol, protocol or own["protocol"], output_space=output_space,
                               alignment=alignment, fit_space=fit_space, boundary_f1=boundary_f1 or None,
                               frame=run.summary.get("frame"))
    changed = (protocol not in (None, own["protocol"])) or (alignment not in (None, own["alignment"])) \
        or (output_space not in (None, own["output_space"]))  # another space: its own default fit
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
    except SplitNotFoundError as exc:  # the split, not the data root, is what to fix
        raise SplitNotFoundError(f"{run_path}: cannot reload the run's {name} data ({exc}); give a --split "
                                 f"{name} has") from None
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
    from marigold_bench.eval.cache import PredictionCache, split_settings

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
    try:
        _check_samples(loaded, dataset, cache)
    except BenchError:
        cache.close()
        raise
    _, merge = split_settings(loaded.summary.get("settings") or {})
    return CachedRun(loaded.path, loaded.summary, rows, dataset, cache, merge, predictions)


def _check_samples(loaded, dataset, cache) -> None:
    """Refuse ground truth of another benchmark or split than the run's (a ``--split`` whose
    ids coincide with the run's would otherwise score its predictions against other images)."""
    from marigold_bench.errors import OtherSamplesError
    from marigold_bench.eval.samples import describe, first_other, recorded_samples, samples_of, stored_record

    new = samples_of(dataset)
    other = first_other(((os.path.join(loaded.path, "summary.json"), recorded_samples(loaded.summary)),
                         (cache.path, stored_record(cache.file))), new)
    if other is not None:
        where, old = other
        raise OtherSamplesError(f"{where} records a run of {describe(old)}, but the data reloaded for it is "
                                f"{describe(new)}: its predictions cannot be scored against that ground truth; "
                                "check --data-root/--split")


def score_cached(run: CachedRun, scorings: list[Scoring], progress: bool = False) -> tuple[list, dict]:
    """Every sample's records under each scoring (one list per scoring, in the run's order).

    Each prediction is read once and scored under all scorings. A sample the run recorded as
    failed or skipped without a cached prediction keeps its record.

    Raises:
        BenchError: a prediction the run scored is missing from the cache or cannot be read
            (named, with how many), or a sample's ground truth cannot be read.
    """
    from marigold_bench.eval.loop import CachedRunSource, score_loop

    source = CachedRunSource(run.cache, run.merge, run.rows, run.predictions)
    return score_loop(run.dataset, source, scorings, progress=progress)


def summary_of(run: CachedRun, records: list, scoring: Scoring, timings: dict | None = None) -> dict:
    """``summary.json`` of a rescore: the run's settings, the new scoring, where it came from."""
    extra = {"rescored_from": os.path.abspath(run.path)}
    if timings is not None:
        extra["rescore_timing"] = timings
    summary = summarize(records, run.dataset, run.summary.get("settings") or {}, extra, scoring=scoring)
    # the data may have been found elsewhere this time; the sample set is the run's
    summary["protocol"] = {**summary["protocol"], **{k: v for k, v in (run.summary.get("protocol") or {}).items()
                                                      if k in ("root", "source", "split_file")}}
    return summary


#: the two shapes of a rescore's --out: one scoring's run folder, or a sensitivity table with a
#: run folder per row (`combination_name`) beside ``sensitivity.md`` and ``sensitivity.csv``
SINGLE, TABLE = "a rescore", "a sensitivity table"


def _rescored_from(summary_path: str) -> tuple[bool, str | None]:
    """``(exists, the run it was rescored from)`` of a summary; the source is None for a
    summary that is not a rescore's (or cannot be read)."""
    import json

    if not os.path.isfile(summary_path):
        return False, None
    try:
        with open(summary_path) as f:
            source = json.load(f).get("rescored_from")
    except (OSError, ValueError, AttributeError):
        source = None
    return True, os.path.abspath(source) if source else None


def _is_table_row(folder: str) -> bool:
    # a row folder is named after the scoring its own summary records (`combination_name`)
    import json

    try:
        with open(os.path.join(folder, "summary.json")) as f:
            scoring = json.load(f).get("scoring") or {}
        return os.path.basename(folder) == row_name(scoring["protocol"], scoring["alignment"], scoring["fit_space"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return False


def earlier_rescores(out: str) -> list[tuple[str, set, str]]:
    """What ``out`` holds of earlier results: ``(shape, the runs they were made from, the file
    that says so)`` for a summary at its top (`SINGLE`; source None when it is not a rescore's)
    and for a sensitivity table (`TABLE`: its files or row folders, even of an interrupted
    write; no source when no row says). Empty for a new or empty folder."""
    from marigold_bench.eval.outdir import TABLE_FILES

    found = []
    exists, source = _rescored_from(os.path.join(out, "summary.json"))
    if exists:
        found.append((SINGLE, {source}, os.path.join(out, "summary.json")))
    rows = sorted(e.path for e in os.scandir(out) if e.is_dir() and _is_table_row(e.path)) if os.path.isdir(out) else []
    files = [os.path.join(out, name) for name in TABLE_FILES if os.path.isfile(os.path.join(out, name))]
    if rows or files:
        sources = {_rescored_from(os.path.join(row, "summary.json"))[1] for row in rows} or {None}
        found.append((TABLE, sources, (files or rows)[0]))
    return found


def check_out(run: CachedRun, out: str, table: bool = False) -> None:
    """Refuse to write over the run itself or over any other run's results.

    ``out`` may be new, empty, or an earlier rescore of this same run of the same shape (a
    single rescore, or a sensitivity table when ``table``): rescoring again replaces it. A
    folder with a ``predictions.h5``, with results that are not a rescore of ``run``, or with
    the other shape (a table's rows beside a single rescore's summary, or the reverse) is
    refused: writing there would mix two results in one folder, and a later rescore of the
    folder would read the other run's cache.
    """
    from marigold_bench.eval.outdir import check_writable

    if os.path.abspath(out) == os.path.abspath(run.path):
        raise BenchError(f"--out {out} is the run directory itself; choose another folder")
    check_writable(out)  # a file, a path under a file, or unwritable: the guard run and evaluate use
    if os.path.isfile(os.path.join(out, PREDICTIONS)):
        raise BenchError(f"--out {out} holds a run's {PREDICTIONS}; rescore results go to a folder of "
                         "their own: choose a new or empty folder")
    ours, wanted = os.path.abspath(run.path), TABLE if table else SINGLE
    for shape, sources, where in earlier_rescores(out):
        if sources != {ours}:
            named = sorted(source for source in sources if source and source != ours)
            origin = f": a rescore of {', '.join(named)}" if named else ""
            raise BenchError(f"--out {out} holds the results of another run ({where}{origin}); choose a new or "
                             f"empty folder, or an earlier rescore of {run.path}")
        if shape != wanted:
            raise BenchError(f"--out {out} holds {shape} of {run.path} ({where}); {wanted} would be written "
                             f"beside it: choose a new or empty folder (the same command again replaces {shape})")


def rescore_run(run: CachedRun, scoring: Scoring, out: str, progress: bool = False) -> dict:
    """Score ``run`` under ``scoring`` and write ``per_sample.csv`` and ``summary.json`` to ``out``."""
    check_out(run, out)
    t0 = time.perf_counter()
    (records,), timings = score_cached(run, [scoring], progress)
    summary = summary_of(run, records, scoring, {**timings, "total_s": time.perf_counter() - t0})
    write_run(out, records, summary)
    return summary


def combination_name(scoring: Scoring) -> str:
    """Folder name of one combination under a sensitivity table's folder."""
    return row_name(scoring.protocol, scoring.alignment, scoring.fit_space)


def row_name(protocol: str, alignment: str, fit_space: str) -> str:
    """The one spelling of a table row's folder (`combination_name`; read back by `_is_table_row`)."""
    return f"{protocol}_{alignment}_{fit_space}"


@dataclass(frozen=True)
class Undefined:
    """A row of a sensitivity table that its protocol does not define (with the reason)."""

    protocol: str
    alignment: str | None
    message: str


def write_combinations(run: CachedRun, out: str, scorings: list[Scoring], results: list[list]) -> list[str]:
    """One run folder per scoring under ``out`` (named by `combination_name`), from the records
    `score_cached` returned for them; returns the folders."""
    folders = []
    for scoring, records in zip(scorings, results):
        folders.append(os.path.join(out, combination_name(scoring)))
        write_run(folders[-1], records, summary_of(run, records, scoring))
    return folders
