"""Evaluation protocols as data: how each suite aligns and scores a prediction.

A benchmark's own facts (depth range, crop, fit resolution, split) live in
:mod:`marigold_bench.data.protocol`. What differs between suites -- which alignment an output
space gets, whether the aligned depth is clipped to the range, how AbsRel and δ1 are defined,
which extra metrics are reported -- is written here, one small frozen definition per suite, in
the spirit of lm-evaluation-harness's task configs. :func:`resolve_scoring` combines the two
with the run's output space and the user's overrides into one :class:`Scoring`, the only thing
the scorer (:mod:`marigold_bench.eval.scoring`) reads; ``summary.json`` records it whole.

Light on purpose (no numpy, no torch): ``marigold-bench protocols`` and ``--help`` import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from marigold_bench.errors import BenchError, UndefinedAlignmentError
from marigold_bench.output_spaces import (DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, DISPARITY_AFFINE,
                                          OUTPUT_SPACES, is_disparity)

#: every alignment any protocol knows (PROTOCOLS.md, "Other alignments in use")
ALIGNMENTS = ("affine", "scale", "median", "none")

#: what each alignment fits, for the ``protocols`` listing and error messages
ALIGNMENT_MEANING = {
    "affine": "scale and shift",
    "scale": "scale only",
    "median": "scale = median(g) / median(p)",
    "none": "nothing: scored as predicted",
}

#: the alignments an output space can take: `none` only where the numbers already are metres
ALLOWED_ALIGNMENTS = {
    DEPTH_AFFINE: ("affine", "scale", "median"),
    DISPARITY_AFFINE: ("affine", "scale", "median"),
    DEPTH_SCALE: ("affine", "scale", "median"),
    DEPTH_METRIC: ALIGNMENTS,
}

MARIGOLD_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3",
                    "i_rmse", "silog_rmse")
MOGE_METRICS = ("abs_rel", "delta1")


@dataclass(frozen=True)
class EvaluationProtocol:
    """One suite's evaluation rules.

    Attributes:
        name: the ``--protocol`` value.
        source: where the rules were read (paper and code).
        description: one line for ``marigold-bench protocols``.
        default_alignment: output space -> (alignment, fit space) the suite's code uses.
        realisations: (alignment, fit space) -> how this suite computes it (what ``summary.json``
            records as ``fit``); a pair not listed is refused with the pairs that are.
        fit_resolution: ``"dataset"`` (the benchmark's ``fit_max_resolution``, e.g. ETH3D 1024)
            or the fixed subsample the suite fits on.
        subsampled_fits: the (alignment, fit space) pairs fitted on that subsample with
            weights ``1/g``; all others use every valid pixel, unweighted.
        clip_to_range: clip the aligned depth to the benchmark's range, then to >= 1e-6.
        metric_definitions: ``"marigold"`` (`marigold_bench.eval.metrics`) or ``"moge"``
            (`marigold_bench.eval.moge.moge_metrics`).
        metric_keys: the per-sample metric columns.
        boundary_f1_datasets: benchmarks whose ground truth has sharp edges, where the suite
            reports boundary F1 by default.
        boundary_f1_radius: the radius reported there.
        notes: what the definition does not say by itself (quirks, choices made here).
    """

    name: str
    source: str
    description: str
    default_alignment: dict
    realisations: dict
    fit_resolution: str
    subsampled_fits: frozenset
    clip_to_range: bool
    metric_definitions: str
    metric_keys: tuple
    boundary_f1_datasets: frozenset = frozenset()
    boundary_f1_radius: int = 1
    notes: tuple = ()


MARIGOLD = EvaluationProtocol(
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
    fit_resolution="dataset",
    subsampled_fits=frozenset(),
    clip_to_range=True,
    metric_definitions="marigold",
    metric_keys=MARIGOLD_METRICS,
    notes=("the aligned depth is clipped to the dataset's range, then to >= 1e-6, for every "
           "alignment (also none), as eval.py does",
           "scale and median alignment are not in Marigold's code; they reuse its fit "
           "resolution and clipping"),
)

MOGE = EvaluationProtocol(
    name="moge",
    source="Wang et al., MoGe, CVPR 2025; https://github.com/microsoft/MoGe "
           "(moge/test/metrics.py, moge/utils/alignment.py; utils3d 3fab839 masked_nearest_resize)",
    description="exact weighted-L1 fits (w = 1/g) on a 64x64 masked-nearest subsample; disparity "
                "by full-resolution least squares; no clipping; rel and δ1 as MoGe defines them",
    default_alignment={
        DEPTH_AFFINE: ("affine", "depth"),
        DISPARITY_AFFINE: ("affine", "disparity"),
        DEPTH_SCALE: ("scale", "depth"),
        DEPTH_METRIC: ("none", "depth"),
    },
    realisations={
        ("affine", "depth"): "argmin sum w|a p + b - g| by MoGe's two-point anchor search (its result, also "
                             "where ties in the data make it miss the true L1 optimum), 64x64 subsample, w = 1/g",
        ("affine", "disparity"): "least squares of p onto 1/g on all valid pixels, "
                                 "depth = 1 / max(disparity, 1 / max(g))",
        ("scale", "depth"): "argmin sum w|a p - g| exactly (weighted median), 64x64 subsample, w = 1/g",
        ("median", "depth"): "median(g) / median(p) on all valid pixels (not in MoGe's code; "
                             "Monodepth2's rule under MoGe's metrics)",
        ("none", "depth"): "none",
    },
    fit_resolution="64x64 masked-nearest subsample",
    subsampled_fits=frozenset({("affine", "depth"), ("scale", "depth")}),
    clip_to_range=False,
    metric_definitions="moge",
    metric_keys=MOGE_METRICS,
    # MoGe reports boundary F1 only where the ground truth has sharp edges (its has_sharp_boundary:
    # iBims-1, Sintel, Spring, HAMMER); of our benchmarks only the procedural synthetic set has
    # exact edges -- NYU/ScanNet are filled Kinect maps, KITTI sparse LiDAR, ETH3D/DIODE scans
    # with holes at edges, none flagged by MoGe
    boundary_f1_datasets=frozenset({"synthetic"}),
    boundary_f1_radius=1,
    notes=("rel = mean(|p - g| / (g + 1e-6)); δ1 = mean(max(g/p, p/g) < 1.25), so a negative "
           "aligned depth makes both ratios negative and counts as an inlier",
           "no clipping to the dataset's range",
           "boundary F1 (radius 1) on benchmarks with sharp ground truth: synthetic"),
)

EVALUATION_PROTOCOLS: dict[str, EvaluationProtocol] = {p.name: p for p in (MARIGOLD, MOGE)}


def get_evaluation_protocol(name: str) -> EvaluationProtocol:
    """The protocol called ``name``; a BenchError listing the known ones otherwise."""
    try:
        return EVALUATION_PROTOCOLS[name]
    except KeyError:
        raise BenchError(f"unknown protocol {name!r}; known protocols: "
                         f"{', '.join(EVALUATION_PROTOCOLS)} (see `marigold-bench protocols`)") from None


@dataclass(frozen=True)
class Scoring:
    """Every choice that turns one prediction into numbers, resolved (what the scorer reads).

    ``min_depth``/``max_depth``/``fit_max_resolution``/``fit_downsample`` come from the
    benchmark; the rest from the evaluation protocol, the output space and the overrides.
    ``overrides`` names the choices the user made against the protocol's default.
    """

    protocol: str
    source: str
    dataset: str
    output_space: str
    alignment: str
    fit_space: str
    fit: str
    fit_resolution: str
    fit_max_resolution: int | None
    fit_downsample: str
    weights: str
    clip_to_range: bool
    min_depth: float
    max_depth: float
    metric_definitions: str
    metric_keys: tuple
    boundary_f1_radius: int | None = None
    overrides: tuple = field(default=())

    @property
    def columns(self) -> tuple:
        """Per-sample metric columns: the protocol's metrics, then boundary F1 when scored."""
        return self.metric_keys + (("boundary_f1",) if self.boundary_f1_radius else ())

    def to_dict(self) -> dict:
        """JSON-ready record for ``summary.json["scoring"]``."""
        out = dataclasses.asdict(self)
        out["metric_keys"] = list(self.metric_keys)
        out["overrides"] = list(self.overrides)
        return out


def _fit_space_of(output_space: str) -> str:
    return "disparity" if is_disparity(output_space) else "depth"


def resolve_scoring(dataset_protocol, protocol: str = "marigold", output_space: str = DEPTH_AFFINE,
                    alignment: str | None = None, fit_space: str | None = None,
                    boundary_f1: int | None = None, declared_output_space: str | None = None) -> Scoring:
    """Combine a benchmark's facts, an evaluation protocol, the output space and overrides.

    Args:
        dataset_protocol: the benchmark's :class:`~marigold_bench.data.protocol.Protocol`.
        protocol: an evaluation protocol name (:data:`EVALUATION_PROTOCOLS`).
        output_space: what the predictions mean (:data:`~marigold_bench.output_spaces.OUTPUT_SPACES`).
        alignment: ``affine|scale|median|none``; None: the protocol's default for the output space.
        fit_space: ``depth|disparity``, the space the predictions are fitted in; None: the
            alignment's default (disparity for disparity outputs, depth otherwise).
        boundary_f1: radius of a boundary-F1 column (1, 2 or 3); None: the protocol's default
            for the benchmark (MoGe: radius 1 on sharp ground truth); 0: none.
        declared_output_space: what the model itself declares, when ``output_space`` is the
            user's override of it: then ``output_space`` is listed in ``overrides``.

    Returns:
        :class:`Scoring`.

    Raises:
        BenchError: unknown protocol, alignment, fit space or output space; an alignment the
            output space cannot take (``none`` on affine- or scale-invariant predictions).
        UndefinedAlignmentError: an (alignment, fit space) pair the protocol does not define.
    """
    spec = get_evaluation_protocol(protocol)
    if output_space not in OUTPUT_SPACES:
        raise BenchError(f"unknown output space {output_space!r}; known: {', '.join(OUTPUT_SPACES)}")
    if alignment is not None and alignment not in ALIGNMENTS:
        raise BenchError(f"unknown alignment {alignment!r}; known alignments: {', '.join(ALIGNMENTS)}")
    if fit_space is not None and fit_space not in ("depth", "disparity"):
        raise BenchError(f"unknown fit space {fit_space!r}; known: depth, disparity")
    if alignment is not None and alignment not in ALLOWED_ALIGNMENTS[output_space]:
        raise BenchError(
            f"--alignment {alignment} cannot serve --output-space {output_space}: such predictions are "
            f"only defined up to {'scale and shift' if 'affine' in output_space else 'scale'}, so they "
            f"need a fit; choose one of {', '.join(ALLOWED_ALIGNMENTS[output_space])}")
    default_alignment, default_space = spec.default_alignment[output_space]
    chosen = alignment or default_alignment
    space = fit_space or (default_space if chosen == default_alignment else _fit_space_of(output_space))
    if chosen == "none" and space != "depth":
        raise BenchError("--alignment none fits nothing, so --fit-space disparity does not apply")
    if (chosen, space) not in spec.realisations:
        known = ", ".join(f"{a} in {s}" for a, s in spec.realisations)
        raise UndefinedAlignmentError(f"protocol {spec.name} has no {chosen} alignment in {space} space; "
                                      f"it defines: {known}")
    overrides = tuple(name for name, given, default in (("alignment", alignment, default_alignment),
                                                         ("fit_space", fit_space, default_space))
                      if given is not None and given != default)
    if declared_output_space is not None and declared_output_space != output_space:
        overrides = ("output_space", *overrides)
    if boundary_f1 is None:
        radius = spec.boundary_f1_radius if dataset_protocol.name in spec.boundary_f1_datasets else None
    else:
        if boundary_f1 not in (0, 1, 2, 3):
            raise BenchError(f"--boundary-f1 {boundary_f1}: the radius is 1, 2 or 3 (0: none)")
        radius = boundary_f1 or None
    subsampled = (chosen, space) in spec.subsampled_fits
    if chosen == "none":
        fit_resolution = "none"
    elif subsampled:
        fit_resolution = spec.fit_resolution
    elif spec.fit_resolution == "dataset" and dataset_protocol.fit_max_resolution is not None:
        fit_resolution = (f"longer side <= {dataset_protocol.fit_max_resolution} "
                          f"({dataset_protocol.fit_downsample} nearest)")
    else:
        fit_resolution = "full"
    return Scoring(
        protocol=spec.name, source=spec.source, dataset=dataset_protocol.name,
        output_space=output_space, alignment=chosen, fit_space=space,
        fit=spec.realisations[(chosen, space)], fit_resolution=fit_resolution,
        # only protocols that fit at the benchmark's resolution downsize for it
        fit_max_resolution=dataset_protocol.fit_max_resolution if spec.fit_resolution == "dataset" else None,
        fit_downsample=dataset_protocol.fit_downsample,
        weights="1/g" if subsampled else "none",
        clip_to_range=spec.clip_to_range,
        min_depth=dataset_protocol.min_depth, max_depth=dataset_protocol.max_depth,
        metric_definitions=spec.metric_definitions, metric_keys=tuple(spec.metric_keys),
        boundary_f1_radius=radius, overrides=overrides)


def default_scoring(dataset_protocol, output_space: str = DEPTH_AFFINE) -> Scoring:
    """What a caller that names no protocol gets: ``marigold`` for ``output_space``, with the
    benchmark protocol's own ``fit_space`` when it was set to disparity there (so code that
    did so keeps its numbers)."""
    space = getattr(dataset_protocol, "fit_space", "depth")
    return resolve_scoring(dataset_protocol, "marigold", output_space,
                           fit_space=None if space == "depth" else space)


def parse_list(text: str | None, known, what: str) -> list:
    """``"a,b"`` -> ``["a", "b"]``, each checked against ``known`` (a BenchError lists them)."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    unknown = [t for t in items if t not in known]
    if unknown:
        raise BenchError(f"unknown {what} {', '.join(map(repr, unknown))}; known {what}s: {', '.join(known)}")
    return items
