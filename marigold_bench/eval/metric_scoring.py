"""What the metric-depth protocols share: per-benchmark rows, the scored pixels, the fit before clipping.

The metric leaderboards' protocols (`marigold_bench.eval.protocols.zoedepth`, ``unidepth``,
``monodepth2``) each carry a table: benchmark -> :class:`MetricRow` (crop, evaluation range, and
whether the prediction is clipped to it). A benchmark that mixes scene kinds (DIODE: indoor and
outdoor) names one row per subset; the row is then chosen by the sample id with the benchmark's
own subset predicates. A benchmark the table does not name is scored with its own default crop
and range (``MetricRow.from_benchmark``), as a plugin benchmark would expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marigold_bench.data.crops import NONE, Crop
from marigold_bench.errors import BenchError, PredictionError


@dataclass(frozen=True)
class MetricRow:
    """One benchmark's row of a metric protocol's table.

    Attributes:
        crop: the evaluation crop (a :class:`~marigold_bench.data.crops.Crop`, a function of the
            frame size).
        min_depth / max_depth: the evaluation range: ground truth scored where
            ``min_depth < g < max_depth`` (UniDepth: ``0 < g < max`` and ``g <= max``).
        note: where the row comes from.
    """

    crop: Crop
    min_depth: float
    max_depth: float
    note: str = ""

    @staticmethod
    def from_benchmark(benchmark) -> "MetricRow":
        """The benchmark's own default crop and range (a benchmark outside the table)."""
        crop = benchmark.crop(None) if hasattr(benchmark, "crop") else NONE
        return MetricRow(crop, float(benchmark.min_depth), float(benchmark.max_depth),
                         "not in the protocol's table: the benchmark's own crop and range")


def row_for(table: dict, benchmark, sample_id: str) -> MetricRow:
    """The row scoring ``sample_id`` of ``benchmark``.

    ``table[name]`` is a :class:`MetricRow`, or a dict subset -> row (DIODE) picked with the
    benchmark's ``subsets`` predicates on the sample id.

    Raises:
        BenchError: a per-subset row whose subsets none matches the sample id.
    """
    name = getattr(benchmark, "name", benchmark)
    entry = table.get(name)
    if entry is None:
        return MetricRow.from_benchmark(benchmark)
    if isinstance(entry, MetricRow):
        return entry
    subsets = getattr(benchmark, "subsets", {}) or {}
    for subset, row in entry.items():
        test = subsets.get(subset)
        if test is not None and test(sample_id):
            return row
    raise BenchError(f"{name}: sample {sample_id!r} is in none of the subsets the protocol's table "
                     f"scores ({', '.join(entry)})")


def scored_mask(valid: np.ndarray, depth: np.ndarray, row: MetricRow, scoring, inclusive_max: bool = False):
    """The pixels a metric protocol scores: the item's uncropped ``valid`` (validity and the
    benchmark's range), the row's range and -- unless the user chose a crop of the benchmark,
    already cut into ``valid`` -- the row's crop."""
    with np.errstate(invalid="ignore"):
        keep = valid & (depth > row.min_depth) & ((depth <= row.max_depth) if inclusive_max
                                                   else (depth < row.max_depth))
    if getattr(scoring, "crop", "none") in (None, "none"):
        keep &= row.crop(depth.shape)
    return keep


def fitted(sample_id: str, pred: np.ndarray, depth: np.ndarray, fit_pixels: np.ndarray, scoring):
    """``(depth_prediction, scale, shift)``: the prediction as depth after the scoring's alignment.

    ``none`` in depth space returns the prediction untouched (NaN and inf included: the
    protocols that clip map them into the range, as ZoeDepth does). Any fit needs finite values
    where it reads, so NaN/inf there is a `PredictionError`.
    """
    if scoring.alignment == "none" and scoring.fit_space == "depth":
        return np.asarray(pred, dtype=np.float64), 1.0, 0.0
    if not np.isfinite(pred[fit_pixels]).all():
        raise PredictionError(f"{sample_id}: prediction contains NaN or inf")
    from marigold_bench.eval.align import align

    aligned, scale, shift = align(pred, depth, fit_pixels, scoring.alignment, scoring.fit_space)
    return np.asarray(aligned, dtype=np.float64), float(scale), float(shift)


__all__ = ["MetricRow", "fitted", "row_for", "scored_mask"]
