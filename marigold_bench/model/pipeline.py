"""Marigold's diffusers pipeline from components: schedulers, the in-memory pipeline, its export.

The folder :func:`export_pipeline` writes holds ``unet/``, ``vae/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/`` (DDIM with the training schedule) and ``model_index.json`` with
``prediction_type="depth"``, scale and shift invariance and the default denoising steps and
processing resolution, so that ``diffusers.MarigoldDepthPipeline.from_pretrained(dir)`` and the
suite's ``--model dir`` load it.

These live in the model layer because both model surgery (:mod:`marigold_bench.model.convert`,
which writes the untrained starting point) and training (:mod:`marigold_bench.train`) build
pipelines; training re-exports them from :mod:`marigold_bench.train.export`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

#: keys of a scheduler config that define the training noise schedule
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                 "prediction_type")


def inference_scheduler(schedule: dict, timestep_spacing: str = "leading", zero_snr: bool = False):
    """DDIM scheduler sampling the training schedule ``schedule`` (keys of :data:`SCHEDULE_KEYS`).

    As in Stable Diffusion v2: no sample clipping, ``set_alpha_to_one=False``, ``steps_offset=1``;
    ``zero_snr`` rescales the betas to zero terminal SNR (Marigold v1-1, with trailing spacing).
    """
    from diffusers import DDIMScheduler

    config = {k: schedule[k] for k in SCHEDULE_KEYS if schedule.get(k) is not None}
    config.setdefault("prediction_type", "v_prediction")
    return DDIMScheduler(**config, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                         timestep_spacing=timestep_spacing, rescale_betas_zero_snr=zero_snr)


def training_scheduler(schedule: dict, timestep_spacing: str = "leading", zero_snr: bool = False):
    """The DDPM scheduler of training (``add_noise``, ``get_velocity``) for the same schedule."""
    from diffusers import DDPMScheduler

    config = {k: schedule[k] for k in SCHEDULE_KEYS if schedule.get(k) is not None}
    config.setdefault("prediction_type", "v_prediction")
    return DDPMScheduler(**config, clip_sample=False, timestep_spacing=timestep_spacing,
                         rescale_betas_zero_snr=zero_snr)


def build_pipeline(unet, vae, text_encoder, tokenizer, scheduler, default_denoising_steps: int = 4,
                   default_processing_resolution: int = 768):
    """An in-memory ``MarigoldDepthPipeline`` from components, with Marigold's pipeline config."""
    from diffusers import MarigoldDepthPipeline

    return MarigoldDepthPipeline(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                                 tokenizer=tokenizer, prediction_type="depth", scale_invariant=True,
                                 shift_invariant=True, default_denoising_steps=default_denoising_steps,
                                 default_processing_resolution=default_processing_resolution)


def export_pipeline(out_dir: str | os.PathLike, unet, vae, text_encoder, tokenizer, schedule: dict,
                    timestep_spacing: str = "leading", zero_snr: bool = False,
                    default_denoising_steps: int = 4, default_processing_resolution: int = 768,
                    dtype: str = "fp32") -> Path:
    """Write the pipeline to ``out_dir`` (safetensors; ``dtype="fp16"`` halves the file size).

    The modules are saved as they are, on CPU; the caller's modules are not modified.
    """
    import copy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to = dict(device="cpu", dtype=torch.float16 if dtype == "fp16" else None)
    unet, vae, text_encoder = (copy.deepcopy(m).to(**{k: v for k, v in to.items() if v is not None})
                               for m in (unet, vae, text_encoder))
    pipe = build_pipeline(unet, vae, text_encoder, tokenizer,
                          inference_scheduler(schedule, timestep_spacing, zero_snr),
                          default_denoising_steps, default_processing_resolution)
    pipe.save_pretrained(str(out), safe_serialization=True)
    return out


__all__ = ["SCHEDULE_KEYS", "inference_scheduler", "training_scheduler", "build_pipeline", "export_pipeline"]
