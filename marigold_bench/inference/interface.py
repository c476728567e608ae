"""The Predictor interface: what the run loop, the cache, ``ablate`` and ``predict`` need of a model.

Every model family has one small adapter that follows it: `MarigoldPredictor` (diffusers
checkpoints), `TransformersDepthPredictor` (any transformers depth estimator) and
`BaselinePredictor` (image-independent guesses), and one `families.Family` that recognises its
models and builds the adapter. Nothing downstream looks at the family: the evaluator calls
`predict` for the members it lacks, caches them, and calls `merge`.

The contract:

* ``settings``: a JSON-serialisable dict of every resolved inference setting. It always holds
  ``model``, ``family``, ``output_space``, ``ensemble`` and ``ensembling``; everything except
  where the model lies (and the merge-only settings) is the prediction cache's identity.
* ``output_space``: one of `marigold_bench.output_spaces.OUTPUT_SPACES`: what the numbers mean.
  The protocol picks the alignment from it; the user may override it (``--output-space``).
  A surface-normals predictor says `marigold_bench.output_spaces.NORMALS` instead.
* ``task`` (optional, ``"depth"`` when absent) and, for ``"normals"``, ``frame`` (a
  `marigold_bench.frames.FRAMES` name): what the predictor predicts and in which camera axes;
  both are in ``settings`` too. A normals predictor's members are ``M x 3 x h x w`` and its
  `merge` gives ``(3 x H x W normals, H x W uncertainty or None)``; it merges straight to
  ``out_shape`` (no ``resample_output`` from `RESIZE_MODES`) where its resize renormalises.
* ``device``: the `torch.device` the model runs on, or `None` for a predictor without one.
* ``predict(jobs)``: ``jobs`` is a list of ``(sample_id, rgb, members)``, ``rgb`` uint8
  H x W x 3, ``members`` the member indices wanted; returns one float32 ``M x h x w`` array per
  job (``h x w`` is the predictor's own resolution); a point-map predictor (an output space of
  `marigold_bench.output_spaces.POINT_OUTPUT_SPACES`, e.g. MoGe) ``M x 3 x h x w`` points
  in OpenCV axes, merged to ``3 x H x W``. NaN/inf raise `PredictionError` with
  ``.sample_ids`` and ``.results`` (``None`` for the failed jobs) so the caller keeps the rest.
* ``merge(members, out_shape)``: ``(prediction, uncertainty or None)``, float32. ``out_shape``
  ``(H, W)`` resizes the result; ``None`` returns it at the members' resolution, and
  ``settings["resample_output"]`` then says how to resize it later (``"bilinear"``: torch
  bilinear, ``align_corners=False``; ``"bicubic"``: torch bicubic, ``align_corners=False``).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..frames import FRAMES
from ..output_spaces import DEPTH_AFFINE, NORMALS, check_output_space

#: one unit of work: (sample id, uint8 H x W x 3 image, member indices)
Job = tuple[str, np.ndarray, Sequence[int]]

#: what a predictor predicts (``predictor.task``; absent means depth)
TASKS = ("depth", "normals")

#: keys every predictor's settings hold
REQUIRED_SETTINGS = ("model", "family", "output_space", "ensemble", "ensembling")


@runtime_checkable
class Predictor(Protocol):
    """A depth model behind the run loop (see the module docstring for the full contract)."""

    output_space: str

    @property
    def settings(self) -> dict[str, Any]:
        """Every resolved inference setting, JSON-serialisable."""
        ...

    def predict(self, jobs: Sequence[Job]) -> list[np.ndarray]:
        """Raw members for each job: float32 ``len(members) x h x w``."""
        ...

    def merge(self, members: np.ndarray, out_shape: tuple[int, int] | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Combine one image's members; resize to ``out_shape`` unless it is `None`."""
        ...


def task_of(predictor) -> str:
    """What ``predictor`` predicts: its ``task`` attribute, ``"depth"`` when it has none."""
    return getattr(predictor, "task", "depth")


def output_space_of(predictor) -> str:
    """The output space ``predictor`` declares (its attribute, else its settings, else
    `DEPTH_AFFINE`, which is what predictors written before 0.3 produced); `NORMALS` for a
    normals predictor."""
    space = getattr(predictor, "output_space", None) or predictor.settings.get("output_space") or DEPTH_AFFINE
    return space if task_of(predictor) == "normals" and space == NORMALS else check_output_space(space)


def three_channel_members(members, what: str) -> np.ndarray:
    """The members of one image as float32 ``M x 3 x h x w`` (a ``3 x h x w`` map is one
    member), what a normals or point-map ``merge`` starts from.

    Raises:
        PredictionError: another shape, or a NaN/inf value (``what`` names the maps in the message).
    """
    from ..errors import PredictionError

    members = np.asarray(members, dtype=np.float32)
    if members.ndim == 3:
        members = members[None]
    if members.ndim != 4 or members.shape[0] < 1 or members.shape[1] != 3:
        raise PredictionError(f"merge expects M x 3 x h x w {what} members, got shape {members.shape}")
    if not np.isfinite(members).all():
        raise PredictionError(f"{what} members contain NaN/inf")
    return members


def check_predictor(predictor) -> None:
    """Raise `TypeError` naming what ``predictor`` lacks of the interface (tests, new adapters)."""
    missing = [name for name in ("settings", "predict", "merge", "output_space") if not hasattr(predictor, name)]
    if missing:
        raise TypeError(f"{type(predictor).__name__} lacks {', '.join(missing)} of the Predictor interface")
    lacking = [k for k in REQUIRED_SETTINGS if k not in predictor.settings]
    if lacking:
        raise TypeError(f"{type(predictor).__name__}.settings lacks {', '.join(lacking)}")
    name = type(predictor).__name__
    task = task_of(predictor)
    if task not in TASKS:
        raise TypeError(f"{name}: task {task!r} is none of {', '.join(TASKS)}")
    if predictor.settings.get("task", task) != task:
        raise TypeError(f"{name}: settings['task'] differs from task")
    if task == "normals":
        frame = getattr(predictor, "frame", None)
        if frame not in FRAMES:
            raise TypeError(f"{name}: a normals predictor declares its frame, one of {', '.join(FRAMES)}; got {frame!r}")
        if predictor.settings.get("frame") != frame:
            raise TypeError(f"{name}: settings['frame'] differs from frame")
        if predictor.output_space != NORMALS:
            raise TypeError(f"{name}: a normals predictor's output_space is {NORMALS!r}, got {predictor.output_space!r}")
    else:
        check_output_space(predictor.output_space)
    if predictor.settings["output_space"] != predictor.output_space:
        raise TypeError(f"{name}: settings['output_space'] differs from output_space")


__all__ = ["Predictor", "Job", "REQUIRED_SETTINGS", "TASKS", "task_of", "output_space_of", "three_channel_members",
           "check_predictor"]
