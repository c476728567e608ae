"""A test-only point-map family in one spec file, loaded with ``--include tests/include_points``.

``--model pointplane:<z>:<fx>`` predicts, for every image, the point map of a fronto-parallel
plane ``z`` metres away seen through a centred camera with normalised focal ``fx`` (square
pixels): pixel ``(i, j)`` of an HxW map holds ``z ((u - 0.5) / fx, (v - 0.5) / fy, 1)`` with
``u = (j + 0.5) / W``, ``v = (i + 0.5) / H``, ``fy = fx W / H`` (OpenCV axes). It declares
``points_metric``. A test compares what the suite scores against this plane lifted by hand.
"""

import numpy as np

from marigold_bench.inference.families import Family
from marigold_bench.output_spaces import POINTS_METRIC


def plane_points(z: float, fx: float, shape) -> np.ndarray:
    """The 3xHxW point map of the plane (see the module docstring)."""
    h, w = shape
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    x = np.broadcast_to((u[None, :] - 0.5) / fx, (h, w))
    y = np.broadcast_to((v[:, None] - 0.5) / (fx * w / h), (h, w))
    return (z * np.stack([x, y, np.ones((h, w))])).astype(np.float32)


class PointPlanePredictor:
    """The Predictor interface for the plane's point map."""

    output_space = POINTS_METRIC
    device = None

    def __init__(self, z: float, fx: float, ensemble: int = 1):
        self.z, self.fx = float(z), float(fx)
        self.settings = {"model": f"pointplane:{z:g}:{fx:g}", "family": "pointplane",
                         "output_space": self.output_space, "ensemble": int(ensemble), "ensembling": None}

    def predict(self, jobs):
        # members at a quarter of the image size: the merge asks for the ground truth's size
        return [np.stack([plane_points(self.z, self.fx, (max(1, rgb.shape[0] // 4), max(1, rgb.shape[1] // 4)))
                          for _ in members]) for _, rgb, members in jobs]

    def merge(self, members, out_shape=None):
        members = np.asarray(members, np.float32)
        shape = members.shape[-2:] if out_shape is None else tuple(out_shape)
        return plane_points(self.z, self.fx, shape), None


class PointPlaneFamily(Family):
    """``pointplane:<metres>:<fx>``: a plane's point map (the test-only point family)."""

    name = "pointplane"
    description = "a plane's point map (a test-only family)"
    prefix = "pointplane"
    output_space = POINTS_METRIC
    value_range = None

    def build(self, model, settings):
        _, z, fx = model.split(":")
        return PointPlanePredictor(float(z), float(fx), settings.get("ensemble", 1))

    def example(self, folder):
        return "pointplane:2:0.8"


FAMILY = PointPlaneFamily()
