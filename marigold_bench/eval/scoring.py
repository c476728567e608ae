"""The protocol's work on one sample -- align the prediction, score it -- made fast where it runs.

On the host, a frame is cut into blocks of rows that threads mask, align and sum in parallel
(numpy releases the GIL); the least-squares fit reads only its (downsampled) copy, and no
whole-frame float64 array is made. On a GPU, whole maps go to the device and are reduced with
masked sums (`marigold_bench.eval.metrics.compute_metrics`). Both give the numbers of
`align_and_clip` followed by `compute_metrics` to float64 round-off.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from marigold_bench.errors import PredictionError
from marigold_bench.eval.align import align_and_clip, apply_scale_shift, clip_to_range, fit_scale_shift
from marigold_bench.eval.metrics import (CHUNK, add_sums, block_sums, check_pixels, compute_metrics,
                                         metrics_from_sums, scorable)
from marigold_bench.eval.threads import map_in_threads


def align_and_score(sample_id: str, pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, protocol,
                    device=None) -> dict:
    """Metrics, ``scale`` and ``shift`` of one prediction (HxW, ground-truth size).

    ``device`` (a CUDA device) scores there; if it runs out of memory the host takes over.

    Raises:
        PredictionError: the prediction is NaN/inf on a valid pixel.
        ValueError: too few valid pixels to fit, or aligned values that cannot be scored.
    """
    valid = np.asarray(valid, dtype=bool)  # an integer mask would index, not mask
    if device is not None:
        try:
            return _on_device(sample_id, pred, depth, valid, protocol, device)
        except torch.cuda.OutOfMemoryError:
            # float64 temporaries of a 24 M-pixel frame need 1-2 GB; the host can always score
            torch.cuda.empty_cache()
            warnings.warn(f"{sample_id}: out of GPU memory while scoring; scoring on the host")
    return _on_host(sample_id, pred, depth, valid, protocol)


def _on_device(sample_id, pred, depth, valid, protocol, device) -> dict:
    pred, depth, valid = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (pred, depth, valid))
    if not bool((torch.isfinite(pred) | ~valid).all()):
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    aligned, scale, shift = align_and_clip(pred, depth, valid, protocol)
    return {**compute_metrics(aligned, depth, valid), "scale": scale, "shift": shift}


def _on_host(sample_id, pred, depth, valid, protocol) -> dict:
    rows = max(1, CHUNK // max(pred.shape[1], 1))
    starts = range(0, pred.shape[0], rows)

    def gather(r):  # the valid pixels of a block of rows
        keep = valid[r:r + rows]
        p = pred[r:r + rows][keep]
        return p, depth[r:r + rows][keep], bool(np.isfinite(p).all())

    blocks = map_in_threads(gather, starts)
    if not all(finite for _, _, finite in blocks):
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    scale, shift = fit_scale_shift(pred, depth, valid, protocol.fit_space, protocol.fit_max_resolution,
                                   protocol.fit_downsample)

    def score(block):
        p, g, _ = block
        aligned = clip_to_range(apply_scale_shift(p, scale, shift, protocol.fit_space), protocol)
        g = g.astype(np.float64)
        ok = scorable(aligned, g)
        return (block_sums(aligned, g) if ok else {}), aligned.size, 0 if ok else 1

    parts = map_in_threads(score, blocks)
    check_pixels(sum(n for _, n, _ in parts), sum(bad for _, _, bad in parts))
    sums = add_sums([s for s, _, _ in parts])
    return {**metrics_from_sums(sums, sum(n for _, n, _ in parts)), "scale": scale, "shift": shift}
