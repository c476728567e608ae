"""In-training validation: the model as it trains, scored exactly as ``marigold-bench run`` scores it.

Copies of the training modules are wrapped in the suite's
:class:`~marigold_bench.inference.predictor.MarigoldPredictor` (the same inference, seeding and
ensembling as the ``run`` command) and scored by
:func:`marigold_bench.eval.evaluator.run_predictor` on the synthetic benchmark -- Marigold's
in-training validation: 1 denoising step, ensemble of 1, native resolution, least-squares fit,
AbsRel as the selection metric.
"""

from __future__ import annotations

import copy


def training_predictor(unet, vae, text_encoder, tokenizer, scheduler, steps: int = 1, ensemble: int = 1,
                       seed: int = 0, label: str = "training"):
    """A ``MarigoldPredictor`` over copies of ``unet`` and ``vae`` (the predictor freezes and may
    re-layout what it is given, which must not touch the modules being trained)."""
    from marigold_bench.inference.predictor import MarigoldPredictor

    device = next(unet.parameters()).device
    return MarigoldPredictor(
        unet=copy.deepcopy(unet), vae=copy.deepcopy(vae), scheduler=scheduler, text_encoder=text_encoder,
        tokenizer=tokenizer, model=label, model_path=None, model_source="training",
        pipeline_config={"prediction_type": "depth", "default_denoising_steps": steps,
                         "default_processing_resolution": 0},
        steps=steps, ensemble=ensemble, processing_res=0, precision="fp32", device=device, seed=seed)


def validate(predictor, dataset, out_dir: str) -> dict:
    """Score ``predictor`` on ``dataset`` into ``out_dir``; returns the evaluator's summary."""
    from marigold_bench.eval.evaluator import run_predictor

    return run_predictor(dataset, predictor, out_dir, progress=False)


__all__ = ["training_predictor", "validate"]
