"""Evaluation protocols: how each suite aligns and scores a prediction, and their registry.

A benchmark's own facts (depth range, crop, fit resolution, split) live in
:mod:`marigold_bench.data.protocol`. What differs between suites -- which alignment an output
space gets, whether the aligned depth is clipped to the range, how AbsRel and δ1 are defined,
which extra metrics are reported -- is written in one small definition per suite (``marigold.py``,
``moge.py``, or a plugin: see `marigold_bench.plugins`), holding its rules and the callables that
apply them (:class:`~marigold_bench.eval.protocols.base.EvaluationProtocol`), in the spirit of
lm-evaluation-harness's task configs. :func:`resolve_scoring` combines the two
with the run's output space and the user's overrides into one :class:`Scoring`, the only thing
the scorer (:mod:`marigold_bench.eval.scoring`) reads; ``summary.json`` records it whole.

Light on purpose (no numpy, no torch): ``--help`` imports it; a definition is imported on
the registry's first lookup.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from marigold_bench import plugins
from marigold_bench.errors import BenchError, UndefinedAlignmentError
from marigold_bench.eval.protocols.base import EvaluationProtocol, has_sharp_edges
from marigold_bench.output_spaces import (ALL_OUTPUT_SPACES, DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE,
                                          DISPARITY_AFFINE, POINTS_AFFINE, POINTS_METRIC, POINTS_SCALE,
                                          is_disparity, is_point_map)

#: every alignment any protocol knows (their meanings below; docs/parity.md has the table by suite)
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
    # a point map's alignment is that of its depth (z); its point columns follow MoGe's chain
    POINTS_AFFINE: ("affine", "scale", "median"),
    POINTS_SCALE: ("affine", "scale", "median"),
    POINTS_METRIC: ALIGNMENTS,
}

#: built-in protocols: name -> "module:OBJECT" (imported on first use); plugins add more
BUILT_INS = {
    "marigold": "marigold_bench.eval.protocols.marigold:PROTOCOL",
    "moge": "marigold_bench.eval.protocols.moge:PROTOCOL",
    "moge-lifted": "marigold_bench.eval.protocols.moge_lifted:PROTOCOL",
    "zoedepth": "marigold_bench.eval.protocols.zoedepth:PROTOCOL",
    "unidepth": "marigold_bench.eval.protocols.unidepth:PROTOCOL",
    "monodepth2": "marigold_bench.eval.protocols.monodepth2:PROTOCOL",
    "da2k": "marigold_bench.eval.protocols.da2k:PROTOCOL",
}

#: built-in surface-normals protocols (the same name may serve both tasks: ``marigold``)
NORMALS_BUILT_INS = {
    "marigold": "marigold_bench.eval.protocols.marigold_normals:PROTOCOL",
    "dsine": "marigold_bench.eval.protocols.dsine:PROTOCOL",
}


class _Registry(Mapping):
    """name -> :class:`EvaluationProtocol` of one task: the built-ins, then what
    `plugins.discover` finds whose ``task`` is this registry's.

    Loaded on first lookup and again when the ``--include`` folders change. A plugin object that
    is not an :class:`EvaluationProtocol`, or whose name is taken (a built-in always wins), is a
    `PluginWarning` and left out.
    """

    def __init__(self, built_ins: dict, task: str = "depth"):
        self._built_ins = built_ins
        self.task = task
        self._loaded: dict | None = None
        self._key = None

    def _entries(self) -> dict:
        key = tuple(plugins.included_folders())
        if self._loaded is None or key != self._key:
            self._loaded, self._key = self._load(), key
        return self._loaded

    def refresh(self) -> None:
        """Forget what was loaded: the next lookup discovers plugins again."""
        self._loaded = None

    def _load(self) -> dict:
        entries = {}
        for name, target in self._built_ins.items():
            module, _, attr = target.partition(":")
            entries[name] = getattr(importlib.import_module(module), attr)
        for found in plugins.discover("protocols"):
            obj = found.obj
            if isinstance(obj, EvaluationProtocol) and obj.task != self.task:
                continue  # another task's registry takes it
            if not isinstance(obj, EvaluationProtocol):
                if self.task != "depth":
                    continue  # warned about once, by the depth registry
                warnings.warn(f"{found.origin}: PROTOCOL is a {type(obj).__name__}, not an "
                              "EvaluationProtocol; left out", plugins.PluginWarning, stacklevel=4)
            elif obj.name in entries:
                warnings.warn(f"{found.origin}: protocol {obj.name!r} is already defined "
                              f"({entries[obj.name].origin}); the plugin's is left out",
                              plugins.PluginWarning, stacklevel=4)
            else:
                entries[obj.name] = dataclasses.replace(obj, origin=found.origin)
        return entries

    def __getitem__(self, name):
        return self._entries()[name]

    def __iter__(self):
        return iter(self._entries())

    def __len__(self):
        return len(self._entries())


#: every depth evaluation protocol by name (built-ins and plugins; a read-only mapping)
EVALUATION_PROTOCOLS: Mapping[str, EvaluationProtocol] = _Registry(BUILT_INS)

#: every surface-normals protocol by name
NORMALS_PROTOCOLS: Mapping[str, EvaluationProtocol] = _Registry(NORMALS_BUILT_INS, "normals")

#: the registries by task: a protocol is found by its name AND the task it scores
PROTOCOLS_BY_TASK: dict[str, Mapping[str, EvaluationProtocol]] = {
    "depth": EVALUATION_PROTOCOLS, "normals": NORMALS_PROTOCOLS}


def get_evaluation_protocol(name: str, task: str = "depth") -> EvaluationProtocol:
    """The protocol called ``name`` that scores ``task`` (``"depth"``, ``"normals"``); a
    BenchError listing that task's protocols otherwise."""
    registry = PROTOCOLS_BY_TASK.get(task)
    if registry is None:
        raise BenchError(f"unknown task {task!r}; known tasks: {', '.join(PROTOCOLS_BY_TASK)}")
    try:
        return registry[name]
    except KeyError:
        other = [t for t, r in PROTOCOLS_BY_TASK.items() if t != task and name in r]
        hint = f" ({name} scores {', '.join(other)})" if other else ""
        what = "protocols" if task == "depth" else f"{task} protocols"
        raise BenchError(f"unknown protocol {name!r}{hint}; known {what}: "
                         f"{', '.join(registry)} (see `marigold-bench protocols`)") from None


