"""A test-only model family in one spec file, loaded with ``--include tests/include_family``.

``--model plane:<value>`` predicts the same metric depth, ``<value>`` metres, at every pixel of
every image. Nothing of the package is edited to add it: this file is the whole family (the
`Family` with its claim, settings and build, and its predictor). With alignment ``none`` (the
default for metric depth) AbsRel is ``mean(|value - d| / d)`` over each image's valid pixels,
which a test computes by hand from the ground truth.
"""

import numpy as np

from marigold_bench.inference.families import Family
from marigold_bench.output_spaces import DEPTH_METRIC


class PlanePredictor:
    """The Predictor interface for a plane at ``value`` metres."""

    output_space = DEPTH_METRIC
    device = None

    def __init__(self, value: float, ensemble: int = 1):
        self.value = float(value)
        self.settings = {"model": f"plane:{value:g}", "family": "plane", "output_space": self.output_space,
                         "ensemble": int(ensemble), "ensembling": None}

    def predict(self, jobs):
        return [np.full((len(members), *np.asarray(rgb).shape[:2]), self.value, np.float32)
                for _, rgb, members in jobs]

    def merge(self, members, out_shape=None):
        merged = np.asarray(members, np.float32).mean(axis=0)
        if out_shape is not None:
            merged = np.full(tuple(out_shape), self.value, np.float32)
        return merged, None


class PlaneFamily(Family):
    """``plane:<metres>``: a constant metric depth (the test-only family)."""

    name = "plane"
    description = "a constant plane (a test-only family)"
    prefix = "plane"
    output_space = DEPTH_METRIC
    value_range = None

    def build(self, model, settings):
        return PlanePredictor(float(model.split(":", 1)[1]), settings.get("ensemble", 1))

    def example(self, folder):
        return "plane:2"


FAMILY = PlaneFamily()
