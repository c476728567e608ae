"""The ``marigold`` protocol for surface normals: per-image metrics rounded to 4 decimals, averaged.

As prs-eth/Marigold's ``script/normals/eval.py`` with ``src/util/metric.py``: angular error over
the pixels whose ground truth is non-zero, per image the mean, median and percentages under 5,
7.5, 11.25, 22.5 and 30 degrees, each rounded to 4 decimals, then the plain mean over images
(`marigold_bench.eval.normals.rounded_summary`).
"""

from __future__ import annotations

from marigold_bench.eval.normals import MARIGOLD_NORMAL_METRICS, rounded_summary, sample_errors
from marigold_bench.eval.protocols.base import EvaluationProtocol
from marigold_bench.eval.protocols.normals_common import DEFAULT_ALIGNMENT, REALISATIONS, SHARED_NOTES, align


def score(sample_id, pred, normals, valid, scoring, device=None) -> dict:
    """The official per-image record (rounded) and ``n_zero`` (zero-vector predictions)."""
    errors, n_zero = sample_errors(sample_id, pred, normals, valid, scoring)
    return {**rounded_summary(errors), "n_zero": n_zero}


PROTOCOL = EvaluationProtocol(
    name="marigold",
    task="normals",
    target="normals",
    source="Ke et al., Marigold v1-1 (arXiv 2505.09358); https://github.com/prs-eth/Marigold "
           "(script/normals/eval.py, src/util/metric.py)",
    description="angular error per image (mean, median, % under 5/7.5/11.25/22.5/30 degrees), "
                "each rounded to 4 decimals, averaged over images",
    default_alignment=DEFAULT_ALIGNMENT,
    realisations=REALISATIONS,
    metric_keys=MARIGOLD_NORMAL_METRICS,
    align=align,
    score=score,
    fit_resolution="none",
    clip_to_range=False,
    metric_definitions="marigold-normals",
    notes=SHARED_NOTES + ("each per-image metric is rounded to 4 decimals before the mean over "
                          "images, as the official metric code does",),
)
