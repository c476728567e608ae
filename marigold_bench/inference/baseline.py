"""Non-learned baseline predictors, named ``baseline:<kind>`` on the command line.

They answer the question every learned model must: is it better than a guess that ignores the
image? ``constant`` predicts one value everywhere (after the affine fit: the mean depth);
``ramp`` predicts depth growing linearly towards the top of the image (after the fit: the best
vertical plane, the classic "floor in front, far things above" prior). Both follow the
predictor interface of the run loop, so they produce real run directories.

``facing`` is the surface-normals baseline: every pixel faces the camera, (0, 0, 1) in the
OpenGL frame -- the lower bound a normals model must beat (walls seen head-on score 0°).
"""

from __future__ import annotations

import numpy as np

from ..output_spaces import DEPTH_AFFINE
from .families import Family

KINDS = ("constant", "ramp")

#: the surface-normals baselines (task ``normals``)
NORMALS_KINDS = ("facing",)


class BaselinePredictor:
    """A deterministic, image-independent depth guess in [0, 1] (the Predictor interface,
    `marigold_bench.inference.interface`): depth up to scale and shift, computed on the host."""

    #: a guess of depth, scored like any affine-invariant depth model
    output_space = DEPTH_AFFINE
    device = None

    def __init__(self, kind: str = "ramp", ensemble: int = 1):
        if kind not in KINDS:
            raise ValueError(f"unknown baseline {kind!r}; known: {', '.join('baseline:' + k for k in KINDS)}")
        self.kind = kind
        self.settings = {"model": f"baseline:{kind}", "family": "baseline", "output_space": self.output_space,
                         "ensemble": int(ensemble), "ensembling": None}

    def _guess(self, height: int, width: int) -> np.ndarray:
        if self.kind == "constant":
            return np.full((height, width), 0.5, np.float32)
        rows = 1.0 - (np.arange(height, dtype=np.float32) + 0.5) / height  # 1 at the top
        return np.repeat(rows[:, None], width, axis=1)

    def predict(self, jobs):
        return [np.stack([self._guess(*rgb.shape[:2])] * len(members)) for _, rgb, members in jobs]

    def merge(self, members: np.ndarray, out_shape=None) -> tuple[np.ndarray, None]:
        """The members' mean; at another ``out_shape`` the guess made at that size (not a
        resize of it); ``None``: at the members' size."""
        merged = np.asarray(members, dtype=np.float32).mean(axis=0)
        if out_shape is not None and merged.shape != tuple(out_shape):
            merged = self._guess(*out_shape)
        return merged, None


class FacingPredictor:
    """Every pixel's normal is (0, 0, 1) in the OpenGL frame: facing the camera (the Predictor
    interface for normals: ``M x 3 x h x w`` members, ``merge`` -> ``(3 x H x W, None)``)."""

    task = "normals"
    frame = "opengl"
    output_space = "normals"
    device = None

    def __init__(self, ensemble: int = 1):
        self.settings = {"model": "baseline:facing", "family": "baseline", "output_space": self.output_space,
                         "task": self.task, "frame": self.frame, "ensemble": int(ensemble), "ensembling": None}

    @staticmethod
    def _guess(height: int, width: int) -> np.ndarray:
        guess = np.zeros((3, height, width), np.float32)
        guess[2] = 1.0
        return guess

    def predict(self, jobs):
        return [np.stack([self._guess(*rgb.shape[:2])] * len(members)) for _, rgb, members in jobs]

    def merge(self, members: np.ndarray, out_shape=None) -> tuple[np.ndarray, None]:
        """The guess at ``out_shape`` (the members' size when None): every member is the same."""
        shape = tuple(out_shape) if out_shape is not None else np.asarray(members).shape[-2:]
        return self._guess(*shape), None


class BaselineFamily(Family):
    """``baseline:<kind>``: image-independent guesses, computed on the host in fp32. They take
    the settings every family takes (an ensemble of identical guesses, a device they ignore)
    and no diffusion, resolution or precision setting."""

    name = "baseline"
    description = "a baseline (an image-independent guess)"
    prefix = "baseline"
    output_space = DEPTH_AFFINE
    value_range = (0.0, 1.0)

    def build(self, model, settings):
        """A `BaselinePredictor`; an unknown kind is an `InferenceSettingsError` listing the known."""
        from ..errors import InferenceSettingsError

        kind = str(model).split(":", 1)[1]
        if kind in NORMALS_KINDS:
            return FacingPredictor(ensemble=settings.get("ensemble", 1))
        try:
            return BaselinePredictor(kind, ensemble=settings.get("ensemble", 1))
        except ValueError as exc:
            raise InferenceSettingsError(str(exc)) from None

    def task_of(self, model) -> str:
        """``normals`` for ``baseline:facing``, else ``depth`` (known before anything is built)."""
        return "normals" if str(model).split(":", 1)[-1] in NORMALS_KINDS else "depth"

    def example(self, folder):
        return "baseline:ramp"


#: the family of ``baseline:*`` models (`marigold_bench.inference.families`)
FAMILY = BaselineFamily()
