"""Inference: one Predictor interface (`interface`), one adapter per model family.

Marigold checkpoints (`predictor`: batched DDIM/LCM prediction, per-member seeding, ensembling;
its geometry in `geometry`, its sampler in `samplers`), transformers depth estimators
(`transformers_depth`), image-independent baselines (`baseline`); `devices` resolves device and
precision for all of them; `registry` lists known public checkpoints.

Entry points:

* `families.family_for(model)` -> the `families.Family` whose model it is (from its name or
  files); ``family.check(settings)`` refuses what it cannot honour, ``family.build(model,
  settings)`` gives its predictor. Built-in families: `baseline`, `marigold_family`,
  `marigold_normals_family`, `transformers_family`, `moge_family` (MoGe point maps; the ``moge``
  package is imported only when such a model is built); plugins add more;
* `load_predictor(model, **settings)` -> `MarigoldPredictor` (what the Marigold family builds);
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
         "TransformersDepthPredictor": "transformers_depth", "BaselinePredictor": "baseline",
         "Family": "families", "family_for": "families", "get_family": "families", "all_families": "families"}


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
           "TransformersDepthPredictor", "BaselinePredictor", "Family", "family_for", "get_family", "all_families"]
