"""Inference with the Marigold recipe: batched DDIM prediction, per-member seeding, ensembling.

Entry points:

* `load_predictor(model, **settings)` -> `MarigoldPredictor` (what ``run`` and ``predict`` use);
* `MarigoldPredictor.predict(jobs)` -> raw ensemble members, `MarigoldPredictor.merge` -> depth;
* `ensemble_depth` and `ENSEMBLING_PRESETS`: test-time ensembling (paper Eq. 4);
* `member_seed`: the seed of one ensemble member.

Heavy imports (torch models, diffusers) happen when a predictor is built, not on import.
"""

from __future__ import annotations

from .ensemble import ENSEMBLING_PRESETS, ensemble_depth, resolve_ensembling
from .seeding import member_generator, member_seed


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
    # The predictor module pulls in diffusers; keep `import marigold_bench.inference` cheap.
    if name in ("MarigoldPredictor", "InferenceSettingsError", "NOISE_KINDS"):
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENSEMBLING_PRESETS", "ensemble_depth", "resolve_ensembling", "member_seed", "member_generator",
           "load_predictor", "MarigoldPredictor", "InferenceSettingsError", "NOISE_KINDS"]
