"""Training configuration: plain dataclasses, mapped one to one from a YAML file.

>>> cfg = load_config("configs/tiny.yaml")      # doctest: +SKIP
>>> cfg.optim.lr, cfg.data.sources               # doctest: +SKIP
(0.0003, {'synthetic': 1.0})

Every key of the YAML file is a field below (sections are nested dataclasses); an unknown key or a
value of the wrong type is a :class:`TrainConfigError` naming it, never a silent default.
``to_dict`` / ``flatten`` give the resolved configuration that is saved with every checkpoint;
a resume compares it with the new one (:func:`config_differences`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from marigold_bench.errors import TrainConfigError
from marigold_bench.train.config_yaml import read_config_file


@dataclass
class ModelConfig:
    #: "tiny" (random-initialised tiny SD-like components, see marigold_bench.model.tiny) or a
    #: diffusers-format SD-v2 folder / hub id found in the local cache.
    base: str = "stabilityai/stable-diffusion-2"
    #: seed of the random initialisation of the tiny components.
    init_seed: int = 0
    #: tokenizer padding of the empty prompt: "do_not_pad" ([1, 2, D], official) or "max_length"
    #: ([1, 77, D], seen in follow-up work). diffusers' MarigoldDepthPipeline and the suite's
    #: predictor encode without padding, so only "do_not_pad" matches their inference.
    empty_prompt_padding: str = "do_not_pad"
    prediction_type: str = "v_prediction"
    #: train a checkpoint whose scheduler has another prediction type anyway.
    allow_prediction_type_mismatch: bool = False


@dataclass
class DataConfig:
    #: source name -> sampling weight per micro-batch; names: hypersim, vkitti, synthetic.
    sources: dict = field(default_factory=lambda: {"hypersim": 0.9, "vkitti": 0.1})
    hypersim_root: str | None = None
    hypersim_split: str = "train"
    vkitti_root: str | None = None
    vkitti_split: str = "train"
    synthetic_split: str = "train"
    #: task normals only: the preprocessed normals training sets (data/normals_training.py) and
    #: their split names (``train``: the official training lists) or split files.
    hypersim_normals_split: str = "train"
    interiorverse_root: str | None = None
    interiorverse_normals_split: str = "train"
    sintel_root: str | None = None
    sintel_normals_split: str = "train"
    #: [H, W] every sample is resized (to cover) and randomly cropped to; null keeps each source's
    #: own resolution (a micro-batch always comes from one source).
    resolution: list | None = None
    flip_p: float = 0.5
    #: data-loader worker processes (0: load in the training process).
    num_workers: int = 0


@dataclass
class NormalsAugmentConfig:
    """Task normals only: the official augmentations besides the flip (``data.flip_p``), see
    train/normals_augment.py. The blurs touch Hypersim-size frames (768 rows) only."""

    color_jitter_p: float = 0.3
    gaussian_blur_p: float = 0.3
    motion_blur_p: float = 0.3
    gaussian_blur_sigma: float = 4.0
    motion_blur_kernel_size: int = 11
    motion_blur_angle_range: float = 360.0
    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.2


@dataclass
class DiffusionConfig:
    """The noise schedule itself (1000 steps, betas) comes from the base checkpoint's scheduler."""

    #: v1-1: zero-terminal-SNR betas and trailing spacing; v1-0 (CVPR): false / "leading".
    zero_snr: bool = False
    timestep_spacing: str = "leading"
    #: training noise: "gaussian", "multires" or "annealed" (annealed multi-resolution).
    noise: str = "annealed"
    noise_strength: float = 0.9


@dataclass
class OptimConfig:
    lr: float = 3e-5
    micro_batch: int = 2
    grad_accum: int = 16
    #: "exponential" (the official IterExponential: linear warm-up from 0 over warmup_steps, then
    #: exponential decay to lr * final_ratio at iteration decay_steps, held after) or "constant"
    #: (the same warm-up, then lr). See train/lr_schedule.py.
    lr_schedule: str = "exponential"
    warmup_steps: int = 100
    #: the official ``total_iter``: the iteration (warm-up included) where the decay ends.
    decay_steps: int = 25000
    final_ratio: float = 0.01
    #: "no" (fp32), "bf16" or "fp16" -- autocast of the UNet through accelerate.
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    ema: bool = False
    ema_decay: float = 0.999


