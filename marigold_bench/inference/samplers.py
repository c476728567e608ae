"""The denoising loop of a Marigold checkpoint: one object per scheduler kind.

`DDIMSampler` is the Marigold recipe (and the ``e2e-ft`` recipe's single step at t = T);
`LCMSampler` runs a consistency-distilled checkpoint (marigold-depth-lcm) with its own
``LCMScheduler``, drawing between-step noise from each member's generator. The adapter calls
`denoise` and records `name`, `timesteps`, `timestep_spacing`; it never asks which it has.
`make_sampler` picks one from the checkpoint's scheduler.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from ..errors import InferenceSettingsError

TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")

#: ``model(latent, t) -> model output`` for one batch (the UNet with the image latent bound)
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DDIMSampler:
    """DDIM with the checkpoint's timestep spacing unless another is asked for (warned about)."""

    name = "DDIMScheduler"
    #: whether `denoise` draws noise between steps (then it needs each row's generator)
    draws_noise = False

    def __init__(self, scheduler, steps: int, timestep_spacing: str | None, device, stacklevel: int = 2):
        from diffusers import DDIMScheduler

        self.checkpoint_spacing = scheduler.config.get("timestep_spacing", "leading")
        if timestep_spacing is None:
            timestep_spacing = self.checkpoint_spacing
        elif timestep_spacing not in TIMESTEP_SPACINGS:
            raise InferenceSettingsError(f"timestep spacing must be one of {', '.join(TIMESTEP_SPACINGS)}, "
                                         f"got {timestep_spacing!r}")
        elif timestep_spacing != self.checkpoint_spacing:
            warnings.warn(f"timestep spacing {timestep_spacing!r} differs from the checkpoint's scheduler config "
                          f"({self.checkpoint_spacing!r}); results will differ from the model's defaults",
                          stacklevel=stacklevel)
        self.timestep_spacing = timestep_spacing
        self.steps = int(steps)
        # One scheduler for every batch: DDIM's step() keeps no per-run state, so the timesteps
        # are set once here instead of once per batch as in the pipeline.
        self.scheduler = DDIMScheduler.from_config(scheduler.config, timestep_spacing=timestep_spacing)
        self.scheduler.set_timesteps(self.steps, device=device)
        self.device = device
        self.timesteps = [int(t) for t in self.scheduler.timesteps]

    def _restart(self) -> None:
        """Called before each batch; DDIM keeps no state between batches."""

    def _step_kwargs(self, generators) -> dict:
        return {}

    def denoise(self, model: ModelFn, latent: torch.Tensor,
                generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """The scheduler's loop from the starting ``latent``; ``generators`` (one per row) draw
        any between-step noise (see `draws_noise`)."""
        self._restart()
        kwargs = self._step_kwargs(generators)
        for t in self.scheduler.timesteps:
            latent = self.scheduler.step(model(latent, t), t, latent, **kwargs).prev_sample
        return latent


class LCMSampler(DDIMSampler):
    """A latent consistency model's own ``LCMScheduler``: it places its own timesteps (no
    spacing) and draws fresh noise between steps, continuing each member's generator as the
    diffusers pipeline continues the generator it drew the latents from."""

    name = "LCMScheduler"
    draws_noise = True

    def __init__(self, scheduler, steps: int, timestep_spacing: str | None, device, stacklevel: int = 2):
        from diffusers import LCMScheduler

        if timestep_spacing is not None:
            raise InferenceSettingsError("this checkpoint runs an LCMScheduler, which places its own timesteps; "
                                         "--timestep-spacing cannot apply to it")
        self.checkpoint_spacing = self.timestep_spacing = None
        self.steps = int(steps)
        self.device = device
        self.scheduler = LCMScheduler.from_config(scheduler.config)
        try:
            self.scheduler.set_timesteps(self.steps, device=device)
        except ValueError as exc:
            raise InferenceSettingsError(f"steps {self.steps} for an LCM checkpoint: {exc}") from None
        self.timesteps = [int(t) for t in self.scheduler.timesteps]

    def _restart(self) -> None:
        # LCM's step() counts its steps: restart the count for every batch, as the pipeline does
        self.scheduler.set_timesteps(self.steps, device=self.device)

    def _step_kwargs(self, generators) -> dict:
        return {"generator": generators}


def make_sampler(scheduler, steps: int, timestep_spacing: str | None, device, stacklevel: int = 4) -> DDIMSampler:
    """The sampler a checkpoint's ``scheduler`` calls for: a consistency-distilled checkpoint
    (an ``LCMScheduler``) keeps it; every other one runs DDIM, as the Marigold recipe does.

    Raises:
        InferenceSettingsError: a spacing for an LCM checkpoint, an unknown spacing, or steps the
        LCM schedule cannot place.
    """
    from diffusers import LCMScheduler

    kind = LCMSampler if isinstance(scheduler, LCMScheduler) else DDIMSampler
    return kind(scheduler, steps, timestep_spacing, device, stacklevel=stacklevel + 1)


__all__ = ["DDIMSampler", "LCMSampler", "make_sampler", "TIMESTEP_SPACINGS"]
