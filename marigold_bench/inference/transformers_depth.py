"""Any transformers depth estimator behind the Predictor interface.

`TransformersDepthPredictor` runs an ``AutoModelForDepthEstimation`` checkpoint (DPT / MiDaS,
Depth Anything v1/v2, GLPN, ZoeDepth, Depth Pro, ...) with the image processor saved beside it,
and gives the same maps as ``transformers.pipeline("depth-estimation")``:

* each image goes through the checkpoint's own image processor (as a PIL image, as the pipeline
  hands it over), in the precision of the model;
* images whose processed tensors have the same size share one forward pass (the pipeline runs
  one image per call);
* the output is post-processed to the input resolution as the pipeline does, with
  ``image_processor.post_process_depth_estimation(outputs, [(H, W)])``. For the architectures
  whose post-processing is only a bicubic resize of ``predicted_depth`` (DPT, Depth Anything,
  GLPN) `predict` returns the map at the model's resolution and `merge` does that resize (the
  same torch call: bicubic, ``align_corners=False``), so the prediction cache stays small; the
  others (ZoeDepth, Depth Pro: padding removal, field-of-view scaling) are post-processed
  inside `predict`. In fp16/bf16 the maps are cast to float32 before that resize (the pipeline
  resizes in the model's dtype), so half-precision runs differ from it by the resize's round-off.

What the numbers mean is not stored in the checkpoint; `output_space_for` decides from the
architecture and its config (its docstring lists them; docs/parity.md) and an explicit ``output_space=`` overrides it.

A depth estimator is deterministic: ensemble members are identical copies of one forward pass
(computed once per image whatever their number), and `merge` returns that map. ``--ensemble N``
is accepted, so that one set of run flags serves Marigold and transformers models in a
leaderboard; it costs cache space and no compute, and a warning says it changes nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import warnings
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import CheckpointError, InferenceSettingsError, PredictionError
from ..output_spaces import DEPTH_METRIC, DISPARITY_AFFINE, check_output_space
from .devices import PRECISIONS, check_common_settings, resolve_placement

#: Architectures (``config.model_type``) whose outputs are in metres.
METRIC_ARCHITECTURES = ("glpn", "zoedepth", "depth_pro", "prompt_depth_anything")
#: Architectures that output relative inverse depth (DPT / MiDaS; Depth Anything unless metric).
DISPARITY_ARCHITECTURES = ("dpt", "depth_anything")
#: Architectures whose ``post_process_depth_estimation`` is a bicubic resize of ``predicted_depth``
#: and nothing else, so the resize can wait until `merge` (checked on a probe at load time).
RESIZE_ONLY_POSTPROCESS = ("dpt", "depth_anything", "glpn")
#: Architectures whose image processors need torchvision.
NEEDS_TORCHVISION = ("zoedepth", "depth_pro")
#: The optional extra that brings torchvision.
VISION_EXTRA = "marigold-bench[vision]"

#: processor settings worth recording: they decide the resolution the model sees
_PROCESSOR_KEYS = ("size", "keep_aspect_ratio", "ensure_multiple_of", "size_divisor", "do_pad", "resample",
                   "do_resize", "image_mean", "image_std")

_AUTO_CPU_BATCH = 4
_AUTO_GPU_BATCH = 16


def output_space_for(config) -> str:
    """The output space a transformers depth model's numbers are in, from its config.

    DPT (MiDaS) and relative Depth Anything predict inverse depth up to scale and shift; metric
    Depth Anything (``depth_estimation_type == "metric"``), GLPN, ZoeDepth, Depth Pro and
    Prompt Depth Anything predict metres.

    Raises:
        InferenceSettingsError: for an architecture not listed here (pass ``output_space=``).
    """
    model_type = getattr(config, "model_type", None)
    if model_type == "depth_anything":
        return DEPTH_METRIC if getattr(config, "depth_estimation_type", "relative") == "metric" else DISPARITY_AFFINE
    if model_type in DISPARITY_ARCHITECTURES:
        return DISPARITY_AFFINE
    if model_type in METRIC_ARCHITECTURES:
        return DEPTH_METRIC
    raise InferenceSettingsError(
        f"the output space of a {model_type!r} depth model is not known to marigold-bench; "
        f"say what it predicts with --output-space (one of depth_affine_invariant, disparity_affine_invariant, "
        f"depth_scale_invariant, depth_metric)")


def _check_vision_extra(model_type: str) -> None:
    if model_type in NEEDS_TORCHVISION and importlib.util.find_spec("torchvision") is None:
        raise InferenceSettingsError(
            f"the image processor of {model_type!r} models needs torchvision, which is not installed; "
            f"install the optional extra: pip install '{VISION_EXTRA}'")


def _plain(value):
    """JSON form of processor settings: ``SizeDict(height=518, width=518, ...)`` -> its set fields,
    enums -> their value."""
    if dataclasses.is_dataclass(value):
        return {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
    if hasattr(value, "value"):
        return value.value
    return str(value)



class TransformersDepthPredictor:
    """Runs a transformers depth-estimation checkpoint on batches of images.

    Build one with `TransformersDepthPredictor.from_pretrained` (a folder, or a hub id in the
    local cache) or directly from a loaded model and image processor.

    Example:
        ```py
        >>> predictor = TransformersDepthPredictor.from_pretrained("depth-anything/Depth-Anything-V2-Small-hf")
        >>> (members,) = predictor.predict([("img0", rgb, [0])])
        >>> disparity, _ = predictor.merge(members, rgb.shape[:2])   # as pipeline("depth-estimation")
        ```
    """

    family = "transformers"

    def __init__(self, model, image_processor, *, model_name: str, model_path: str | None = None,
                 model_source: str = "memory", weights_sha256: str | None = None, output_space: str | None = None,
                 ensemble: int = 1, batch_size: int = 0, precision: str = "fp32", device: str | torch.device = "auto",
                 defer_resize: bool | None = None):
        """
        Args:
            model: a loaded ``*ForDepthEstimation`` model.
            image_processor: its image processor (as ``AutoImageProcessor`` loads it).
            model_name: what ``--model`` said (recorded).
            model_path, model_source, weights_sha256: where it was found and its content hash.
            output_space: override of `output_space_for`'s answer.
            ensemble: members per image (identical copies; see the module docstring).
            batch_size: images per forward pass; 0 = auto (4 on the CPU, 16 on a GPU).
            precision: ``fp32``, ``fp16`` or ``bf16``.
            device: ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
            defer_resize: resize to the input size in `merge` rather than inside `predict`
                (default: for the architectures in `RESIZE_ONLY_POSTPROCESS` whose processor's
                post-processing is found to be exactly that resize).
        """
        check_common_settings(ensemble=ensemble, batch_size=batch_size, precision=precision)
        self.architecture = getattr(model.config, "model_type", type(model).__name__)
        _check_vision_extra(self.architecture)
        if output_space is None:
            self.declared_output_space = output_space_for(model.config)
            self.output_space = self.declared_output_space
        else:
            try:
                self.output_space = check_output_space(output_space)
            except ValueError as exc:
                raise InferenceSettingsError(f"--output-space: {exc}") from None
            try:
                self.declared_output_space = output_space_for(model.config)
            except InferenceSettingsError:
                self.declared_output_space = None
        if int(ensemble) > 1:
            warnings.warn(f"{model_name}: a transformers depth model is deterministic; its {ensemble} ensemble "
                          "members are copies of one prediction and merging them changes nothing", stacklevel=3)

        self.device, self.dtype = resolve_placement(device, precision)
        self.precision = precision
        if next(model.parameters()).dtype != self.dtype:
            model = model.to(dtype=self.dtype)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.image_processor = image_processor
        self.model_name = model_name
        self.model_path = model_path
        self.model_source = model_source
        self.weights_sha256 = weights_sha256
        self.ensemble = int(ensemble)
        self.batch_size = int(batch_size)
        if defer_resize is None:
            defer_resize = self.architecture in RESIZE_ONLY_POSTPROCESS and self._postprocess_is_bicubic_resize()
        self.defer_resize = bool(defer_resize)
        self._batch_cap = 0

    def _postprocess_is_bicubic_resize(self) -> bool:
        """Whether this processor's ``post_process_depth_estimation`` is exactly a bicubic resize
        (checked on a small random map), so that the resize may wait until `merge`."""
        from transformers.modeling_outputs import DepthEstimatorOutput

        probe = torch.rand(1, 6, 10, generator=torch.Generator().manual_seed(0))
        try:
            post = self.image_processor.post_process_depth_estimation(DepthEstimatorOutput(predicted_depth=probe),
                                                                      [(7, 9)])
            theirs = post[0]["predicted_depth"]
        except Exception:  # another signature or output: post-process in predict, as the pipeline
            return False
        ours = torch.nn.functional.interpolate(probe[None], size=(7, 9), mode="bicubic", align_corners=False)[0, 0]
        return tuple(theirs.shape) == (7, 9) and torch.equal(theirs, ours)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, model: str, *, output_space: str | None = None, ensemble: int = 1,
                        batch_size: int = 0, precision: str = "fp32", device: str = "auto"
                        ) -> "TransformersDepthPredictor":
        """Load a transformers depth-estimation checkpoint and its image processor.

        Args:
            model (`str`): a folder holding ``config.json`` and ``preprocessor_config.json``, or a
                hub id in the local Hugging Face cache (nothing is downloaded).
            output_space (`str`, *optional*): what the model predicts; default: `output_space_for`.
            ensemble, batch_size, precision, device: see `TransformersDepthPredictor`.

        Raises:
            CheckpointError: the folder is not a transformers depth estimator, or cannot be loaded.
            InferenceSettingsError: a setting is invalid, or torchvision is missing for its processor.
        """
        from ..model.hub import no_loading_bar
        from ..model.load import check_transformers_checkpoint, resolve_checkpoint, weights_fingerprint
        from .registry import resolve_name

        check_common_settings(precision=precision, device=device)   # before anything is read from disk
        path, source = resolve_checkpoint(resolve_name(model))   # a registry name loads its hub id
        config = check_transformers_checkpoint(path)
        _check_vision_extra(config.get("model_type"))
        import pickle

        from safetensors import SafetensorError
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            with warnings.catch_warnings():
                # "falling back to the PIL backend" when torchvision is absent: the pipeline does the same
                warnings.simplefilter("ignore")
                with no_loading_bar():  # transformers draws a "Loading weights" bar on every load
                    net = AutoModelForDepthEstimation.from_pretrained(path, dtype=PRECISIONS[precision])
                processor = AutoImageProcessor.from_pretrained(path)
        except pickle.UnpicklingError:  # torch's weights-only loader met more than tensors in a .bin
            raise CheckpointError(f"refusing to load transformers depth model {path}: its pickled weights "
                                  f"({', '.join(sorted(p.name for p in path.glob('*.bin')))}) hold more "
                                  "than tensors and are never run; use a *.safetensors copy") from None
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
            # a truncated or corrupt weight file is the user's to replace, not a traceback
            raise CheckpointError(f"cannot load transformers depth model {path}: {exc}") from exc
        return cls(net, processor, model_name=str(model), model_path=str(path), model_source=source,
                   weights_sha256=weights_fingerprint(path, components=(".",)), output_space=output_space,
                   ensemble=ensemble, batch_size=batch_size, precision=precision, device=device)

    # ------------------------------------------------------------------ settings

    @property
    def processing(self) -> dict[str, Any]:
        """The image processor's class and the settings that decide what the model sees."""
        out: dict[str, Any] = {"processor": type(self.image_processor).__name__}
        for key in _PROCESSOR_KEYS:
            value = getattr(self.image_processor, key, None)
            if value is not None:
                out[key] = json.loads(json.dumps(value, default=_plain))
        return out

    @property
    def settings(self) -> dict[str, Any]:
        """Every resolved inference setting (JSON-serialisable), as a run records it."""
        return {
            "model": self.model_name,
            "model_path": self.model_path,
            "model_source": self.model_source,
            "weights_sha256": self.weights_sha256,
            "family": self.family,
            "architecture": self.architecture,
            "output_space": self.output_space,
            "declared_output_space": self.declared_output_space,
            "precision": self.precision,
            "device": str(self.device),
            "processing": self.processing,
            "resample_output": "bicubic",
            "postprocess": "merge" if self.defer_resize else "predict",
            "ensemble": self.ensemble,
            "ensembling": None,
            "batch_size": self.batch_size if self.batch_size > 0 else "auto",
        }

    # ------------------------------------------------------------------ prediction

    @property
    def images_per_call(self) -> int:
        """Images the run loop should hand `predict` at once (its ``--images-per-batch 0``):
        one forward pass covers a whole batch of one processed size."""
        return self._batch()

    def _batch(self) -> int:
        if self.batch_size > 0:
            return self.batch_size
        guess = _AUTO_GPU_BATCH if self.device.type == "cuda" else _AUTO_CPU_BATCH
        return min(guess, self._batch_cap) if self._batch_cap else guess

    def _preprocess(self, sample_id: str, image) -> dict[str, torch.Tensor]:
        from PIL import Image

        from .images import to_uint8_rgb

        # other layouts and bit depths as the Marigold predictor takes them (8-bit is what
        # the processors are written for); uint8 RGB passes through untouched
        array = to_uint8_rgb(image, name=f"sample {sample_id}")
        # A PIL image, as the pipeline passes it on: processors treat arrays and images alike,
        # but only this way is the same code path guaranteed.
        inputs = self.image_processor(images=Image.fromarray(array), return_tensors="pt")
        return {k: v for k, v in inputs.items() if torch.is_tensor(v)}

    def _forward(self, group: list[dict[str, torch.Tensor]], sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """One forward pass over images of one processed size; float32 maps on the host."""
        batch = {k: torch.cat([g[k] for g in group]).to(self.device) for k in group[0]}
        batch = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in batch.items()}
        outputs = self.model(**batch)
        if self.defer_resize:
            maps = list(outputs.predicted_depth)
        else:
            post = self.image_processor.post_process_depth_estimation(outputs, sizes)
            maps = [p["predicted_depth"] for p in post]
        return [m.float().cpu() for m in maps]

    @torch.inference_mode()
    def predict(self, jobs: Sequence[tuple[str, np.ndarray, Sequence[int]]]) -> list[np.ndarray]:
        """Raw members for a list of jobs (the Predictor interface).

        Args:
            jobs: ``(sample_id, image, members)`` per image; ``image`` uint8 H x W x 3 RGB.

        Returns:
            One float32 ``len(members) x h x w`` array per job: the model's map (copies of it
            for several members), at the model's resolution when the resize is deferred to
            `merge`, else post-processed to the input size.

        Raises:
            PredictionError: NaN/inf for some samples; ``.sample_ids`` names them, ``.results``
                holds every job's output (``None`` for the failed ones).
        """
        inputs = [self._preprocess(sid, image) for sid, image, _ in jobs]
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for j, x in enumerate(inputs):
            by_shape[tuple((k, tuple(v.shape)) for k, v in sorted(x.items()))].append(j)
        maps: list[torch.Tensor | None] = [None] * len(jobs)
        for job_ids in by_shape.values():
            start = 0
            while start < len(job_ids):
                chunk = job_ids[start:start + self._batch()]
                try:
                    out = self._forward([inputs[j] for j in chunk], [np.asarray(jobs[j][1]).shape[:2] for j in chunk])
                except torch.cuda.OutOfMemoryError:
                    if self.batch_size > 0 or len(chunk) <= 1:
                        raise
                    torch.cuda.empty_cache()
                    self._batch_cap = max(1, len(chunk) // 2)
                    continue
                for j, m in zip(chunk, out):
                    maps[j] = m
                start += len(chunk)

        results: list[np.ndarray | None] = []
        failed = []
        for (sample_id, _, members), m in zip(jobs, maps):
            if not torch.isfinite(m).all():
                failed.append(str(sample_id))
                results.append(None)
                continue
            one = m.numpy().astype(np.float32, copy=False)
            results.append(np.repeat(one[None], len(members), axis=0))
        if failed:
            error = PredictionError(f"the model produced NaN/inf for sample(s) {', '.join(sorted(failed))} "
                                    f"(precision {self.precision}; fp16 overflows are a common cause: try "
                                    "--precision bf16 or fp32)")
            error.sample_ids = sorted(failed)
            error.results = results
            raise error
        return results

    def merge(self, members: np.ndarray, out_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, None]:
        """The image's map, resized to ``out_shape`` as ``post_process_depth_estimation`` does.

        Args:
            members: ``N x h x w`` from `predict` (identical copies; a mixture is averaged).
            out_shape: ``(H, W)``, usually the input size; `None` keeps the members' resolution.

        Returns:
            ``(prediction, None)``: float32 ``H x W`` in the model's output space (a
            disparity model's map is disparity); no uncertainty, the model is deterministic.
        """
        members = np.asarray(members, dtype=np.float32)
        if members.ndim == 2:
            members = members[None]
        if members.ndim != 3 or members.shape[0] < 1:
            raise PredictionError(f"merge expects N x h x w members, got shape {members.shape}")
        if not np.isfinite(members).all():
            raise PredictionError("prediction contains NaN/inf")
        merged = members[0] if (members == members[:1]).all() else members.mean(axis=0)
        if out_shape is None or tuple(merged.shape) == tuple(int(s) for s in out_shape):
            return np.ascontiguousarray(merged), None
        tensor = torch.from_numpy(np.ascontiguousarray(merged))
        if self.device.type == "cuda":
            tensor = tensor.to(self.device)
        resized = torch.nn.functional.interpolate(tensor[None, None], size=tuple(int(s) for s in out_shape),
                                                  mode="bicubic", align_corners=False)[0, 0]
        return resized.cpu().numpy(), None

    def __repr__(self) -> str:
        return (f"TransformersDepthPredictor(model={self.model_name!r}, {self.architecture}, {self.output_space}, "
                f"{self.precision} on {self.device})")


__all__ = ["TransformersDepthPredictor", "output_space_for", "METRIC_ARCHITECTURES", "DISPARITY_ARCHITECTURES",
           "RESIZE_ONLY_POSTPROCESS", "NEEDS_TORCHVISION", "VISION_EXTRA"]