@dataclass
class VaeFitConfig:
    """Tiny-scale deviation: fit the random tiny VAE before the UNet (0 steps: skip, as for SD-v2)."""

    steps: int = 0
    lr: float = 1e-3
    batch: int = 8
    #: [H, W] random window of each image the VAE is fitted on (null: the whole image).
    crop: list | None = None
    kl_weight: float = 1e-4
    depth_weight: float = 1.0


@dataclass
class ValidationConfig:
    #: validate every this many optimiser steps and at the end (0: never).
    every: int = 500
    #: also score the starting point (step 0) of a fresh run.
    at_start: bool = False
    #: benchmark validation sets, in order: ``{dataset: nyu, split: train}`` (a split name of the
    #: benchmark, an official split path or a split file; ``max_samples`` optional). The first one
    #: present selects the best checkpoint (the official trainer's "main" validation set); the
    #: others are scored and logged. Sets whose data or split file is absent are skipped with a
    #: warning; when none is present the synthetic ``split`` below is used. [] = synthetic only.
    sets: list = field(default_factory=list)
    #: base data root of the benchmark sets (null: $MARIGOLD_DATA).
    data_root: str | None = None
    split: str = "val"  # of the synthetic benchmark (the fallback)
    #: the first this many samples of each set (>= 1; null: all); an entry's own max_samples wins.
    max_samples: int | None = None
    steps: int = 1
    ensemble: int = 1
    seed: int = 0


@dataclass
class ExportConfig:
    enabled: bool = True
    #: where the final diffusers-format pipeline is written (null: <output_dir>/export).
    dir: str | None = None
    default_denoising_steps: int = 4
    default_processing_resolution: int = 768
    #: "fp32" or "fp16" weights on disk.
    dtype: str = "fp32"
    #: use the weights of the best validation AbsRel (task normals: mean angular error) ("best")
    #: or the last step ("last").
    select: str = "best"
    #: score the exported model (and the ramp/constant baselines) on these synthetic splits for
    #: the model card README.md ([]: no model card scores).
    card_splits: list = field(default_factory=lambda: ["val"])


