"""The MoGe family: microsoft/MoGe point-map models (MoGe-1 ``Ruicheng/moge-vitl``, MoGe-2
``Ruicheng/moge-2-vitl``, ``Ruicheng/moge-2-vit{l,b,s}-normal``), run as MoGe's own evaluation
runs them.

MoGe is not on PyPI and never a dependency of the suite: its package is imported when a model
is built, and a missing one is a `MissingPackageError` naming `INSTALL`.

Recognising: a folder holding MoGe's ``model.pt`` (the weights with their ``model_config``
inside; MoGe's ``from_pretrained`` reads that one file), local or a ``Ruicheng/moge*`` snapshot
in the Hugging Face cache (``resources/models.csv`` lists the public ones, family ``moge``).
The version is read from ``model_config``: MoGe-2's constructor takes ``encoder``/``neck``
dicts (``moge/model/v2.py``), MoGe-1's an ``encoder`` name and ``intermediate_layers``
(``moge/model/v1.py``).

What the numbers mean (evidence: microsoft/MoGe ``baselines/moge.py``, the wrapper of MoGe's
own evaluation): version ``v1`` outputs are returned as ``points_scale_invariant`` (its
``infer`` recovers the focal and z-shift from the affine map, `recover_focal_shift`, leaving one
unknown scale), ``v2`` as ``points_metric`` (``infer`` multiplies by the ``scale_head``'s
``metric_scale``; README: "For MoGe-2, the point map is in metric scale"). A v2 checkpoint
without a ``scale_head`` has no metric scale and is declared scale-invariant.

How it runs (MoGe ``Baseline.infer_for_evaluation``): ``infer(image, fov_x=None,
apply_mask=False, num_tokens=None, use_fp16=...)`` at the default ``resolution_level`` 9, the
input at its own size, points in OpenCV axes (x right, y down, z forward), ``force_projection``
on (MoGe's default). The model's camera is its own estimate (no ground-truth field of view is
given). ``apply_mask=False`` is MoGe's evaluation choice and ours: the predicted validity mask
is not applied, so every pixel carries the network's point (finite) and the benchmark's own
mask decides what is scored. With ``apply_mask=True`` MoGe writes ``inf`` where its mask is
false, which the suite would refuse as a failed sample. Should a point still be NaN/inf (fp16
overflow), `predict` raises `PredictionError` naming the samples, as every adapter does.

Settings: device, precision (``fp32``, MoGe's evaluation default; ``fp16``: MoGe's autocast,
``use_fp16=True``, for CUDA), batch size (images of one size per ``infer`` call; 0: 4),
ensemble (copies of the one deterministic prediction), output space. ``resolution_level`` and
``num_tokens`` stay MoGe's defaults (9, derived from the checkpoint's ``num_tokens_range``)
and are recorded in the settings; diffusion settings are refused (`Family.check`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CheckpointError, InferenceSettingsError, MissingPackageError, PredictionError
from ..output_spaces import POINTS_METRIC, POINTS_SCALE
from .families import COMMON_SETTINGS, Family
from .interface import three_channel_members

#: how a user installs MoGe (not on PyPI)
INSTALL = "pip install git+https://github.com/microsoft/MoGe.git"
#: the file MoGe's from_pretrained loads from a folder or hub repo
WEIGHTS = "model.pt"
#: MoGe's own default of ``infer`` (and of its evaluation baseline)
RESOLUTION_LEVEL = 9
#: images of one size per ``infer`` call when the batch size is "auto" (0)
AUTO_BATCH = 4


def _import_moge():
    """MoGe's version dispatcher (``moge.model.import_model_class_by_version``)."""
    try:
        from moge.model import import_model_class_by_version
    except ImportError:
        raise MissingPackageError(f"MoGe models need the moge package, which is not installed: {INSTALL}") from None
    return import_model_class_by_version


