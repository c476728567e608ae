"""The Marigold-normals family: diffusers-format Marigold surface-normals checkpoints
(`normals.MarigoldNormalsPredictor`).

It recognises a folder by its ``model_index.json`` (`model.load.is_marigold_normals_checkpoint`:
``MarigoldNormalsPipeline``, or a Marigold pipeline with ``prediction_type: "normals"``), which
the depth family (`marigold_family`) refuses, and honours the Marigold settings except the depth
recipe (``--recipe``) and the tiny depth decoder's. What is left open is filled from the registry
entry (`registry`: the authors' steps and resolution; a benchmark's resolution comes first, as
for depth) and then from the checkpoint's ``model_index.json``.
"""

from __future__ import annotations

from pathlib import Path

from ..output_spaces import NORMALS
from .families import COMMON_SETTINGS, Family

#: the Marigold settings a normals checkpoint takes (`marigold_family.MARIGOLD_SETTINGS` less the
#: depth recipe; the ensembling is ``closest`` or ``mean``)
NORMALS_SETTINGS = ("steps", "timestep_spacing", "noise", "processing_res", "precision", "ensembling", "compile",
                    "tiny_vae", "padding")

#: the values of settings the user left unset (those of `MarigoldNormalsPredictor.from_pretrained`)
DEFAULTS = {"ensemble": 1, "batch_size": 0, "precision": "fp32", "device": "auto", "seed": 1234, "noise": "gaussian"}


class MarigoldNormalsFamily(Family):
    """Marigold surface-normals checkpoints: the depth recipe's model calls, unit normals out."""

    name = "marigold-normals"
    description = "a Marigold (diffusers) surface-normals checkpoint"
    settings = COMMON_SETTINGS + NORMALS_SETTINGS
    output_space = NORMALS
    value_range = (-1.0, 1.0)

    def claims(self, model, path):
        from ..model.load import is_marigold_normals_checkpoint

        return path is not None and is_marigold_normals_checkpoint(path)

    def build(self, model, settings):
        """A `MarigoldNormalsPredictor`; ``settings``' own values win, then a registry entry's
        steps, resolution and ensemble size (the official evaluation's), then the checkpoint's
        ``model_index.json``."""
        from .normals import MarigoldNormalsPredictor
        from .registry import lookup, lookup_path

        entry = lookup(model) or lookup_path(model)
        steps, res = settings.get("steps"), settings.get("processing_res")
        if entry is not None and entry.family == self.name:
            steps = steps if steps is not None else entry.steps
            res = res if res is not None else entry.processing_res
        given = {key: settings.get(key, default) for key, default in DEFAULTS.items()}
        if "ensemble" not in settings and entry is not None and entry.family == self.name and entry.ensemble:
            given["ensemble"] = entry.ensemble
        optional = {key: settings.get(key) for key in ("timestep_spacing", "ensembling", "tiny_vae", "padding")}
        return MarigoldNormalsPredictor.from_pretrained(
            model, steps=steps, processing_res=res, compile=bool(settings.get("compile")),
            **given, **{k: v for k, v in optional.items() if v is not None})

    def example(self, folder):
        # the tiny normals checkpoint the package ships (trained by the suite's own trainer)
        tiny = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny-normals"
        return str(tiny) if (tiny / "model_index.json").is_file() else None


#: the family of Marigold normals checkpoints (`marigold_bench.inference.families`)
FAMILY = MarigoldNormalsFamily()
