"""The ablation studies, as data: what varies, over which values, with how many seeds.

A :class:`Study` is a small spec; :func:`plan` turns it into the list of :class:`Run` s the
runner executes. Nothing here runs a model, so a study reads top to bottom in a few lines and a
new one is a new entry in :data:`STUDIES`.

The studies follow the Marigold paper (CVPR 2024, Sec. 4.4) and its follow-ups:

* ``ensemble`` -- test-time ensemble size N. All N of one seed come from one cached run with the
  largest N (``shared_members``): the members are predicted once and merged N at a time.
* ``steps`` -- DDIM steps under both timestep spacings (trailing and leading).
* ``spacing`` -- the same grid, tabulated as trailing against leading per step count.
* ``noise`` -- the starting noise of inference for one checkpoint.
* ``train_noise`` -- the training noise, by evaluating one checkpoint per noise type
  (``ablate --study noise --checkpoints gaussian=DIR,...`` or ``--train``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from marigold_bench.errors import BenchError

DDIM_STEPS = (1, 2, 4, 10, 25, 50)
SPACINGS = ("trailing", "leading")


@dataclass(frozen=True)
class Study:
    """One ablation.

    Attributes:
        name: the ``--study`` name.
        title: a caption for tables and plots.
        axis: the setting varied (an inference flag's name, or ``train_noise`` whose values
            name checkpoints).
        values: its default values (``--values`` replaces them).
        kind: ``int`` or ``str``: how ``--values`` is parsed.
        series: a second inference setting crossed with every value of ``axis``.
        series_values: the values of ``series``.
        seeds: default number of seeds (``--seeds`` replaces it).
        shared_members: runs differing only in ``axis`` (the ensemble size) share one member
            cache, so members are predicted once for the largest value.
        limits: (lowest, highest) allowed integer value.
        choices: allowed string values (None: any).
        layout: ``"long"`` (a row per value) or ``"versus"`` (``series`` values side by side
            with their difference), for the study table.
        plot: ``"curve"`` (metric against a numeric axis) or ``"bars"`` (per category).
        logx: logarithmic x axis for the curve.
    """

    name: str
    title: str
    axis: str
    values: tuple
    kind: type = int
    series: str | None = None
    series_values: tuple = ()
    seeds: int = 1
    shared_members: bool = False
    limits: tuple | None = None
    choices: tuple | None = None
    layout: str = "long"
    plot: str = "curve"
    logx: bool = False


STUDIES: dict[str, Study] = {
    "ensemble": Study(
        "ensemble", "Test-time ensemble size N", axis="ensemble", values=(1, 2, 3, 5, 10),
        seeds=3, shared_members=True, limits=(1, 20)),
    "steps": Study(
        "steps", "DDIM steps under trailing and leading timestep spacing", axis="steps",
        values=DDIM_STEPS, series="timestep_spacing", series_values=SPACINGS, limits=(1, 1000),
        logx=True),
    "spacing": Study(
        "spacing", "Timestep spacing: trailing against leading per DDIM step count", axis="steps",
        values=DDIM_STEPS, series="timestep_spacing", series_values=SPACINGS, limits=(1, 1000),
        layout="versus", logx=True),
    "noise": Study(
        "noise", "Starting noise of inference", axis="noise", values=("gaussian", "multires", "zeros"),
        kind=str, choices=("gaussian", "multires", "zeros"), plot="bars"),
    "train_noise": Study(
        "train_noise", "Training noise (one checkpoint trained with each)", axis="train_noise",
        values=("gaussian", "multires", "annealed"), kind=str, plot="bars"),
}


@dataclass(frozen=True)
class Run:
    """One run of a study.

    Attributes:
        key: unique, file-system safe name; the run's directory under ``<study>/runs/``.
        labels: the study's coordinates of this run (axis, series, seed) for tables and plots.
        settings: inference settings that replace the command's flags for this run.
        cache: runs with the same cache name share one ``predictions.h5`` (their members).
    """

    key: str
    labels: dict
    settings: dict
    cache: str


def parse_values(study: Study, text: str | None) -> tuple:
    """``--values`` text (``"1,2,5"``) as the study's values, checked against its limits."""
    if not text:
        return study.values
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        values = tuple(study.kind(item) for item in items)
    except ValueError:
        raise BenchError(f"--values {text!r}: the {study.name} study takes {study.kind.__name__} values, "
                         f"e.g. {','.join(map(str, study.values))}") from None
    if not values:
        raise BenchError("--values is empty")
    if len(set(values)) != len(values):
        raise BenchError(f"--values {text!r} repeats a value")
    if study.limits is not None:
        low, high = study.limits
        bad = [v for v in values if not low <= v <= high]
        if bad:
            raise BenchError(f"--values: {study.axis} must lie in [{low}, {high}]; got {', '.join(map(str, bad))}")
    if study.choices is not None:
        bad = [v for v in values if v not in study.choices]
        if bad:
            raise BenchError(f"--values: unknown {study.axis} {', '.join(bad)}; choose from {', '.join(study.choices)}")
    return values


def _safe(text) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text))


def plan(study: Study, values=None, seeds: int | None = None, base_seed: int = 1234,
         checkpoints: dict | None = None) -> list[Run]:
    """The runs of ``study``.

    Args:
        values: values of the axis (default: the study's).
        seeds: number of seeds; seeds are ``base_seed, base_seed + 1, ...``.
        base_seed: the first seed (the command's ``--seed``).
        checkpoints: label -> checkpoint directory, for ``train_noise`` (its values are the labels).

    Returns:
        Runs in execution order. With shared members the largest ensemble of a seed comes
        first, so one pass predicts every member and the smaller ensembles only re-merge.
    """
    if study.axis == "train_noise":
        if not checkpoints:
            raise BenchError("the training-noise study needs checkpoints: --checkpoints gaussian=DIR,"
                             "multires=DIR,annealed=DIR (or --train to train them)")
        values = tuple(checkpoints) if values is None else values
        missing = [v for v in values if v not in checkpoints]
        if missing:
            raise BenchError(f"no checkpoint given for {', '.join(missing)}")
    values = tuple(study.values if values is None else values)
    n_seeds = study.seeds if seeds is None else int(seeds)
    if n_seeds < 1:
        raise BenchError("--seeds must be at least 1")
    order = sorted(values, reverse=True) if study.shared_members else values
    runs = []
    for seed in range(base_seed, base_seed + n_seeds):
        for series_value in study.series_values or (None,):
            for value in order:
                labels = {study.axis: value}
                settings = {"seed": seed}
                if study.axis == "train_noise":
                    settings["model"] = str(checkpoints[value])
                else:
                    settings[study.axis] = value
                if study.series is not None:
                    labels[study.series] = series_value
                    settings[study.series] = series_value
                labels["seed"] = seed
                key = "_".join(_safe(f"{k}-{v}") for k, v in labels.items())
                # shared members: one cache per everything-but-the-axis (per seed, here)
                cache = ("members_" + "_".join(_safe(f"{k}-{v}") for k, v in labels.items() if k != study.axis)
                         if study.shared_members else key)
                runs.append(Run(key, labels, settings, cache))
    return runs