def read_config(path: Path) -> dict:
    """The ``model_config`` stored in a MoGe ``model.pt`` (memory-mapped: no weights are read).

    Raises:
        CheckpointError: the file is not a MoGe checkpoint.
    """
    import torch

    try:
        checkpoint = torch.load(Path(path) / WEIGHTS, map_location="cpu", mmap=True, weights_only=True)
        config = checkpoint["model_config"]
    except Exception as exc:   # a damaged file or another torch checkpoint: say which file, not how
        raise CheckpointError(f"{Path(path) / WEIGHTS} is not a MoGe checkpoint (no model_config: {exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{Path(path) / WEIGHTS}: model_config is a {type(config).__name__}, not a dict")
    return config


def version_of(config: dict) -> str:
    """``"v2"`` for MoGe-2's constructor (``encoder`` and ``neck`` dicts), else ``"v1"``."""
    return "v2" if isinstance(config.get("encoder"), dict) and "neck" in config else "v1"


def output_space_of_config(config: dict) -> str:
    """Metric points for a MoGe-2 model with a scale head, scale-invariant points otherwise."""
    return POINTS_METRIC if version_of(config) == "v2" and config.get("scale_head") is not None else POINTS_SCALE


class MoGePredictor:
    """The Predictor interface (`marigold_bench.inference.interface`) for one MoGe model.

    Members are ``M x 3 x H x W`` float32 point maps at the input's size (copies of one
    deterministic prediction); `merge` resizes them channel by channel (bilinear).
    """

    def __init__(self, net, *, model_name: str, model_path: str, version: str, output_space: str,
                 declared_output_space: str, ensemble: int = 1, batch_size: int = 0, precision: str = "fp32",
                 device="auto"):
        from .devices import check_common_settings, resolve_placement

        check_common_settings(ensemble=ensemble, batch_size=batch_size, precision=precision)
        if precision not in ("fp32", "fp16"):
            # MoGe's infer knows one switch, use_fp16 (autocast); there is no bf16 path
            raise InferenceSettingsError(f"MoGe runs in fp32 or fp16 (its use_fp16 autocast), got --precision {precision}")
        self.device, _ = resolve_placement(device, precision)
        self.net = net.to(self.device).eval()
        self.model_name, self.model_path, self.version = model_name, model_path, version
        self.output_space, self.declared_output_space = output_space, declared_output_space
        self.ensemble, self.batch_size, self.precision = int(ensemble), int(batch_size), precision

    @classmethod
    def from_pretrained(cls, model: str, *, output_space: str | None = None, **settings) -> "MoGePredictor":
        """Load ``--model model`` (a folder with ``model.pt`` or a cached hub id) with MoGe's own
        ``MoGeModel.from_pretrained`` of the version its config names."""
        from .devices import check_common_settings
        from .families import model_path

        check_common_settings(**{k: settings[k] for k in ("precision", "device") if k in settings})
        path = model_path(model)
        config = read_config(path)
        version = version_of(config)
        model_class = _import_moge()(version)
        net = model_class.from_pretrained(str(path / WEIGHTS))
        declared = output_space_of_config(config)
        return cls(net, model_name=str(model), model_path=str(path), version=version,
                   output_space=output_space or declared, declared_output_space=declared, **settings)

    @property
    def settings(self) -> dict[str, Any]:
        """Every resolved inference setting (JSON-serialisable), as a run records it."""
        return {
            "model": self.model_name, "model_path": self.model_path, "family": FAMILY.name,
            "moge_version": self.version, "output_space": self.output_space,
            "declared_output_space": self.declared_output_space, "precision": self.precision,
            "device": str(self.device),
            "processing": {"resolution_level": RESOLUTION_LEVEL, "num_tokens": None, "fov_x": None,
                           "apply_mask": False, "force_projection": True},
            "resample_output": "bilinear", "ensemble": self.ensemble, "ensembling": None,
            "batch_size": self.batch_size if self.batch_size > 0 else "auto",
        }

    def _infer(self, images: list[np.ndarray]):
        import torch

        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        out = self.net.infer(batch, fov_x=None, resolution_level=RESOLUTION_LEVEL, num_tokens=None,
                             apply_mask=False, force_projection=True, use_fp16=self.precision == "fp16")
        # MoGe: points B x H x W x 3 (OpenCV axes) -> the suite's B x 3 x H x W
        return out["points"].float().permute(0, 3, 1, 2).cpu().numpy()

    def predict(self, jobs: Sequence[tuple[str, np.ndarray, Sequence[int]]]) -> list[np.ndarray]:
        """One float32 ``len(members) x 3 x H x W`` point map per job ``(sample_id, rgb, members)``.

        Raises:
            PredictionError: NaN/inf for some samples; ``.sample_ids`` names them, ``.results``
                holds every job's output (``None`` for the failed ones).
        """
        images = []
        for sample_id, rgb, _ in jobs:
            rgb = np.asarray(rgb)
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise PredictionError(f"{sample_id}: MoGe takes uint8 H x W x 3 RGB, got {rgb.dtype} {rgb.shape}")
            images.append(rgb)
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for j, image in enumerate(images):
            by_shape[image.shape].append(j)
        step = self.batch_size or AUTO_BATCH
        maps: list[np.ndarray | None] = [None] * len(jobs)
        for indices in by_shape.values():
            for start in range(0, len(indices), step):
                chunk = indices[start:start + step]
                for j, points in zip(chunk, self._infer([images[j] for j in chunk])):
                    maps[j] = points.astype(np.float32, copy=False)
        results: list[np.ndarray | None] = []
        failed = []
        for (sample_id, _, members), points in zip(jobs, maps):
            if not np.isfinite(points).all():
                failed.append(str(sample_id))
                results.append(None)
            else:
                results.append(np.repeat(points[None], len(members), axis=0))
        if failed:
            error = PredictionError(f"MoGe produced NaN/inf points for sample(s) {', '.join(sorted(failed))} "
                                    f"(precision {self.precision}; try --precision fp32)")
            error.sample_ids, error.results = sorted(failed), results
            raise error
        return results

    def merge(self, members: np.ndarray, out_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, None]:
        """The image's ``3 x H x W`` point map (members averaged; they are copies) and no
        uncertainty; ``out_shape`` resizes each channel bilinearly (``align_corners=False``)."""
        import torch

        members = three_channel_members(members, "point")
        merged = members[0] if (members == members[:1]).all() else members.mean(axis=0)
        if out_shape is None or tuple(merged.shape[1:]) == tuple(int(s) for s in out_shape):
            return np.ascontiguousarray(merged), None
        resized = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(merged))[None],
                                                  size=tuple(int(s) for s in out_shape), mode="bilinear",
                                                  align_corners=False)[0]
        return resized.numpy(), None

    def __repr__(self) -> str:
        return f"MoGePredictor({self.model_name!r}, MoGe-{self.version[1:]}, {self.output_space}, on {self.device})"


class MoGeFamily(Family):
    """microsoft/MoGe point-map models (a folder with MoGe's ``model.pt``)."""

    name = "moge"
    description = "a MoGe point-map model (one deterministic forward pass at MoGe's default resolution)"
    settings = COMMON_SETTINGS + ("precision",)
    output_space = None   # scale-invariant (MoGe-1) or metric (MoGe-2) points: the predictor says
    value_range = None

    def claims(self, model, path):
        # MoGe's one-file checkpoint; Marigold and transformers folders are claimed before this
        return path is not None and (Path(path) / WEIGHTS).is_file()

    def build(self, model, settings):
        """A `MoGePredictor`; unset settings take its defaults.

        Raises:
            MissingPackageError: MoGe is not installed (the message has `INSTALL`).
        """
        given = {k: settings[k] for k in ("output_space", "ensemble", "batch_size", "precision", "device")
                 if settings.get(k) is not None}
        return MoGePredictor.from_pretrained(model, **given)


#: the family of MoGe point-map models (`marigold_bench.inference.families`)
FAMILY = MoGeFamily()
