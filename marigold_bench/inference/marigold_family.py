"""The Marigold family: diffusers-format Marigold depth checkpoints (`predictor.MarigoldPredictor`).

It recognises a folder by its ``model_index.json`` (`model.load.is_marigold_checkpoint`: a
Marigold pipeline class, or E2E-FT's Stable Diffusion export with an image-conditioned UNet),
honours every inference setting of the suite, and builds with what is left open filled in from
the registry entry (`registry`: the authors' steps, resolution and recipe) before the
checkpoint's own ``model_index.json`` defaults. Loading torch and diffusers waits until `build`.
"""

from __future__ import annotations

from pathlib import Path

from ..output_spaces import DEPTH_AFFINE
from .families import COMMON_SETTINGS, Family
from .recipes import RECIPES

#: the settings only a Marigold checkpoint takes (the recipe, the resolution, the decoder)
MARIGOLD_SETTINGS = ("steps", "timestep_spacing", "noise", "processing_res", "precision", "ensembling", "compile",
                     "tiny_vae", "recipe", "padding")

#: the values of settings the user left unset (those of `MarigoldPredictor.from_pretrained`)
DEFAULTS = {"ensemble": 1, "batch_size": 0, "precision": "fp32", "device": "auto", "seed": 1234,
            "ensembling": "diffusers"}


class MarigoldFamily(Family):
    """Marigold depth checkpoints: DDIM (or a checkpoint's LCM scheduler) on a latent-diffusion UNet."""

    name = "marigold"
    description = "a Marigold (diffusers) depth checkpoint"
    settings = COMMON_SETTINGS + MARIGOLD_SETTINGS
    output_space = DEPTH_AFFINE   # a disparity checkpoint says so in its model_index (the predictor's)
    value_range = (0.0, 1.0)

    def claims(self, model, path):
        from ..model.load import is_marigold_checkpoint

        return path is not None and is_marigold_checkpoint(path)

    def build(self, model, settings):
        """A `MarigoldPredictor`. A registry entry (by name, hub id or cache folder) fills the
        steps and resolution left open and brings its recipe (``e2e-ft``); ``settings``' own
        values win, and the checkpoint's ``model_index.json`` fills what is still open."""
        from . import load_predictor
        from .registry import lookup, lookup_path

        entry = lookup(model) or lookup_path(model)
        recipe = settings.get("recipe") or (entry.recipe if entry is not None else None)
        steps, res = settings.get("steps"), settings.get("processing_res")
        if entry is not None and entry.family == self.name:
            steps = steps if steps is not None else entry.steps
            res = res if res is not None else entry.processing_res
        # what the user left unset takes the predictor's defaults, passed explicitly so that a
        # run records the same call whichever command built it
        noise = settings.get("noise")
        if noise is None and "noise" not in RECIPES.get(recipe or "marigold", {}):
            noise = "gaussian"   # a recipe that fixes the noise (e2e-ft: zeros) sets it itself
        return load_predictor(model, steps=steps, timestep_spacing=settings.get("timestep_spacing"), noise=noise,
                              processing_res=res, compile=settings.get("compile") or None,
                              tiny_vae=settings.get("tiny_vae"), recipe=recipe, padding=settings.get("padding"),
                              **{key: settings.get(key, default) for key, default in DEFAULTS.items()})

    def example(self, folder):
        # the tiny checkpoint the package ships (trained by the suite's own trainer)
        tiny = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny"
        return str(tiny) if (tiny / "model_index.json").is_file() else None


#: the family of Marigold checkpoints (`marigold_bench.inference.families`)
FAMILY = MarigoldFamily()
