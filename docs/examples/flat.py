"""A model family in one file: ``flat:<metres>`` (docs/adding-a-model-family.md).

``--model flat:2.5`` predicts metric depth 2.5 m at every pixel of every image: a floor any
metric model should beat. Use it with ``marigold-bench --include docs/examples run --model
flat:2.5 ...``. Nothing in the package is edited: this module-level ``FAMILY`` is the whole
family.
"""

import numpy as np

from marigold_bench.inference.families import Family
from marigold_bench.output_spaces import DEPTH_METRIC


class FlatPredictor:
    """The Predictor interface (marigold_bench/inference/interface.py) for one constant depth."""

    output_space = DEPTH_METRIC   # metric depth: scored as it is under the marigold protocol
    device = None                 # runs on the host

    def __init__(self, metres, ensemble=1):
        self.metres = float(metres)
        # recorded in summary.json; the cache compares them, so they identify the predictions
        self.settings = {"model": f"flat:{self.metres:g}", "family": "flat", "output_space": self.output_space,
                         "ensemble": int(ensemble), "ensembling": None}

    def predict(self, jobs):
        """One array (members x H x W) per job ``(sample_id, rgb, members)``."""
        return [np.full((len(members), *np.asarray(rgb).shape[:2]), self.metres, np.float32)
                for _, rgb, members in jobs]

    def merge(self, members, out_shape=None):
        """The ensemble of a sample's members (here all equal) and its uncertainty (none)."""
        shape = tuple(out_shape) if out_shape is not None else np.shape(members)[1:]
        return np.full(shape, self.metres, np.float32), None


class FlatFamily(Family):
    """``flat:<metres>``: a constant metric depth."""

    name = "flat"
    description = "a constant metric depth (the docs' example family)"
    prefix = "flat"               # claims every --model that starts with "flat:"
    # `settings`, the flags it honours, stays Family's default (ensemble, seed, device,
    # batch size, output space): a flag outside it that the user sets (--steps 4) is refused
    output_space = DEPTH_METRIC
    value_range = None

    def build(self, model, settings):
        return FlatPredictor(model.split(":", 1)[1], settings.get("ensemble", 1))

    def example(self, folder):
        return "flat:2"           # a model the Predictor contract test can run


FAMILY = FlatFamily()
