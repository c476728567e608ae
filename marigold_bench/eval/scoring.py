"""The protocol's work on one sample -- align the prediction, score it -- made fast where it runs.

What is done comes from a resolved :class:`~marigold_bench.eval.protocols.Scoring` (protocol,
alignment, fit space, clipping, metric definitions); a benchmark
:class:`~marigold_bench.data.protocol.Protocol` alone means the ``marigold`` protocol for depth
predictions, today's behaviour.

``marigold`` definitions: on the host, a frame is cut into blocks of rows that threads mask,
align and sum in parallel (numpy releases the GIL); the fit reads only its (downsampled) copy,
and no whole-frame float64 array is made. On a GPU, whole maps go to the device and are reduced
with masked sums (`marigold_bench.eval.metrics.compute_metrics`). Both give the numbers of
`align_and_clip` followed by `compute_metrics` to float64 round-off. Every alignment is one
scale and shift in a fit space, so ``scale``, ``median`` and ``none`` take the same two paths.

``moge`` definitions run on the host only (MoGe's fits work on a 64x64 subsample; a GPU would
gain nothing there): `marigold_bench.eval.moge` aligns and scores the whole map.

torch is imported only when a device is asked for, so scoring cached predictions on the host
(``rescore``) never loads it.
"""

from __future__ import annotations

import warnings

import numpy as np

from marigold_bench.errors import PredictionError
from marigold_bench.eval.align import (apply_scale_shift, clip_to_range, fit_median_scale, fit_scale_least_squares,
                                       fit_scale_shift)
from marigold_bench.eval.metrics import (CHUNK, add_sums, block_sums, check_pixels, compute_metrics,
                                         metrics_from_sums, scorable)
from marigold_bench.eval.protocols import Scoring, default_scoring
from marigold_bench.eval.threads import map_in_threads


def as_scoring(protocol) -> Scoring:
    """A :class:`Scoring` as is; a benchmark protocol as the default (``marigold``) scoring."""
    return protocol if isinstance(protocol, Scoring) else default_scoring(protocol)


def align_and_score(sample_id: str, pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, protocol,
                    device=None) -> dict:
    """Metrics, ``scale`` and ``shift`` of one prediction (HxW, ground-truth size).

    Args:
        protocol: a resolved :class:`~marigold_bench.eval.protocols.Scoring`, or a benchmark
            protocol (then: ``marigold``, depth predictions, the protocol's fit space).
        device: a CUDA device scores there (``marigold`` definitions); if it runs out of memory
            the host takes over.

    Returns:
        every metric column of the scoring, ``scale`` and ``shift`` (in the fit space), and under
        a disparity fit ``n_nonpositive``: valid pixels predicted <= 0, which have no disparity
        (the marigold fit leaves them out, MoGe's fits keep them; either way they are counted).

    Raises:
        PredictionError: the prediction is NaN/inf on a valid pixel.
        ValueError: too few valid pixels to fit, or aligned values that cannot be scored.
    """
    scoring = as_scoring(protocol)
    valid = np.asarray(valid, dtype=bool)  # an integer mask would index, not mask
    if scoring.metric_definitions == "moge":
        return _moge(sample_id, pred, depth, valid, scoring)
    if device is not None:
        import torch
        try:
            return _on_device(sample_id, pred, depth, valid, scoring, device)
        except torch.cuda.OutOfMemoryError:
            # float64 temporaries of a 24 M-pixel frame need 1-2 GB; the host can always score
            torch.cuda.empty_cache()
            warnings.warn(f"{sample_id}: out of GPU memory while scoring; scoring on the host")
    return _on_host(sample_id, pred, depth, valid, scoring)


def fit(pred, depth, valid, scoring: Scoring) -> tuple[float, float]:
    """``(scale, shift)`` of the scoring's alignment, in its fit space (numpy or tensors).

    ``affine`` is today's least squares (`fit_scale_shift`); ``scale`` and ``median`` fit one
    scale (shift 0) on the same (downsampled) copy; ``none`` is (1, 0).
    """
    if scoring.alignment == "none":
        return 1.0, 0.0
    if scoring.alignment == "affine":
        return fit_scale_shift(pred, depth, valid, scoring.fit_space, scoring.fit_max_resolution,
                               scoring.fit_downsample)
    options = dict(space=scoring.fit_space, max_resolution=scoring.fit_max_resolution,
                   downsample=scoring.fit_downsample)
    if scoring.alignment == "scale":
        return float(fit_scale_least_squares(pred, depth, valid, **options)), 0.0
    if scoring.alignment == "median":
        return float(fit_median_scale(pred, depth, valid, **options)), 0.0
    raise ValueError(f"unknown alignment {scoring.alignment!r}")


def _finish(scoring: Scoring, aligned):
    return clip_to_range(aligned, scoring) if scoring.clip_to_range else aligned


