"""From dataset items and predictions to per-sample records and a summary.

Data flows one way: item -> prediction (cache or predictor) -> :func:`score_sample` (alignment,
metrics) -> records -> :func:`write_run` (``per_sample.csv``, ``summary.json``). Failures never
disappear into an average: a sample whose files are missing, whose prediction is NaN/inf or
misshapen, or that has no valid pixel is recorded with its status and counted in the summary.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import marigold_bench
from marigold_bench.data.protocol import Protocol
from marigold_bench.data.registry import subsets_of
from marigold_bench.errors import BenchError, PredictionError, SampleError
from marigold_bench.eval.metrics import METRIC_KEYS, mean_metrics
from marigold_bench.eval.protocols import Scoring, default_scoring
from marigold_bench.eval.scoring import align_and_score, as_scoring
from marigold_bench.eval.predictions import fit_to_shape
from marigold_bench.output_spaces import DEPTH_AFFINE

# torch is imported inside the calls that need a device: scoring cached predictions on the host
# (``rescore``) and reading run directories never load it

OK, FAILED, SKIPPED, NO_VALID = "ok", "failed", "skipped", "no_valid"


def score_sample(item: dict, pred: np.ndarray, protocol: Protocol | Scoring, device=None) -> dict:
    """Align one prediction to its ground truth and score it; returns a per-sample record.

    ``protocol`` is a resolved :class:`~marigold_bench.eval.protocols.Scoring` (see
    `marigold_bench.eval.protocols.resolve_scoring`) or a benchmark protocol (then the
    ``marigold`` protocol for depth predictions: today's numbers).
    ``device`` (e.g. ``"cuda"``) runs the alignment and metrics with torch there, in float64:
    the numbers of the default numpy path to float64 round-off, and milliseconds instead of
    seconds for ETH3D's 24 M-pixel frames on a GPU. None scores with numpy on the host.
    """
    record = {"id": item["id"], "status": OK, "n_valid": int(item["valid"].sum()), "message": ""}
    if record["n_valid"] == 0:
        return {**record, "status": NO_VALID, "message": "no valid ground-truth pixel"}
    try:
        pred = fit_to_shape(pred, item["depth"].shape, item["id"])
        record.update(align_and_score(item["id"], pred, item["depth"], item["valid"], protocol, device))
    except (PredictionError, ValueError) as exc:
        record.update(status=FAILED, message=str(exc))
    return record


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


def _atomic_write(path: str, text: str) -> None:
    # write next to the target and rename, so a crash never leaves half a file
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    os.replace(tmp, path)


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
    return {"marigold_bench": marigold_bench.__version__, "torch": _version("torch"),
            "diffusers": _version("diffusers"), "numpy": np.__version__}


def subset_of(dataset_name: str, sample_id: str) -> str | None:
    """The named subset a sample belongs to (DIODE: ``indoor`` or ``outdoor``), else None."""
    return next((name for name, member in subsets_of(dataset_name).items() if member(sample_id)), None)


def subsets(records: list[dict], dataset_name: str, keys) -> dict | None:
    """``{subset: {"n", "n_total", "metrics"}}`` plus ``"all"`` for benchmarks reported by parts
    (DIODE: indoor, outdoor, all, as papers disagree on which they print); None otherwise."""
    parts = subsets_of(dataset_name)
    if not parts:
        return None
    out = {}
    for name in (*parts, "all"):
        part = [r for r in records if name == "all" or parts[name](r["id"])]
        ok = [r for r in part if r["status"] == OK]
        out[name] = {"n": len(ok), "n_total": len(part), "metrics": mean_metrics(ok, keys)}
    return out


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
        "metrics": mean_metrics(ok, scoring.columns),
        "settings": settings,
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
    halves = subsets(records, dataset.protocol.name, scoring.columns)
    if halves is not None:
        summary["subsets"] = halves
    return {**summary, **(extra or {})}


def record_columns(summary: dict) -> list[str]:
    """``per_sample.csv``'s columns for a summary's scoring (the ten marigold metrics by default)."""
    scoring = summary.get("scoring") or {}
    metrics = list(scoring.get("metric_keys") or METRIC_KEYS)
    if scoring.get("boundary_f1_radius"):
        metrics.append("boundary_f1")
    extra = ["n_nonpositive"] if scoring.get("fit_space") == "disparity" else []
    return ["id", *metrics, "scale", "shift", *extra, "n_valid", "status", "message"]


def write_run(out_dir: str, records: list[dict], summary: dict) -> None:
    """Write ``per_sample.csv`` and ``summary.json`` atomically."""
    os.makedirs(out_dir, exist_ok=True)
    columns = record_columns(summary)
    frame = pd.DataFrame.from_records(records).reindex(columns=columns)
    _atomic_write(os.path.join(out_dir, "per_sample.csv"), frame.to_csv(index=False, float_format="%.8g"))
    _atomic_write(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2, default=str) + "\n")


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


def iter_items(dataset, indices, skip_missing: bool, workers: int = 0, timings: dict | None = None):
    """Yield ``(index, item or None)`` in order; None marks a skipped sample.

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
        if isinstance(item, SampleError):
            if not skip_missing:
                raise item
            item = None
        yield index, item


def evaluate_source(dataset, source, out_dir: str, skip_missing: bool = False,
                    settings: dict | None = None, progress: bool = True, score_device=None,
                    scoring: Scoring | None = None) -> dict:
    """Score predictions from a :class:`~marigold_bench.eval.predictions.PredictionSource`
    (on ``score_device`` if given, see `score_sample`; ``"auto"`` means the host here) under
    ``scoring`` (default: ``marigold`` for depth predictions)."""
    score_device = resolve_score_device(score_device)
    scoring = scoring or as_scoring(dataset.protocol)
    records = []
    items = iter_items(dataset, range(len(dataset)), skip_missing)
    for index, item in tqdm(items, total=len(dataset), desc=f"evaluate {dataset.protocol.name}",
                            disable=not progress):
        if item is None:
            records.append(_skipped(dataset.ids[index]))
            continue
        try:
            pred = source.get(item["id"])
        except PredictionError as exc:
            records.append(_failed(item, exc))
            continue
        records.append(score_sample(item, pred, scoring, score_device))
    summary = summarize(records, dataset, {**(settings or {}), **source.describe()}, scoring=scoring)
    write_run(out_dir, records, summary)
    return summary


def _skipped(sample_id: str) -> dict:
    return {"id": sample_id, "status": SKIPPED, "message": "sample files missing or unreadable", "n_valid": 0}


def _failed(item: dict, error: Exception) -> dict:
    return {"id": item["id"], "status": FAILED, "message": str(error), "n_valid": int(item["valid"].sum())}


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
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.eval.distributed import Context, RunLock, fold_parts, part_path

    context = context or Context()
    scoring = scoring or default_scoring(dataset.protocol, getattr(predictor, "output_space", DEPTH_AFFINE))
    score_device = resolve_score_device(score_device, predictor)
    images_per_batch = resolve_images_per_batch(images_per_batch, predictor)
    os.makedirs(out_dir, exist_ok=True)
    member_settings, merge_key = split_settings(predictor.settings)
    legacy = legacy_member_settings(predictor.settings)
    main_path = os.path.join(out_dir, "predictions.h5")

    def fold():
        with PredictionCache(main_path, member_settings, legacy) as cache:  # also checks the settings
            fold_parts(out_dir, cache)

    with RunLock(out_dir, context):
        context.on_main(fold)  # resume from whatever any earlier launch finished
        if context.world == 1:
            reader = writer = PredictionCache(main_path, member_settings, legacy)
        else:
            reader = PredictionCache(main_path)
            writer = PredictionCache(part_path(out_dir, context.rank), member_settings, legacy)
        try:
            records, timings = _predict_and_score(
                dataset, context.shard(len(dataset)), predictor, reader, writer, merge_key,
                skip_missing, progress and context.is_main, images_per_batch, workers, score_device,
                scoring)
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


def _predict_and_score(dataset, indices, predictor, reader, writer, merge_key, skip_missing,
                       progress, images_per_batch, workers, score_device=None, scoring=None):
    """The per-process loop: cached samples are scored at once, the others predicted in batches."""
    n = merge_key["n_members"]
    records, timings = [], {"load_s": 0.0, "predict_s": 0.0, "score_s": 0.0}
    pending = []  # (item, cached members) waiting for a batched predict call

    def finish(item, members, fresh):
        if fresh:
            writer.put_members(item["id"], members)
        # stored at the model's resolution (compact cache); scored as it will be read back
        depth = writer.put_merged(item["id"], predictor, members[:n], item["depth"].shape, merge_key)
        records.append(_score_timed(item, depth, scoring or dataset.protocol, timings, score_device))

    def flush():
        jobs = [(item["id"], item["rgb"], list(range(len(have), n))) for item, have in pending if len(have) < n]
        t0 = time.perf_counter()
        failure = None
        try:
            outputs = dict(zip([j[0] for j in jobs], predictor.predict(jobs))) if jobs else {}
        except PredictionError as exc:
            partial = getattr(exc, "results", None)
            # a predictor that says which jobs failed keeps the others' outputs; one that does
            # not has its batch redone sample by sample, so one bad sample never sinks the rest
            outputs = None if partial is None else {j[0]: r for j, r in zip(jobs, partial) if r is not None}
            failure = exc
        timings["predict_s"] += time.perf_counter() - t0
        for item, have in pending:
            if len(have) >= n:
                finish(item, have, fresh=False)
                continue
            try:
                if outputs is None:
                    new = predictor.predict([(item["id"], item["rgb"], list(range(len(have), n)))])[0]
                elif item["id"] in outputs:
                    new = outputs[item["id"]]
                else:
                    raise failure
            except PredictionError as exc:
                warnings.warn(str(exc))
                records.append(_failed(item, exc))
                continue
            finish(item, _join(have, new), fresh=True)
        pending.clear()

    items = iter_items(dataset, indices, skip_missing, workers, timings)
    for index, item in tqdm(items, total=len(indices), desc=f"run {dataset.protocol.name}",
                            disable=not progress):
        if item is None:
            records.append(_skipped(dataset.ids[index]))
            continue
        cached = reader.prediction(item["id"], merge_key)
        if cached is not None:
            records.append(_score_timed(item, cached, scoring or dataset.protocol, timings, score_device))
            continue
        have = reader.members(item["id"])
        pending.append((item, have if have is not None else np.zeros((0, 1, 1), np.float32)))
        if len(pending) >= images_per_batch:
            flush()
    flush()
    return records, timings


def _join(have: np.ndarray, new: np.ndarray) -> np.ndarray:
    return new if len(have) == 0 else np.concatenate([have, new], axis=0)


def _score_timed(item, depth, protocol, timings, device=None):
    t0 = time.perf_counter()
    record = score_sample(item, depth, protocol, device)
    timings["score_s"] += time.perf_counter() - t0
    return record
