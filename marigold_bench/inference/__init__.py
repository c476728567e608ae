"""Inference: one Predictor interface (`interface`), one adapter per model family.

Marigold checkpoints (`predictor`: batched DDIM/LCM prediction, per-member seeding, ensembling),
transformers depth estimators (`transformers_depth`), image-independent baselines (`baseline`);
`registry` lists known public checkpoints.

Entry points:

* `load_predictor(model, **settings)` -> `MarigoldPredictor` (``commands.common.build_predictor``
  picks the family from the model's files and builds any of them);
* `TransformersDepthPredictor.from_pretrained(model)`: any transformers depth estimator;
* ``predictor.predict(jobs)`` -> raw members, ``predictor.merge`` -> the prediction (every family);
* `ensemble_depth` and `ENSEMBLING_PRESETS`: test-time ensembling (paper Eq. 4);
* `member_seed`: the seed of one ensemble member.

Heavy imports (torch models, diffusers) happen when a predictor is built, not on import.
"""

from __future__ import annotations

#: lazily imported names and the module each lives in: torch loads only when one is used, so
#: that commands which read no model (``models``, ``table``) start fast
_LAZY = {"ENSEMBLING_PRESETS": "ensemble", "ensemble_depth": "ensemble", "resolve_ensembling": "ensemble",
         "member_seed": "seeding", "member_generator": "seeding", "MarigoldPredictor": "predictor",
         "InferenceSettingsError": "predictor", "NOISE_KINDS": "predictor",
         "TransformersDepthPredictor": "transformers_depth", "BaselinePredictor": "baseline"}


def load_predictor(model: str, **settings):
    """Build a `MarigoldPredictor` for ``model`` (checkpoint folder or cached hub id).

    Keyword arguments are those of `MarigoldPredictor.from_pretrained` (``steps``,
    ``timestep_spacing``, ``noise``, ``ensemble``, ``processing_res``, ``batch_size``,
    ``precision``, ``device``, ``seed``, ``ensembling``). ``None`` values are dropped, so CLI
    arguments can be passed straight through and unset flags fall back to the checkpoint's defaults.
    """
    from .predictor import MarigoldPredictor

    return MarigoldPredictor.from_pretrained(model, **{k: v for k, v in settings.items() if v is not None})


def __getattr__(name):
    # torch, diffusers and transformers load on first use; keep `import marigold_bench.inference` cheap.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENSEMBLING_PRESETS", "ensemble_depth", "resolve_ensembling", "member_seed", "member_generator",
           "load_predictor", "MarigoldPredictor", "InferenceSettingsError", "NOISE_KINDS",
           "TransformersDepthPredictor", "BaselinePredictor"]
