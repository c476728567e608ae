"""The ``dsine`` protocol for surface normals: every scored pixel of the dataset in one pool.

As baegwangbin/DSINE (``projects/dsine/test.py`` and ``utils/utils.py``: ``compute_normal_errors``
concatenated over the test set, then ``compute_normal_metrics``): mean, median, RMSE and the
percentages under 5, 7.5, 11.25, 22.5 and 30 degrees, once, over all pixels of all images,
unrounded. A big image weighs more than a small one, and an image's median does not enter:
why its numbers differ from the per-image ``marigold`` protocol on the same predictions.

Each sample's row in ``per_sample.csv`` holds the same metrics on that image alone; the dataset
metrics come from the pool (``pooled``), whose per-sample arrays the run loop keeps in memory
and never writes.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.eval.normals import DSINE_NORMAL_METRICS, image_summary, pooled_metrics, sample_errors
from marigold_bench.eval.protocols.base import EvaluationProtocol
from marigold_bench.eval.protocols.normals_common import DEFAULT_ALIGNMENT, REALISATIONS, SHARED_NOTES, align


def score(sample_id, pred, normals, valid, scoring, device=None) -> dict:
    """The image's own metrics, ``n_zero`` and its errors as the private ``"_pool"`` entry."""
    errors, n_zero = sample_errors(sample_id, pred, normals, valid, scoring)
    return {**image_summary(errors), "n_zero": n_zero, "_pool": errors}


def pooled(pools) -> dict:
    """DSINE's dataset metrics over the concatenated errors of every scored sample."""
    pools = list(pools)
    return pooled_metrics(np.concatenate(pools) if pools else np.zeros(0, np.float32))


PROTOCOL = EvaluationProtocol(
    name="dsine",
    task="normals",
    target="normals",
    source="Bae and Davison, Rethinking Inductive Biases for Surface Normal Estimation (DSINE), CVPR 2024; "
           "https://github.com/baegwangbin/DSINE (projects/dsine/test.py, utils/utils.py)",
    description="angular errors of all pixels of the dataset pooled: mean, median, RMSE, "
                "% under 5/7.5/11.25/22.5/30 degrees, unrounded",
    default_alignment=DEFAULT_ALIGNMENT,
    realisations=REALISATIONS,
    metric_keys=DSINE_NORMAL_METRICS,
    align=align,
    score=score,
    pooled=pooled,
    fit_resolution="none",
    clip_to_range=False,
    metric_definitions="dsine",
    notes=SHARED_NOTES + ("dataset metrics are computed once over every scored pixel of every "
                          "scored image (the per-sample rows are each image alone)",
                          "DSINE's own benchmarks read 8-bit ground truth; this protocol scores "
                          "whatever ground truth the benchmark loads (float .npy here)"),
)
