"""What the surface-normals protocols share: no alignment, the frame conversion, the notes.

A normal is compared to the ground truth by angle, so nothing is fitted: the one "alignment" is
``none``, and the prediction is only brought into the benchmark's camera frame
(`marigold_bench.eval.normals.in_frame`). Kept free of numpy at import (``protocols`` lists it).
"""

from __future__ import annotations

from marigold_bench.output_spaces import NORMALS

#: nothing is fitted; what ``summary.json`` records as the fit
DEFAULT_ALIGNMENT = {NORMALS: ("none", "none")}
REALISATIONS = {("none", "none"): "none: angles between unit vectors need no fit; the prediction is "
                                  "converted to the benchmark's camera frame"}

#: what both protocols do with ground truth that is not unit length, and with zero vectors
SHARED_NOTES = (
    "ground truth is not renormalised: the angle comes from the cosine similarity "
    "p.g / (|p| |g|), which divides both norms out, so a non-unit ground-truth vector scores as "
    "its unit vector would (as the reference code, torch.cosine_similarity)",
    "pixels scored: ground truth a non-zero finite vector (|g| > 0)",
    "a zero-vector prediction has cosine 0, an error of 90 degrees; counted per sample (n_zero), "
    "never NaN",
    "predictions are converted from their declared frame (the predictor's, or --frame) to the "
    "benchmark's before scoring; summary.json records both frames",
)


def align(pred, normals, valid, scoring):
    """The prediction as scored: in the benchmark's frame, ``(3 x H x W, 1.0, 0.0)``."""
    from marigold_bench.eval.normals import in_frame

    return in_frame(pred, scoring.prediction_frame, scoring.frame), 1.0, 0.0


__all__ = ["DEFAULT_ALIGNMENT", "REALISATIONS", "SHARED_NOTES", "align"]
