"""Non-learned baseline predictors, named ``baseline:<kind>`` on the command line.

They answer the question every learned model must: is it better than a guess that ignores the
image? ``constant`` predicts one value everywhere (after the affine fit: the mean depth);
``ramp`` predicts depth growing linearly towards the top of the image (after the fit: the best
vertical plane, the classic "floor in front, far things above" prior). Both follow the
predictor interface of the run loop, so they produce real run directories.
"""

from __future__ import annotations

import numpy as np

KINDS = ("constant", "ramp")


class BaselinePredictor:
    """A deterministic, image-independent depth guess in [0, 1]."""

    def __init__(self, kind: str = "ramp", ensemble: int = 1):
        if kind not in KINDS:
            raise ValueError(f"unknown baseline {kind!r}; known: {', '.join('baseline:' + k for k in KINDS)}")
        self.kind = kind
        self.settings = {"model": f"baseline:{kind}", "ensemble": int(ensemble), "ensembling": None}

    def _guess(self, height: int, width: int) -> np.ndarray:
        if self.kind == "constant":
            return np.full((height, width), 0.5, np.float32)
        rows = 1.0 - (np.arange(height, dtype=np.float32) + 0.5) / height  # 1 at the top
        return np.repeat(rows[:, None], width, axis=1)

    def predict(self, jobs):
        return [np.stack([self._guess(*rgb.shape[:2])] * len(members)) for _, rgb, members in jobs]

    def merge(self, members: np.ndarray, out_shape) -> tuple[np.ndarray, None]:
        merged = members.mean(axis=0)
        if merged.shape != tuple(out_shape):
            merged = self._guess(*out_shape)
        return merged, None