def default_crop(benchmark) -> str:
    """The crop a benchmark's own protocol scores (``"none"`` for none): `BenchmarkSpec.default_crop`,
    or a benchmark description's ``eval_mask``."""
    return getattr(benchmark, "default_crop", None) or getattr(benchmark, "eval_mask", None) or "none"


def _resolve_crop(benchmark, wanted: str | None) -> str:
    """The crop scored on ``benchmark``: ``wanted``, or its default; refused if it does not offer it."""
    own = default_crop(benchmark)
    if wanted is None or wanted == own:
        return own
    offered = getattr(benchmark, "crops", None)
    if offered is None:
        raise BenchError(f"benchmark {benchmark.name} offers only its own crop ({own}), not {wanted!r}")
    if wanted not in offered:
        raise BenchError(f"benchmark {benchmark.name} has no crop {wanted!r}; its crops: {', '.join(offered)}")
    return wanted


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
    crop: str = "none"
    disparity_floor: float = 1e-3
    protocol_version: int = 1
    #: the task scored; for normals the benchmark's camera frame and the predictions' frame
    task: str = "depth"
    frame: str | None = None
    prediction_frame: str | None = None
    #: the evaluation protocol itself (its ``align`` and ``score``); not recorded
    definition: EvaluationProtocol | None = field(default=None, compare=False, repr=False)
    #: the benchmark description the crop is taken from; not recorded
    benchmark: object = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.definition is None:  # a Scoring made by hand names its protocol
            object.__setattr__(self, "definition", get_evaluation_protocol(self.protocol, self.task))

    @property
    def columns(self) -> tuple:
        """Per-sample metric columns: the protocol's metrics, then boundary F1 when scored."""
        return self.metric_keys + (("boundary_f1",) if self.boundary_f1_radius else ())

    @property
    def default_crop(self) -> bool:
        """Whether the crop scored is the benchmark's own (then the items' ``valid`` is scored)."""
        return self.benchmark is None or self.crop == default_crop(self.benchmark)

    def to_dict(self) -> dict:
        """JSON-ready record for ``summary.json["scoring"]`` (the protocol and benchmark objects
        are left out: they are recorded by name and under ``"protocol"``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("definition", "benchmark")}
        out["metric_keys"] = list(self.metric_keys)
        out["overrides"] = list(self.overrides)
        if self.task == "depth":  # depth records (and their protocol hashes) stay as before 0.4
            for key in ("task", "frame", "prediction_frame"):
                out.pop(key)
        return out


def _fit_space_of(output_space: str) -> str:
    return "disparity" if is_disparity(output_space) else "depth"


def _no_default_message(spec: EvaluationProtocol, output_space: str) -> str:
    """Why ``spec`` has no default for ``output_space``, and the ``--alignment`` values that serve."""
    space = _fit_space_of(output_space)
    allowed = [a for a in ALLOWED_ALIGNMENTS[output_space] if (a, space) in spec.realisations]
    scores = ", ".join(sorted(spec.default_alignment))
    return (f"protocol {spec.name} scores {scores} predictions; {output_space} predictions are only defined "
            f"up to a fit, so choose --alignment {' | '.join(allowed) or '(none defined)'}"
            " (or --protocol marigold / moge)")


def _resolve_normals(dataset_protocol, protocol: str, output_space, alignment, fit_space, boundary_f1,
                     crop, frame: str | None, declared_frame: str | None) -> Scoring:
    """`resolve_scoring` for a normals benchmark: no fit, no crop, the frames recorded."""
    from marigold_bench.frames import check_frame

    spec = get_evaluation_protocol(protocol, "normals")
    refused = [flag for flag, given in (("--output-space", output_space not in (None, "normals")),
                                        ("--alignment", alignment not in (None, "none")),
                                        ("--fit-space", fit_space is not None),
                                        ("--boundary-f1", bool(boundary_f1)),
                                        ("--crop", crop is not None and crop != default_crop(dataset_protocol)))
               if given]
    if refused:
        raise BenchError(f"{dataset_protocol.name} is a surface-normals benchmark: normals are scored by angle, "
                         f"without a fit, crop or boundary metric, so {', '.join(refused)} does not apply")
    bench_frame = check_frame(getattr(dataset_protocol, "frame", None) or "opengl")
    pred_frame = check_frame(frame or bench_frame)
    overrides = ("frame",) if declared_frame is not None and declared_frame != pred_frame else ()
    alignment, space = next(iter(spec.default_alignment.values()))
    return Scoring(
        protocol=spec.name, source=spec.source, dataset=dataset_protocol.name, output_space="normals",
        alignment=alignment, fit_space=space, fit=spec.realisations[(alignment, space)], fit_resolution="none",
        fit_max_resolution=None, fit_downsample="none", weights="none", clip_to_range=False,
        min_depth=dataset_protocol.min_depth, max_depth=dataset_protocol.max_depth,
        metric_definitions=spec.metric_definitions or spec.name, metric_keys=tuple(spec.metric_keys),
        boundary_f1_radius=None, overrides=overrides, crop=default_crop(dataset_protocol),
        disparity_floor=spec.disparity_floor, protocol_version=spec.version, task="normals",
        frame=bench_frame, prediction_frame=pred_frame, definition=spec, benchmark=dataset_protocol)


def resolve_scoring(dataset_protocol, protocol: str = "marigold", output_space: str | None = None,
                    alignment: str | None = None, fit_space: str | None = None,
                    boundary_f1: int | None = None, declared_output_space: str | None = None,
                    crop: str | None = None, frame: str | None = None,
                    declared_frame: str | None = None) -> Scoring:
    """Combine a benchmark's facts, an evaluation protocol, the output space and overrides.

    Args:
        dataset_protocol: the benchmark's :class:`~marigold_bench.data.protocol.Protocol`.
        protocol: an evaluation protocol name (:data:`EVALUATION_PROTOCOLS`).
        output_space: what the predictions mean (:data:`~marigold_bench.output_spaces.OUTPUT_SPACES`).
        alignment: ``affine|scale|median|none``; None: the protocol's default for the output space.
        fit_space: ``depth|disparity``, the space the predictions are fitted in; None: the
            alignment's default (disparity for disparity outputs, depth otherwise).
        boundary_f1: radius of a boundary-F1 column (1, 2 or 3); None: the protocol's default
            for the benchmark (MoGe: radius 1 where the benchmark's ground truth has sharp
            edges); 0: none.
        declared_output_space: what the model itself declares, when ``output_space`` is the
            user's override of it: then ``output_space`` is listed in ``overrides``.
        crop: a crop the benchmark offers; None: the protocol's (None there: the benchmark's
            own default crop, e.g. NYU's Eigen crop).
        frame: normals benchmarks (``spec.task == "normals"``): the camera frame the predictions
            are in (`marigold_bench.frames.FRAMES`); None: the benchmark's. They are converted to
            the benchmark's frame before scoring, and both frames are recorded.
        declared_frame: the predictor's own frame when ``frame`` is the user's ``--frame``
            (a difference is listed in ``overrides``).

    The protocol is looked up for the benchmark's task (``spec.task``): ``marigold`` on a
    normals benchmark is the normals protocol of that name.

    Returns:
        :class:`Scoring`.

    Raises:
        BenchError: unknown protocol, alignment, fit space, output space or crop; an alignment
            the output space cannot take (``none`` on affine- or scale-invariant predictions).
        UndefinedAlignmentError: an (alignment, fit space) pair the protocol does not define.
    """
    if getattr(dataset_protocol, "task", "depth") == "normals":
        return _resolve_normals(dataset_protocol, protocol, output_space, alignment, fit_space, boundary_f1,
                                crop, frame, declared_frame)
    if frame is not None:
        raise BenchError(f"--frame is the camera frame of surface normals; {dataset_protocol.name} is a "
                         "depth benchmark")
    spec = get_evaluation_protocol(protocol)
    output_space = output_space or DEPTH_AFFINE
    only = getattr(dataset_protocol, "scored_by", None)  # a pair benchmark (DA-2K) takes one protocol
    if only is not None and only != spec.name:
        raise BenchError(f"benchmark {dataset_protocol.name} is scored only by --protocol {only} "
                         f"(its ground truth is not a depth map), not {spec.name}")
    if output_space not in ALL_OUTPUT_SPACES:
        raise BenchError(f"unknown output space {output_space!r}; known: {', '.join(ALL_OUTPUT_SPACES)}")
    if is_point_map(output_space) and output_space not in spec.default_alignment:
        from marigold_bench.data.registry import all_benchmarks

        # a protocol that only a pair benchmark takes (da2k) is no choice for a depth map
        pair_only = {getattr(b, "scored_by", None) for b in all_benchmarks()} - {None}
        point_protocols = [p.name for p in EVALUATION_PROTOCOLS.values()
                           if output_space in p.default_alignment and p.name not in pair_only]
        raise BenchError(f"protocol {spec.name} scores no point maps ({output_space} predictions); "
                         f"choose --protocol {' | '.join(point_protocols) or '(none defined)'}")
    if alignment is not None and alignment not in ALIGNMENTS:
        raise BenchError(f"unknown alignment {alignment!r}; known alignments: {', '.join(ALIGNMENTS)}")
    if fit_space is not None and fit_space not in ("depth", "disparity"):
        raise BenchError(f"unknown fit space {fit_space!r}; known: depth, disparity")
    if alignment is not None and alignment not in ALLOWED_ALIGNMENTS[output_space]:
        raise BenchError(
            f"--alignment {alignment} cannot serve --output-space {output_space}: such predictions are "
            f"only defined up to {'scale and shift' if 'affine' in output_space else 'scale'}, so they "
            f"need a fit; choose one of {', '.join(ALLOWED_ALIGNMENTS[output_space])}")
    if output_space not in spec.default_alignment:
        # a protocol without a default for this output space (a metric protocol asked of an
        # affine-invariant model) serves it only with an explicit fit
        if alignment is None:
            raise BenchError(_no_default_message(spec, output_space))
        default_alignment, default_space = None, None
    else:
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
        radius = spec.default_boundary_f1(dataset_protocol)
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
        metric_definitions=spec.metric_definitions or spec.name,
        metric_keys=tuple(spec.columns(output_space, dataset_protocol) if spec.columns else spec.metric_keys),
        boundary_f1_radius=radius, overrides=overrides,
        crop=_resolve_crop(dataset_protocol, crop if crop is not None else spec.crop),
        protocol_version=spec.version,
        disparity_floor=spec.disparity_floor, definition=spec, benchmark=dataset_protocol)


def default_scoring(dataset_protocol, output_space: str = DEPTH_AFFINE) -> Scoring:
    """What a caller that names no protocol gets: ``marigold`` for ``output_space``, with the
    benchmark protocol's own ``fit_space`` when it was set to disparity there (so code that
    did so keeps its numbers)."""
    if getattr(dataset_protocol, "task", "depth") == "normals":  # normals predictions: no output space
        return resolve_scoring(dataset_protocol, "marigold")
    space = getattr(dataset_protocol, "fit_space", "depth")
    return resolve_scoring(dataset_protocol, "marigold", output_space,
                           fit_space=None if space == "depth" else space)


def scoring_of_summary(benchmark, summary: dict) -> Scoring:
    """The :class:`Scoring` a run was scored with, resolved again from its ``summary.json``.

    What a reader of a finished run (pictures, reports) hands to `marigold_bench.eval.align.align`
    and `marigold_bench.eval.scoring.scored_pixels` to align a prediction as it was scored. Runs
    made before 0.3 record no ``scoring``: the ``marigold`` protocol for depth predictions, in the
    fit space ``summary["protocol"]["fit_space"]`` names.

    Args:
        benchmark: the run's benchmark description (``dataset.protocol``).
        summary: the run's ``summary.json`` content.
    """
    record = summary.get("scoring") or {}
    if record.get("task", "depth") != "depth":
        return resolve_scoring(benchmark, record.get("protocol", "marigold"), frame=record.get("prediction_frame"))
    fit_space = record.get("fit_space", (summary.get("protocol") or {}).get("fit_space"))
    return resolve_scoring(benchmark, record.get("protocol", "marigold"),
                           output_space=record.get("output_space", DEPTH_AFFINE),
                           alignment=record.get("alignment"), fit_space=fit_space,
                           boundary_f1=record.get("boundary_f1_radius") or 0, crop=record.get("crop"))


def parse_list(text: str | None, known, what: str) -> list:
    """``"a,b"`` -> ``["a", "b"]``, each checked against ``known`` (a BenchError lists them)."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    unknown = [t for t in items if t not in known]
    if unknown:
        raise BenchError(f"unknown {what} {', '.join(map(repr, unknown))}; known {what}s: {', '.join(known)}")
    return items


__all__ = ["ALIGNMENTS", "ALIGNMENT_MEANING", "ALLOWED_ALIGNMENTS", "BUILT_INS", "EVALUATION_PROTOCOLS",
           "NORMALS_BUILT_INS", "NORMALS_PROTOCOLS", "PROTOCOLS_BY_TASK",
           "EvaluationProtocol", "Scoring", "default_crop", "default_scoring", "get_evaluation_protocol",
           "has_sharp_edges", "parse_list", "resolve_scoring", "scoring_of_summary"]