@dataclass
class TrainConfig:
    name: str = "marigold"
    #: "depth" or "normals" (surface normals: Marigold's normals recipe, train/normals.py). With
    #: normals, keys the file does not set take the official normals values: optim.lr 6e-5 and
    #: data.sources hypersim 0.5 + interiorverse 0.49 + sintel 0.01.
    task: str = "depth"
    output_dir: str = "runs/marigold"
    seed: int = 2024
    max_steps: int = 18000
    log_every: int = 10
    #: write a resumable checkpoint every this many optimiser steps (>= 1); one is always written at
    #: max_steps, so ``checkpoint_every: <max_steps>`` keeps only the final one (0 is refused).
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    #: torch CPU threads (null: torch's default). Part of the run's identity: the thread count
    #: changes the order of float reductions, so resume needs the same value.
    cpu_threads: int | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    normals_augment: NormalsAugmentConfig = field(default_factory=NormalsAugmentConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    vae_fit: VaeFitConfig = field(default_factory=VaeFitConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def flatten(self) -> dict:
        """``{"optim.lr": 3e-5, ...}``: every leaf under its dotted name."""
        return _flatten(self.to_dict())

    def validate(self) -> "TrainConfig":
        """Raise :class:`TrainConfigError` for values that cannot work (alone or together).

        Every problem found is listed, each under its key path (entries of ``validation.sets``
        counted from 1: ``validation.sets[1].max_samples``), in one line. Runs when a config is
        read, so a bad value stops ``train`` before any model is built or any folder is made.
        """
        problems = []
        if self.task not in TASKS:
            problems.append(f"task must be {' or '.join(TASKS)}, got {self.task!r}")
        _at_least(problems, "max_steps", self.max_steps, 0)
        _at_least(problems, "log_every", self.log_every, 1)
        # 0 is not "never": the loop writes one every checkpoint_every steps and always at max_steps
        _at_least(problems, "checkpoint_every", self.checkpoint_every, 1,
                  " (one is always written at max_steps too: checkpoint_every = max_steps writes only that one)")
        if self.cpu_threads is not None:
            _at_least(problems, "cpu_threads", self.cpu_threads, 1, " (or null: torch's default)")
        if self.optim.micro_batch < 1 or self.optim.grad_accum < 1:
            problems.append("optim.micro_batch and optim.grad_accum must be >= 1")
        _positive_number(problems, "optim.lr", self.optim.lr)
        _positive_number(problems, "vae_fit.lr", self.vae_fit.lr)
        if not _number(self.optim.ema_decay) or not 0.0 <= self.optim.ema_decay <= 1.0:
            problems.append(f"optim.ema_decay must be in [0, 1], got {self.optim.ema_decay!r}")
        _at_least(problems, "vae_fit.steps", self.vae_fit.steps, 0)
        _at_least(problems, "vae_fit.batch", self.vae_fit.batch, 1)
        for key in ("kl_weight", "depth_weight"):
            value = getattr(self.vae_fit, key)
            if not _number(value) or value < 0:
                problems.append(f"vae_fit.{key} must be a finite number >= 0, got {value!r}")
        if not _number(self.diffusion.noise_strength) or self.diffusion.noise_strength < 0:
            problems.append(f"diffusion.noise_strength must be a finite number >= 0, got {self.diffusion.noise_strength!r}")
        if self.diffusion.noise not in ("gaussian", "multires", "annealed"):
            problems.append(f"diffusion.noise must be gaussian, multires or annealed, got {self.diffusion.noise!r}")
        if self.diffusion.timestep_spacing not in ("leading", "trailing", "linspace"):
            problems.append("diffusion.timestep_spacing must be leading, trailing or linspace")
        if self.optim.lr_schedule not in ("exponential", "constant"):
            problems.append(f"optim.lr_schedule must be exponential or constant, got {self.optim.lr_schedule!r}")
        if self.optim.mixed_precision not in ("no", "bf16", "fp16"):
            problems.append(f"optim.mixed_precision must be no, bf16 or fp16, got {self.optim.mixed_precision!r}")
        if self.model.empty_prompt_padding not in ("do_not_pad", "max_length"):
            problems.append("model.empty_prompt_padding must be do_not_pad or max_length")
        if self.export.select not in ("best", "last"):
            problems.append("export.select must be best or last")
        if self.export.dtype not in ("fp32", "fp16"):
            problems.append("export.dtype must be fp32 or fp16")
        _at_least(problems, "export.default_denoising_steps", self.export.default_denoising_steps, 1)
        _at_least(problems, "export.default_processing_resolution", self.export.default_processing_resolution, 0,
                  " (0: native resolution)")
        self._validate_sources(problems)
        if not 0 <= self.optim.warmup_steps <= self.optim.decay_steps:
            problems.append("optim.warmup_steps must be >= 0 and <= optim.decay_steps")
        if not self.optim.final_ratio > 0:
            problems.append("optim.final_ratio must be > 0")
        self._validate_validation(problems)
        self._validate_synthetic_splits(problems)
        _size(problems, "data.resolution", self.data.resolution)
        _size(problems, "vae_fit.crop", self.vae_fit.crop)
        if not _number(self.data.flip_p) or not 0.0 <= self.data.flip_p <= 1.0:
            problems.append("data.flip_p must be in [0, 1]")
        _at_least(problems, "data.num_workers", self.data.num_workers, 0)
        self._validate_normals_augment(problems)
        if problems:
            raise TrainConfigError("invalid training config: " + "; ".join(problems))
        return self

    def _validate_normals_augment(self, problems: list) -> None:
        aug = self.normals_augment
        for key in ("color_jitter_p", "gaussian_blur_p", "motion_blur_p"):
            value = getattr(aug, key)
            if not _number(value) or not 0.0 <= value <= 1.0:
                problems.append(f"normals_augment.{key} must be in [0, 1], got {value!r}")
        for key in ("gaussian_blur_sigma", "motion_blur_angle_range", "brightness", "contrast", "saturation"):
            value = getattr(aug, key)
            if not _number(value) or value < 0:
                problems.append(f"normals_augment.{key} must be a finite number >= 0, got {value!r}")
        if not _number(aug.hue) or not 0.0 <= aug.hue <= 0.5:
            problems.append(f"normals_augment.hue must be in [0, 0.5], got {aug.hue!r}")
        if not _integer(aug.motion_blur_kernel_size) or aug.motion_blur_kernel_size < 3:
            problems.append(f"normals_augment.motion_blur_kernel_size must be an integer >= 3, "
                            f"got {aug.motion_blur_kernel_size!r}")

    def _validate_sources(self, problems: list) -> None:
        sources = self.data.sources or {}
        names = SOURCES_BY_TASK.get(self.task, SOURCES_BY_TASK["depth"])
        unknown = set(sources) - set(names)
        if not sources or unknown:
            problems.append(f"data.sources must map some of {', '.join(names)} to weights"
                            + (f" for task {self.task}" if self.task != "depth" else "")
                            + (f" (unknown: {', '.join(sorted(map(str, unknown)))})" if unknown else ""))
            return
        bad = [name for name, weight in sources.items() if not _number(weight) or weight < 0]
        for name in bad:  # a string, a bool, null or NaN would reach the sampler as a weight
            problems.append(f"data.sources.{name} must be a finite number >= 0 (a sampling weight), "
                            f"got {sources[name]!r}")
        if not bad and sum(sources.values()) <= 0:
            problems.append("data.sources weights must not all be 0")

    def _validate_validation(self, problems: list) -> None:
        from marigold_bench.data.loaders import DATASETS

        if self.task == "normals":  # the normals training sets' lists validate too (hypersim val_100)
            from marigold_bench.data.normals_training import NAMES

            DATASETS = {**dict.fromkeys(DATASETS), **dict.fromkeys(NAMES)}
        val = self.validation
        _at_least(problems, "validation.every", val.every, 0, " (0: never)")
        _at_least(problems, "validation.steps", val.steps, 1)
        _at_least(problems, "validation.ensemble", val.ensemble, 1)
        if val.max_samples is not None:
            _at_least(problems, "validation.max_samples", val.max_samples, 1, " (or null: all)")
        for number, entry in enumerate(val.sets, 1):
            where = f"validation.sets[{number}]"
            unknown = sorted(map(str, set(entry) - {"dataset", "split", "max_samples"})) if isinstance(entry, dict) else []
            if not isinstance(entry, dict) or "dataset" not in entry or unknown:
                problems.append(f"{where} must be a mapping with dataset and optionally split and max_samples, "
                                f"got {entry!r}" + (f" (unknown key {', '.join(unknown)})" if unknown else ""))
                continue
            if entry["dataset"] not in DATASETS:
                problems.append(f"{where}.dataset: unknown dataset {entry['dataset']!r} (known: {', '.join(DATASETS)})")
            if entry.get("split") is not None and not isinstance(entry["split"], str):
                problems.append(f"{where}.split must be a split name or file, got {entry['split']!r}")
            if entry.get("max_samples") is not None:
                _at_least(problems, f"{where}.max_samples", entry["max_samples"], 1, " (or null: all)")

    def _validate_synthetic_splits(self, problems: list) -> None:
        # checked here, so that a bad name or count stops train before any model is built
        # (the synthetic sets are opened only when training, validation or the card reach them)
        from marigold_bench.data.synthetic import parse_split
        from marigold_bench.errors import SplitNotFoundError

        named = [("data.synthetic_split", self.data.synthetic_split), ("validation.split", self.validation.split)]
        named += [(f"export.card_splits[{k}]", split) for k, split in enumerate(self.export.card_splits or [], 1)]
        for key, split in named:
            if not isinstance(split, str):
                problems.append(f"{key} must be a synthetic split name such as val or val:8, got {split!r}")
                continue
            try:
                parse_split(split)
            except SplitNotFoundError as exc:
                problems.append(f"{key}: {exc}")


#: what ``task`` may be, and the training sources each task reads
TASKS = ("depth", "normals")
SOURCES_BY_TASK = {"depth": ("hypersim", "vkitti", "synthetic"),
                   "normals": ("hypersim", "interiorverse", "sintel", "synthetic")}
#: task normals: values of the official normals config for keys a file leaves unset
NORMALS_DEFAULTS = {("optim", "lr"): 6e-5,
                    ("data", "sources"): {"hypersim": 0.5, "interiorverse": 0.49, "sintel": 0.01}}


def _number(value) -> bool:
    """A finite int or float (bools are not numbers here, though Python counts them as ints)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _at_least(problems: list, key: str, value, low: int, note: str = "") -> None:
    if not _integer(value) or value < low:
        problems.append(f"{key} must be an integer >= {low}{note}, got {value!r}")


def _positive_number(problems: list, key: str, value) -> None:
    if not _number(value) or value <= 0:
        problems.append(f"{key} must be a finite number > 0, got {value!r}")


def _size(problems: list, key: str, value) -> None:
    """``[height, width]`` of positive integers, or null."""
    if value is not None and (len(value) != 2 or not all(_integer(v) and v >= 1 for v in value)):
        problems.append(f"{key} must be [height, width] (integers >= 1) or null, got {value!r}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "sources":
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _check_type(name: str, value, annotation):
    """Coerce ints to floats where a float is expected; reject other mismatches."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise TrainConfigError(f"config key {name} must not be null")
    for option in options:
        base = typing.get_origin(option) or option
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # YAML's .nan / .inf: no setting of the trainer means either
                raise TrainConfigError(f"config key {name} must be a finite number, got {value!r}")
            return float(value)
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base in (str, bool, list, dict) and isinstance(value, base):
            return value
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    hint = ""
    if float in options and isinstance(value, str) and _parses_as_float(value):
        hint = " (YAML 1.1 reads an exponent without a dot as text: write 1.0e-3, not 1e-3)"
    raise TrainConfigError(f"config key {name} must be {wanted}, got {value!r}{hint}")


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _build(cls, values: dict, prefix: str = ""):
    if not isinstance(values, dict):
        raise TrainConfigError(f"config section {prefix.rstrip('.') or '(top)'} must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TrainConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                               f"known in this section: {', '.join(fields)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(prefix + key, value, hint)
    return cls(**kwargs)


def config_from_dict(values: dict, task: str | None = None) -> TrainConfig:
    """Build and validate a config from plain values; ``task`` (the ``--task`` flag) overrides the
    ``task`` key. With task normals, :data:`NORMALS_DEFAULTS` fill the keys ``values`` leaves unset."""
    values = dict(values or {})
    if task is not None:
        values["task"] = task
    if values.get("task") == "normals":
        for (section, key), default in NORMALS_DEFAULTS.items():
            part = values.get(section)
            if part is None or (isinstance(part, dict) and key not in part):
                values[section] = {**(part or {}), key: copy.deepcopy(default)}
    return _build(TrainConfig, values).validate()


def load_config(path: str | os.PathLike, task: str | None = None) -> TrainConfig:
    """Read a YAML training config; a missing file, a python tag, a key given twice, an unknown key or
    a bad value is a one-line :class:`TrainConfigError` (see :mod:`marigold_bench.train.config_yaml`)."""
    return config_from_dict(read_config_file(path), task)


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


#: keys that may change when a run is resumed: they do not change what is computed per step.
RESUMABLE_CHANGES = ("max_steps", "log_every", "checkpoint_every", "keep_checkpoints", "output_dir",
                     "data.num_workers", "validation.every", "validation.at_start", "export.enabled", "export.dir",
                     "export.card_splits", "validation.data_root")


def config_differences(saved: dict, current: TrainConfig) -> list[str]:
    """Keys whose values differ between a checkpoint's config and ``current`` (allowed ones excluded)."""
    a, b = _flatten(saved), current.flatten()
    defaults = TrainConfig().flatten()
    out = []
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_CHANGES:
            continue
        if key not in a and key in defaults and b.get(key) == defaults[key]:
            continue  # a key added after the checkpoint was written, left at its default
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(f"{key}: checkpoint has {a.get(key, '<absent>')!r}, config has {b.get(key, '<absent>')!r}")
    return out
