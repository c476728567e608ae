"""The ``marigold`` protocol: least squares on every valid pixel, clip to the range, ten metrics.

Its behaviour lives here with its rules. ``score`` is fast where it runs: on the host a frame is
cut into blocks of rows that threads mask, align and sum in parallel (numpy releases the GIL);
the fit reads only its (downsampled) copy, and no whole-frame float64 array is made. On a GPU
whole maps go to the device and are reduced with masked sums
(`marigold_bench.eval.metrics.compute_metrics`). Both give the numbers of `align` followed by
`compute_metrics` to float64 round-off. Every alignment is one scale and shift in a fit space
(`marigold_bench.eval.align.FITS`), so ``scale``, ``median`` and ``none`` take the same paths.

torch is imported only when a device is asked for, so scoring cached predictions on the host
(``rescore``) never loads it.
"""

from __future__ import annotations

import warnings

import numpy as np

from marigold_bench.errors import PredictionError
from marigold_bench.eval.align import apply_scale_shift, clip_to_range, fit_alignment
from marigold_bench.eval.metrics import (CHUNK, METRIC_KEYS, add_sums, block_sums, check_pixels, compute_metrics,
                                         metrics_from_sums, scorable)
from marigold_bench.eval.protocols.base import EvaluationProtocol
from marigold_bench.eval.threads import map_in_threads
from marigold_bench.output_spaces import DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE


def fit(pred, depth, valid, scoring) -> tuple[float, float]:
    """``(scale, shift)`` of the scoring's alignment, in its fit space (numpy or tensors).

    ``affine`` is least squares (`fit_scale_shift`); ``scale`` and ``median`` fit one scale
    (shift 0) on the same (downsampled) copy; ``none`` is (1, 0).
    """
    return fit_alignment(pred, depth, valid, scoring.alignment, scoring.fit_space,
                         scoring.fit_max_resolution, scoring.fit_downsample)


def _finish(scoring, fitted):
    """Clip to the benchmark's range (and >= 1e-6) when the protocol clips."""
    return clip_to_range(fitted, scoring) if scoring.clip_to_range else fitted


def _apply(scoring, pred, scale, shift):
    return _finish(scoring, apply_scale_shift(pred, scale, shift, scoring.fit_space, scoring.disparity_floor))


def align(pred, depth, valid, scoring):
    """The whole map aligned as `score` scores it: ``(aligned_depth, scale, shift)``."""
    scale, shift = fit(pred, depth, valid, scoring)
    return _apply(scoring, pred, scale, shift), scale, shift


def score(sample_id, pred, depth, valid, scoring, device=None) -> dict:
    """Metrics, ``scale`` and ``shift`` of one prediction (see `EvaluationProtocol.score`).

    ``device``: a CUDA device scores there; if it runs out of memory the host takes over.
    """
    if device is not None:
        import torch
        try:
            return _on_device(sample_id, pred, depth, valid, scoring, device)
        except torch.cuda.OutOfMemoryError:
            # float64 temporaries of a 24 M-pixel frame need 1-2 GB; the host can always score
            torch.cuda.empty_cache()
            warnings.warn(f"{sample_id}: out of GPU memory while scoring; scoring on the host")
    return _on_host(sample_id, pred, depth, valid, scoring)


def _extras(scoring, record, pred, depth, valid, scale, shift, n_nonpositive):
    record.update(scale=scale, shift=shift)
    if scoring.fit_space == "disparity":
        record["n_nonpositive"] = int(n_nonpositive)
    if scoring.boundary_f1_radius:
        from marigold_bench.eval.boundary import boundary_f1
        aligned = _apply(scoring, pred, scale, shift)
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
    record = compute_metrics(_apply(scoring, pred, scale, shift), depth, valid)
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

    def score_block(block):
        p, g, _ = block
        aligned = _apply(scoring, p, scale, shift)
        g = g.astype(np.float64)
        ok = scorable(aligned, g)
        return (block_sums(aligned, g) if ok else {}), aligned.size, 0 if ok else 1

    parts = map_in_threads(score_block, blocks)
    check_pixels(sum(n for _, n, _ in parts), sum(bad for _, _, bad in parts))
    sums = add_sums([s for s, _, _ in parts])
    record = metrics_from_sums(sums, sum(n for _, n, _ in parts))
    nonpositive = sum(int((p <= 0).sum()) for p, _, _ in blocks) if scoring.fit_space == "disparity" else 0
    return _extras(scoring, record, pred, depth, valid, scale, shift, nonpositive)


PROTOCOL = EvaluationProtocol(
    name="marigold",
    source="Ke et al., Marigold, CVPR 2024, Sec. 4.1 and appendix A.3; "
           "https://github.com/prs-eth/Marigold (eval.py, src/util/alignment.py, src/util/metric.py)",
    description="least squares on all valid pixels (ETH3D: on a copy downsized to 1024), "
                "clip to the dataset's range, ten metrics",
    default_alignment={
        DEPTH_AFFINE: ("affine", "depth"),        # eval.py --alignment least_square
        DISPARITY_AFFINE: ("affine", "disparity"),  # least_square_disparity (A.3: MiDaS, DPT)
        DEPTH_SCALE: ("scale", "depth"),          # the code has no scale-only mode: ours, documented
        DEPTH_METRIC: ("none", "depth"),          # --alignment None (metric scoring)
    },
    realisations={
        ("affine", "depth"): "least-squares scale and shift of p onto g",
        ("affine", "disparity"): "least-squares scale and shift of p onto 1/g (p > 0, g > 0), "
                                 "disparity clipped at 1e-3, inverted",
        ("scale", "depth"): "least-squares scale of p onto g",
        ("scale", "disparity"): "least-squares scale of p onto 1/g, clipped at 1e-3, inverted",
        ("median", "depth"): "median(g) / median(p) (Monodepth2)",
        ("median", "disparity"): "median scaling of 1/p to g (Monodepth2 on disparity output)",
        ("none", "depth"): "none",
    },
    metric_keys=METRIC_KEYS,
    align=align,
    score=score,
    fit_resolution="dataset",
    subsampled_fits=frozenset(),
    clip_to_range=True,
    disparity_floor=1e-3,   # src/util/alignment.py: disparity clipped at 1e-3 before inversion
    crop=None,              # the benchmark's own (NYU, KITTI: Eigen), as eval.py
    metric_definitions="marigold",
    notes=("the aligned depth is clipped to the dataset's range, then to >= 1e-6, for every "
           "alignment (also none), as eval.py does",
           "scale and median alignment are not in Marigold's code; they reuse its fit "
           "resolution and clipping"),
)
