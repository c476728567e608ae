"""The transformers family: any ``AutoModelForDepthEstimation`` checkpoint
(`transformers_depth.TransformersDepthPredictor`: DPT, Depth Anything, GLPN, ZoeDepth, ...).

It recognises a folder by ``config.json`` with ``preprocessor_config.json`` beside it. Such a
model runs its own image processor at its own resolution and is deterministic, so it takes no
diffusion, resolution or decoder setting; it does take a precision. What its numbers mean
depends on the architecture (`transformers_depth.output_space_for`), so the family declares no
output space or value range of its own.
"""

from __future__ import annotations

from .families import COMMON_SETTINGS, Family


class TransformersFamily(Family):
    """transformers depth estimators, run as ``pipeline("depth-estimation")`` runs them."""

    name = "transformers"
    description = ("a transformers depth model (its image processor sets the resolution; "
                   "one deterministic forward pass)")
    settings = COMMON_SETTINGS + ("precision",)
    output_space = None   # relative disparity or metres, by architecture: the predictor says
    value_range = None    # any range: metres, or disparity of any scale

    def claims(self, model, path):
        from ..model.load import is_transformers_checkpoint

        return path is not None and is_transformers_checkpoint(path)

    def build(self, model, settings):
        """A `TransformersDepthPredictor`; unset settings take its defaults."""
        from .transformers_depth import TransformersDepthPredictor

        given = {k: settings[k] for k in ("output_space", "ensemble", "batch_size", "precision", "device")
                 if settings.get(k) is not None}
        return TransformersDepthPredictor.from_pretrained(model, **given)


#: the family of transformers depth models (`marigold_bench.inference.families`)
FAMILY = TransformersFamily()
