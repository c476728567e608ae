"""The run loop: one pass over a benchmark's samples, from a prediction source to scored records.

Every way of scoring goes through :func:`score_loop`: a model with its prediction cache
(:class:`PredictorSource`, ``marigold-bench run``), prediction files made by anything
(:class:`FileSource`, ``evaluate``), and a finished run's cache scored again
(:class:`CachedRunSource`, ``rescore``, several scorings at once for the sensitivity table).
Data flows one way: item -> prediction (source) -> :func:`score_sample` (alignment, metrics) ->
records; :func:`run_predictor` and :func:`evaluate_source` then write the run directory with
:mod:`marigold_bench.eval.rundir`.

Failures never disappear into an average: a sample whose files are missing, whose prediction is
missing, NaN/inf or misshapen, or that has no valid pixel is recorded with its status and counted
in the summary.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from marigold_bench.data.protocol import Protocol
from marigold_bench.errors import BenchError, DamagedEntryError, PredictionError, SampleError
from marigold_bench.eval.outdir import check_run_dir
from marigold_bench.eval.predictions import fit_to_shape
from marigold_bench.eval.progress import bar_label
from marigold_bench.eval.progress import progress as progress_bar
from marigold_bench.eval.protocols import Scoring, default_scoring
from marigold_bench.eval.rundir import FAILED, NO_VALID, OK, SKIPPED, summarize, write_run
from marigold_bench.eval.scoring import as_scoring, prediction_channels, scored_pixels
from marigold_bench.output_spaces import DEPTH_AFFINE

# torch is imported inside the calls that need a device: scoring cached predictions on the host
# (``rescore``) and reading run directories never load it


def score_sample(item: dict, pred: np.ndarray, protocol: Protocol | Scoring, device=None) -> dict:
    """Align one prediction to its ground truth and score it; returns a per-sample record.

    ``protocol`` is a resolved :class:`~marigold_bench.eval.protocols.Scoring` (see
    `marigold_bench.eval.protocols.resolve_scoring`) or a benchmark protocol (then the
    ``marigold`` protocol for depth predictions: today's numbers).
    ``device`` (e.g. ``"cuda"``) runs the alignment and metrics with torch there, in float64:
    the numbers of the default numpy path to float64 round-off, and milliseconds instead of
    seconds for ETH3D's 24 M-pixel frames on a GPU. None scores with numpy on the host.

    The ground truth is the item's entry the protocol names (``definition.target``: ``depth``,
    ``normals``); a protocol that ``wants_item`` also gets the item (intrinsics, segmentation).
    """
    scoring = as_scoring(protocol)
    definition = scoring.definition
    valid = scored_pixels(item, scoring)
    record = {"id": item["id"], "status": OK, "n_valid": int(valid.sum()), "message": ""}
    if record["n_valid"] == 0:
        return {**record, "status": NO_VALID, "message": "no valid ground-truth pixel"}
    target = item[definition.target]
    extra = {"item": item} if definition.wants_item else {}
    try:
        pred = fit_to_shape(pred, valid.shape, item["id"], prediction_channels(scoring))
        record.update(definition.score(item["id"], pred, target, valid, scoring, device, **extra))
    except (PredictionError, ValueError) as exc:
        record.update(status=FAILED, message=str(exc))
    return record


def skipped_record(sample_id: str) -> dict:
    """The record of a sample whose files are missing or unreadable (``--skip-missing``)."""
    return {"id": sample_id, "status": SKIPPED, "message": "sample files missing or unreadable", "n_valid": 0}


def failed_record(item: dict, error: Exception) -> dict:
    """The record of a sample that has no usable prediction (``error`` says why)."""
    return {"id": item["id"], "status": FAILED, "message": str(error), "n_valid": int(item["valid"].sum())}


#: with ``images_per_batch=0`` on a GPU, enough images per predict call for this many members
AUTO_GPU_MEMBERS = 8


def resolve_images_per_batch(images_per_batch: int, predictor=None) -> int:
    """``0`` (auto): one image at a time on the CPU, where batching gains little; on a GPU enough
    images for `AUTO_GPU_MEMBERS` members per call (8 at N=1, 1 at N=10): one 768x768 image per
    call left an H200 idle for half of a 1-step run. A predictor that knows its own best batch
    says so with an ``images_per_call`` attribute (transformers models: one forward pass per
    batch gains 1.3-1.8x on two CPU threads, benchmarks/README.md). Results do not depend on it."""
    if int(images_per_batch) < 0:
        raise BenchError(f"--images-per-batch must be >= 0 (0 = auto), got {images_per_batch}")
    if images_per_batch:
        return int(images_per_batch)
    hint = getattr(predictor, "images_per_call", None)
    if hint:
        return max(1, int(hint))
    import torch
    device = getattr(predictor, "device", None)
    if device is None or torch.device(device).type == "cpu":
        return 1
    return max(1, AUTO_GPU_MEMBERS // int(predictor.settings.get("ensemble", 1)))


def resolve_score_device(score_device, predictor=None):
    """``"auto"``: the predictor's device when it is a CUDA GPU, else None (numpy on the host).

    Scoring is float64, which Apple's MPS backend lacks; MPS runs score on the host."""
    if score_device in (None, "cpu"):
        return None
    import torch
    if score_device == "auto":
        device = getattr(predictor, "device", None)
        return device if device is not None and torch.device(device).type == "cuda" else None
    try:
        device = torch.device(score_device)
    except RuntimeError:
        raise BenchError(f"--score-device {score_device!r}: not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise BenchError(f"--score-device {score_device}: scoring runs on cpu or cuda (float64)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--score-device {score_device}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BenchError(f"--score-device {score_device}: only {torch.cuda.device_count()} CUDA device(s) present")
    return None if device.type == "cpu" else device


# --- reading samples ----------------------------------------------------------------------

class _Loader:
    """Items with their index; a missing/corrupt sample comes back as its SampleError."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = self.indices[i]
        try:
            return index, self.dataset[index]
        except SampleError as exc:
            return index, exc


def _read_items(dataset, indices, workers: int = 0, timings: dict | None = None):
    """Yield ``(index, item or its SampleError)`` in order.

    With ``workers > 0`` samples are decoded in worker processes (a torch DataLoader) while the
    main process predicts, so file I/O and decoding overlap with compute. The time the main
    process waits for the next item is added to ``timings["load_s"]``.
    """
    loader = _Loader(dataset, indices)
    if workers > 0:
        import torch.utils.data
        loader = torch.utils.data.DataLoader(loader, batch_size=None, shuffle=False,
                                             num_workers=workers, prefetch_factor=4,
                                             collate_fn=lambda x: x)
    stream = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            index, item = next(stream)
        except StopIteration:
            return
        if timings is not None:
            timings["load_s"] += time.perf_counter() - t0
        yield index, item


def iter_items(dataset, indices, skip_missing: bool, workers: int = 0, timings: dict | None = None):
    """Yield ``(index, item or None)`` in order; None marks a skipped sample (a missing or
    corrupt one raises its SampleError unless ``skip_missing``). See `_read_items`."""
    for index, item in _read_items(dataset, indices, workers, timings):
        if isinstance(item, SampleError):
            if not skip_missing:
                raise item
            item = None
        yield index, item


# --- prediction sources -------------------------------------------------------------------

class Source:
    """What :func:`score_loop` asks of a prediction source (the base answers for a source that
    has every prediction at hand and predicts nothing).

    Attributes:
        verb: the progress bar's word (``run``, ``evaluate``, ``rescore``).
        batch_size: samples waiting for `predict` before it is called.
        timings: the source's own timers (seconds), reported beside ``load_s`` and ``score_s``.
    """

    verb = "score"
    batch_size = 1

    def __init__(self):
        self.timings = {}

    def settled(self, dataset, indices) -> dict[int, dict]:
        """Records decided before any ground truth is read, by dataset index (their samples are
        never loaded). Default: none."""
        return {}

    def lookup(self, item: dict):
        """The prediction of ``item`` when the source has it (an array, scored at once), a final
        record (a dict, kept as it is) or None (to be made by `predict`). A PredictionError
        records the sample as failed."""
        raise NotImplementedError

    def predict(self, items: list[dict]) -> list:
        """Predictions of the items `lookup` left open, in order: an array, or the
        PredictionError that made that sample fail."""
        raise NotImplementedError(f"{type(self).__name__} predicts nothing")

    def unreadable(self, sample_id: str, error: SampleError) -> BenchError:
        """The error to stop with when a sample cannot be read (without ``skip_missing``)."""
        return error

    def finish(self) -> None:
        """Called once every sample went through (a source may refuse what it saw)."""


class FileSource(Source):
    """Predictions made by any model, read from a folder or an ``.h5`` file (``evaluate``).

    Args:
        files: a :class:`~marigold_bench.eval.predictions.PredictionSource`.
    """

    verb = "evaluate"

    def __init__(self, files):
        super().__init__()
        self.files = files

    def lookup(self, item):
        return self.files.get(item["id"])


class PredictorSource(Source):
    """A model with its prediction cache (``run``): cached merged predictions are used as they
    are, missing members are predicted in batches and written to the cache, then merged.

    Args:
        predictor: follows :class:`marigold_bench.inference.interface` (``settings`` with
            ``ensemble``, ``predict(jobs)`` and ``merge(members, shape)``).
        reader: the cache read from (the whole run's).
        writer: the cache written to (the same one, or this process's part under a launcher).
        merge_key: how members are merged (``split_settings``' second half).
        images_per_batch: images whose members go into one ``predict`` call.
    """

    verb = "run"

    def __init__(self, predictor, reader, writer, merge_key: dict, images_per_batch: int = 1):
        super().__init__()
        self.predictor, self.reader, self.writer, self.merge_key = predictor, reader, writer, merge_key
        self.batch_size = images_per_batch
        self.timings = {"predict_s": 0.0}
        self._have = {}  # sample id -> members already cached

    def lookup(self, item):
        cached = self.reader.prediction(item["id"], self.merge_key)
        if cached is not None:
            return cached
        have = self.reader.members(item["id"])
        self._have[item["id"]] = have if have is not None else np.zeros((0, 1, 1), np.float32)
        return None

    def _finish(self, item, members, fresh: bool) -> np.ndarray:
        if fresh:
            self.writer.put_members(item["id"], members)
        # stored at the model's resolution (compact cache); scored as it will be read back
        n = self.merge_key["n_members"]
        return self.writer.put_merged(item["id"], self.predictor, members[:n], item["valid"].shape,
                                      self.merge_key)

    def predict(self, items):
        n = self.merge_key["n_members"]
        haves = [self._have.pop(item["id"]) for item in items]
        jobs = [(item["id"], item["rgb"], list(range(len(have), n))) for item, have in zip(items, haves)
                if len(have) < n]
        t0 = time.perf_counter()
        failure = None
        try:
            outputs = dict(zip([j[0] for j in jobs], self.predictor.predict(jobs))) if jobs else {}
        except PredictionError as exc:
            partial = getattr(exc, "results", None)
            # a predictor that says which jobs failed keeps the others' outputs; one that does
            # not has its batch redone sample by sample, so one bad sample never sinks the rest
            outputs = None if partial is None else {j[0]: r for j, r in zip(jobs, partial) if r is not None}
            failure = exc
        self.timings["predict_s"] += time.perf_counter() - t0
        results = []
        for item, have in zip(items, haves):
            if len(have) >= n:
                results.append(self._finish(item, have, fresh=False))
                continue
            try:
                if outputs is None:
                    new = self.predictor.predict([(item["id"], item["rgb"], list(range(len(have), n)))])[0]
                elif item["id"] in outputs:
                    new = outputs[item["id"]]
                else:
                    raise failure
            except PredictionError as exc:
                results.append(exc)
                continue
            results.append(self._finish(item, new if len(have) == 0 else np.concatenate([have, new], axis=0),
                                        fresh=True))
        return results


class CachedRunSource(Source):
    """A finished run's cache (``rescore``): every merged prediction read back as the run scored
    it; a sample the run recorded as failed or skipped without a prediction keeps its record.

    Args:
        cache: the run's :class:`~marigold_bench.eval.cache.PredictionCache` (opened to read).
        merge: the run's merge key (a prediction merged otherwise is not the run's).
        rows: sample id -> the run's own per-sample record (``status``, ``message``, ``n_valid``).
        path: the cache's file, for messages.

    Raises (from `settled` and `finish`, before anything is written):
        BenchError: a prediction the run scored is missing or unreadable (named, with how many),
            or a sample's ground truth cannot be read.
    """

    verb = "rescore"

    def __init__(self, cache, merge: dict, rows: dict, path: str):
        super().__init__()
        self.cache, self.merge, self.rows, self.path = cache, merge, rows, path
        self.timings = {"read_s": 0.0}
        self.missing = []

    def _own(self, sample_id):
        own = self.rows[sample_id]
        return {k: own.get(k) for k in ("id", "status", "message", "n_valid")}

    def settled(self, dataset, indices):
        try:  # a damaged or incomplete cache is found before any time is spent scoring
            cached = set(self.cache.ids())
        except Exception as exc:
            raise BenchError(f"{self.path}: damaged prediction cache: cannot list it ({exc})") from None
        ids = [dataset.ids[i] for i in indices]
        self.missing = [sid for sid in ids if sid not in cached and self.rows[sid].get("status") in (OK, NO_VALID)]
        self.finish()
        # failed before a prediction existed, or skipped: nothing to score
        return {i: self._own(dataset.ids[i]) for i in indices if dataset.ids[i] not in cached}

    def lookup(self, item):
        sample_id = item["id"]
        t0 = time.perf_counter()
        try:
            pred = self.cache.prediction(sample_id, self.merge)
        except DamagedEntryError:
            raise  # fails its checksum: the loop reports the sample as failed, never scores it
        except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError on damaged data
            raise BenchError(f"{self.path}: damaged prediction cache: cannot read {sample_id} ({exc})") from None
        self.timings["read_s"] += time.perf_counter() - t0
        if pred is None:  # stored, but merged otherwise than the run merged it
            if self.rows[sample_id].get("status") in (OK, NO_VALID):
                self.missing.append(sample_id)
            return self._own(sample_id)
        return pred

    def unreadable(self, sample_id, error):
        return BenchError(f"cannot read the ground truth of {sample_id} ({error})")

    def finish(self):
        if self.missing:
            missing = self.missing
            raise BenchError(f"{self.path}: damaged or incomplete prediction cache: {len(missing)} "
                             f"sample(s) the run scored have no prediction there ({', '.join(missing[:5])}"
                             f"{', ...' if len(missing) > 5 else ''}); nothing was written")


# --- the loop -----------------------------------------------------------------------------

def score_loop(dataset, source: Source, scorings: list, indices=None, skip_missing: bool = False,
               workers: int = 0, progress: bool = True, score_device=None) -> tuple[list[list[dict]], dict]:
    """Score every sample of ``dataset`` (or ``indices`` of it) with predictions from ``source``.

    Args:
        dataset: the benchmark (items with ``id``, ``rgb``, ``depth``, ``valid``).
        source: a :class:`Source`.
        scorings: resolved :class:`~marigold_bench.eval.protocols.Scoring` s (or benchmark
            protocols); each prediction is read once and scored under all of them.
        skip_missing: record a sample whose files are missing or corrupt as skipped instead of
            stopping with its error.
        workers: sample-decoding processes (see `_read_items`).
        score_device: where alignment and metrics run (see `score_sample`); None: the host.

    Returns:
        One list of records per scoring, each in ``indices`` order, and the timings
        (``load_s``, the source's own, ``score_s``).
    """
    indices = list(range(len(dataset))) if indices is None else list(indices)
    timings = {"load_s": 0.0, **source.timings, "score_s": 0.0}
    done = {i: [dict(record) for _ in scorings] for i, record in source.settled(dataset, indices).items()}
    pending = []  # (index, item) whose prediction `source.predict` makes, in batches

    def score(index, item, prediction):
        t0 = time.perf_counter()
        done[index] = [score_sample(item, prediction, scoring, score_device) for scoring in scorings]
        timings["score_s"] += time.perf_counter() - t0

    def flush():
        if not pending:
            return
        for (index, item), result in zip(pending, source.predict([item for _, item in pending])):
            if isinstance(result, Exception):
                warnings.warn(str(result))
                done[index] = [failed_record(item, result) for _ in scorings]
            else:
                score(index, item, result)
        pending.clear()

    todo = [i for i in indices if i not in done]
    items = _read_items(dataset, todo, workers, timings)
    model = getattr(getattr(source, "predictor", None), "settings", {}).get("model")  # the bar names it
    for index, item in progress_bar(items, total=len(todo), desc=bar_label(source.verb, dataset.protocol.name, model),
                                    disable=not progress):
        if isinstance(item, SampleError):
            if not skip_missing:
                raise source.unreadable(dataset.ids[index], item)
            done[index] = [skipped_record(dataset.ids[index]) for _ in scorings]
            continue
        try:
            found = source.lookup(item)
        except PredictionError as exc:
            done[index] = [failed_record(item, exc) for _ in scorings]
            continue
        if found is None:
            pending.append((index, item))
            if len(pending) >= source.batch_size:
                flush()
        elif isinstance(found, dict):
            done[index] = [dict(found) for _ in scorings]
        else:
            score(index, item, found)
    flush()
    source.finish()
    timings.update(source.timings)
    return [[done[i][k] for i in indices] for k in range(len(scorings))], timings


# --- the two ways a run directory is made -------------------------------------------------

def evaluate_source(dataset, source, out_dir: str, skip_missing: bool = False,
                    settings: dict | None = None, progress: bool = True, score_device=None,
                    scoring: Scoring | None = None) -> dict:
    """Score predictions from a :class:`~marigold_bench.eval.predictions.PredictionSource`
    (on ``score_device`` if given, see `score_sample`; ``"auto"`` means the host here) under
    ``scoring`` (default: ``marigold`` for depth predictions) and write the run directory."""
    score_device = resolve_score_device(score_device)
    scoring = scoring or as_scoring(dataset.protocol)
    (records,), _ = score_loop(dataset, FileSource(source), [scoring], skip_missing=skip_missing,
                               progress=progress, score_device=score_device)
    summary = summarize(records, dataset, {**(settings or {}), **source.describe()}, scoring=scoring)
    write_run(out_dir, records, summary)
    return summary


def run_predictor(dataset, predictor, out_dir: str, skip_missing: bool = False,
                  progress: bool = True, images_per_batch: int = 0, workers: int = 0,
                  context=None, score_device="auto", scoring: Scoring | None = None) -> dict:
    """Predict (or read from the cache), score and write a whole run directory.

    ``predictor`` follows the interface of :class:`marigold_bench.inference.MarigoldPredictor`:
    ``settings`` (with ``ensemble``), ``predict(jobs)`` and ``merge(members, shape)``.
    Members already in ``predictions.h5`` are reused; only missing ones are predicted. Under
    ``accelerate launch``/``torchrun`` the samples are sharded across processes (see
    :mod:`marigold_bench.eval.distributed`); every process returns the same summary.
    ``images_per_batch`` images go into one ``predict`` call (0 = auto, see
    `resolve_images_per_batch`). ``workers`` decodes samples in that many background processes.
    ``score_device`` is where predictions are aligned and scored (see `score_sample`): ``"auto"``
    uses the predictor's CUDA GPU when it has one, ``"cpu"`` the host. ``scoring`` is the
    resolved protocol (default: ``marigold`` for the predictor's ``output_space``, so a disparity
    model is fitted in disparity space).
    """
    from marigold_bench.eval.cache import PredictionCache, legacy_member_settings, split_settings
    from marigold_bench.eval.distributed import Context, RunLock, fold_parts, part_path
    from marigold_bench.eval.samples import samples_of

    context = context or Context()
    scoring = scoring or default_scoring(dataset.protocol, getattr(predictor, "output_space", DEPTH_AFFINE))
    score_device = resolve_score_device(score_device, predictor)
    images_per_batch = resolve_images_per_batch(images_per_batch, predictor)
    if int(workers) < 0:
        raise BenchError(f"--workers must be >= 0 (0 = decode in line), got {workers}")
    check_run_dir(out_dir, dataset)  # never another command's folder, another split's, nor over a fuller run
    os.makedirs(out_dir, exist_ok=True)
    member_settings, merge_key = split_settings(predictor.settings)
    legacy = legacy_member_settings(predictor.settings)
    samples = samples_of(dataset)  # entries are keyed by id alone: the cache records whose ids they are
    main_path = os.path.join(out_dir, "predictions.h5")

    def fold():
        with PredictionCache(main_path, member_settings, legacy, samples=samples) as cache:  # checks both
            fold_parts(out_dir, cache)

    with RunLock(out_dir, context):
        context.on_main(fold)  # resume from whatever any earlier launch finished
        if context.world == 1:
            reader = writer = PredictionCache(main_path, member_settings, legacy, samples=samples)
        else:
            reader = PredictionCache(main_path, recompute_damaged=True)
            writer = PredictionCache(part_path(out_dir, context.rank), member_settings, legacy, samples=samples)
        try:
            source = PredictorSource(predictor, reader, writer, merge_key, images_per_batch)
            (records,), timings = score_loop(dataset, source, [scoring], context.shard(len(dataset)),
                                             skip_missing, workers, progress and context.is_main, score_device)
        finally:
            reader.close()
            writer.close()
        records = context.gather(records)
        timings = context.gather([timings])
        context.barrier()
        summary = None
        if context.is_main:
            if context.world > 1:
                fold()
            order = {sid: i for i, sid in enumerate(dataset.ids)}
            records.sort(key=lambda r: order[r["id"]])
            total = {k: sum(t[k] for t in timings) for k in timings[0]}
            summary = summarize(records, dataset, predictor.settings,
                                {"timing": {**total, "processes": context.world}}, scoring=scoring)
            write_run(out_dir, records, summary)
        return context.broadcast(summary)
