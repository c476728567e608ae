"""What an evaluation protocol is: its rules as data, and the callables that apply them.

One :class:`EvaluationProtocol` per suite (``marigold.py``, ``moge.py``, or a plugin's file):
which alignment each output space gets and how the suite computes it, whether the aligned depth
is clipped, the disparity floor, the crop, the metric columns, and -- as fields, not as names
the scorer compares -- the functions that align and score one prediction. The scorer
(`marigold_bench.eval.scoring.align_and_score`) calls ``protocol.score``; the one alignment
dispatcher (`marigold_bench.eval.align.align`) calls ``protocol.align``.

Light on purpose (no numpy, no torch): ``marigold-bench protocols`` and ``--help`` read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def add_fit_columns(record: dict, scoring, scale: float, shift: float, pred, scored) -> dict:
    """``record`` with the columns every scorer adds beside its metrics: the fit's ``scale`` and
    ``shift`` (in the fit space) and, under a disparity fit, ``n_nonpositive``: the ``scored``
    pixels predicted <= 0, which have no disparity (counted, never hidden)."""
    record.update(scale=scale, shift=shift)
    if scoring.fit_space == "disparity":
        record["n_nonpositive"] = int((pred[scored] <= 0).sum())
    return record


def never(benchmark) -> bool:
    """No benchmark (the default of `EvaluationProtocol.boundary_f1_on`)."""
    return False


def has_sharp_edges(benchmark) -> bool:
    """Whether a benchmark's ground truth has exact edges (`BenchmarkSpec.sharp_edges`, MoGe's
    ``has_sharp_boundary``); a benchmark that does not say has none."""
    return bool(getattr(benchmark, "sharp_edges", False))


@dataclass(frozen=True)
class EvaluationProtocol:
    """One suite's evaluation rules and the behaviour that applies them.

    Attributes:
        name: the ``--protocol`` value.
        source: where the rules were read (paper and code).
        description: one line for ``marigold-bench protocols``.
        default_alignment: output space -> (alignment, fit space) the suite's code uses.
        realisations: (alignment, fit space) -> how this suite computes it (what ``summary.json``
            records as ``fit``); a pair not listed is refused with the pairs that are.
        metric_keys: the per-sample metric columns ``score`` returns.
        align: ``align(pred, depth, valid, scoring) -> (aligned_depth, scale, shift)``: the whole
            map aligned exactly as ``score`` scores it (clipped when the protocol clips), with
            the fitted parameters in the fit space. What pictures and other callers use (through
            `marigold_bench.eval.align.align`), so they show what was scored.
        score: ``score(sample_id, pred, depth, valid, scoring, device=None) -> dict``: every
            column of ``scoring.columns``, ``scale``, ``shift`` and, under a disparity fit,
            ``n_nonpositive``. Raises `PredictionError` on NaN/inf at a valid pixel and
            ``ValueError`` where nothing can be fitted or scored.
        fit_resolution: ``"dataset"`` (the benchmark's ``fit_max_resolution``, e.g. ETH3D 1024)
            or the fixed subsample the suite fits on.
        subsampled_fits: the (alignment, fit space) pairs fitted on that subsample with
            weights ``1/g``; all others use every valid pixel, unweighted.
        clip_to_range: clip the aligned depth to the benchmark's range, then to >= 1e-6.
        disparity_floor: a fitted disparity is clamped to at least this before it is inverted
            to depth (Marigold: 1e-3; MoGe's boundary metric: 1e-6).
        crop: the benchmark crop scored (a name the benchmark offers); None: the benchmark's
            own default crop (NYU, KITTI: Eigen).
        metric_definitions: a label for the definitions ``score`` implements (recorded; the
            protocol's name when empty).
        boundary_f1_radius: the boundary-F1 radius reported by default, where reported.
        boundary_f1_on: ``benchmark -> bool``: whether boundary F1 is reported by default on a
            benchmark (MoGe: where its ground truth has sharp edges; default: never).
        notes: what the definition does not say by itself (quirks, choices made here).
        origin: ``built-in`` or where a plugin came from (set by the registry).
        version: bumped when the definition changes a number; with the name it is the protocol
            id a result cites (``marigold/1``, see `marigold_bench.eval.identity`).
        target: the item key holding the ground truth ``score`` receives (``"depth"``;
            ``"normals"`` for a surface-normals protocol).
        wants_item: ``score`` also takes the whole dataset item as ``item=`` (intrinsics,
            segmentation: what a point-map protocol needs beside the ground truth).
        task: the task whose benchmarks it scores (``"depth"``; ``"normals"``). The registry
            is keyed by name and task, so one name may serve both (``marigold``).
        pooled: ``pooled(pools) -> dict`` of dataset metrics computed once over every sample's
            private ``"_pool"`` array (``score`` then returns one per sample; DSINE pools every
            pixel's error); None: the dataset metrics are the per-sample means.
        columns: ``columns(output_space, benchmark) -> tuple`` of metric keys, for a protocol
            whose columns depend on them (MoGe's point columns: the alignments a point map
            gets, local points where the benchmark has segments); None: ``metric_keys``.
    """

    name: str
    source: str
    description: str
    default_alignment: dict
    realisations: dict
    metric_keys: tuple
    align: Callable
    score: Callable
    fit_resolution: str = "dataset"
    subsampled_fits: frozenset = frozenset()
    clip_to_range: bool = True
    disparity_floor: float = 1e-3
    crop: str | None = None
    metric_definitions: str = ""
    boundary_f1_radius: int = 1
    boundary_f1_on: Callable = never  # a module-level function: protocols pickle
    notes: tuple = ()
    origin: str = "built-in"
    version: int = 1
    target: str = "depth"
    wants_item: bool = False
    task: str = "depth"
    pooled: Callable | None = None  # a module-level function: protocols pickle
    columns: Callable | None = None  # a module-level function: protocols pickle

    def default_boundary_f1(self, benchmark) -> int | None:
        """The boundary-F1 radius reported on ``benchmark`` when the user asks for none."""
        return self.boundary_f1_radius if self.boundary_f1_on(benchmark) else None


__all__ = ["EvaluationProtocol", "has_sharp_edges", "never"]