def _extras(scoring, record, pred, depth, valid, scale, shift, n_nonpositive):
    record.update(scale=scale, shift=shift)
    if scoring.fit_space == "disparity":
        record["n_nonpositive"] = int(n_nonpositive)
    if scoring.boundary_f1_radius:
        from marigold_bench.eval.boundary import boundary_f1
        aligned = _finish(scoring, apply_scale_shift(pred, scale, shift, scoring.fit_space))
        record["boundary_f1"] = float(boundary_f1(aligned, depth, valid, radius=scoring.boundary_f1_radius))
    return record


def _on_device(sample_id, pred, depth, valid, scoring, device) -> dict:
    import torch
    host = (pred, depth, valid)
    pred, depth, valid = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in host)
    if not bool((torch.isfinite(pred) | ~valid).all()):
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    nonpositive = int((valid & (pred <= 0)).sum()) if scoring.fit_space == "disparity" else 0
    scale, shift = fit(pred, depth, valid, scoring)
    aligned = _finish(scoring, apply_scale_shift(pred, scale, shift, scoring.fit_space))
    record = compute_metrics(aligned, depth, valid)
    # boundary F1 and the counts are host work on the original arrays
    return _extras(scoring, record, *host, scale, shift, nonpositive)


def _on_host(sample_id, pred, depth, valid, scoring) -> dict:
    rows = max(1, CHUNK // max(pred.shape[1], 1))
    starts = range(0, pred.shape[0], rows)

    def gather(r):  # the valid pixels of a block of rows
        keep = valid[r:r + rows]
        p = pred[r:r + rows][keep]
        return p, depth[r:r + rows][keep], bool(np.isfinite(p).all())

    blocks = map_in_threads(gather, starts)
    if not all(finite for _, _, finite in blocks):
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    scale, shift = fit(pred, depth, valid, scoring)

    def score(block):
        p, g, _ = block
        aligned = _finish(scoring, apply_scale_shift(p, scale, shift, scoring.fit_space))
        g = g.astype(np.float64)
        ok = scorable(aligned, g)
        return (block_sums(aligned, g) if ok else {}), aligned.size, 0 if ok else 1

    parts = map_in_threads(score, blocks)
    check_pixels(sum(n for _, n, _ in parts), sum(bad for _, _, bad in parts))
    sums = add_sums([s for s, _, _ in parts])
    record = metrics_from_sums(sums, sum(n for _, n, _ in parts))
    nonpositive = sum(int((p <= 0).sum()) for p, _, _ in blocks) if scoring.fit_space == "disparity" else 0
    return _extras(scoring, record, pred, depth, valid, scale, shift, nonpositive)


#: (alignment, fit space) -> the output space whose rule `moge_align` applies
_MOGE_RULES = {("affine", "depth"): "depth_affine_invariant", ("scale", "depth"): "depth_scale_invariant",
               ("affine", "disparity"): "disparity_affine_invariant", ("none", "depth"): "depth_metric"}


def _moge(sample_id, pred, depth, valid, scoring) -> dict:
    """MoGe's alignment and metrics on the whole map (host, float64)."""
    from marigold_bench.eval.moge import moge_align, moge_metrics

    if not np.isfinite(pred[valid]).all():
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    if not valid.any():
        raise ValueError("no valid pixels to score")
    pred64, depth64 = np.asarray(pred, np.float64), np.asarray(depth, np.float64)
    key = (scoring.alignment, scoring.fit_space)
    if key in _MOGE_RULES:
        aligned, scale, shift = moge_align(pred64, depth64, valid, _MOGE_RULES[key])
    elif key == ("median", "depth"):
        scale, shift = float(fit_median_scale(pred64, depth64, valid)), 0.0
        aligned = scale * pred64
    else:  # resolve_scoring refuses these; a hand-made Scoring might not
        raise ValueError(f"protocol moge has no {scoring.alignment} alignment in {scoring.fit_space} space")
    record = {k: float(v) for k, v in moge_metrics(aligned, depth64, valid).items()}
    record.update(scale=float(scale), shift=float(shift))
    if scoring.fit_space == "disparity":
        record["n_nonpositive"] = int((pred[valid] <= 0).sum())
    if scoring.boundary_f1_radius:
        from marigold_bench.eval.boundary import boundary_f1
        from marigold_bench.eval.moge import moge_boundary_depth

        # MoGe's boundary metric reads a disparity fit with its own clamp (see moge_boundary_depth)
        edges = aligned if key not in _MOGE_RULES else moge_boundary_depth(
            pred64, depth64, valid, _MOGE_RULES[key], fit=(aligned, scale, shift))
        record["boundary_f1"] = float(boundary_f1(edges, depth64, valid, radius=scoring.boundary_f1_radius))
    return record

