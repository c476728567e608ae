"""Batched Marigold inference: the recipe of `diffusers.MarigoldDepthPipeline`, run for many images.

Per image: map to [-1, 1], resize the longer side to the processing resolution, pad to a multiple
of the VAE factor, encode once (posterior mode x scaling factor). Per ensemble member: start from
a latent seeded by (seed, sample id, member), run DDIM conditioned on the image latent and the
empty-prompt embedding, decode, average the three channels, clip, map to [0, 1] and unpad.
With ``padding="none"`` the geometry is the official pipeline's instead (no padding, the decoded
map stretched back). A checkpoint whose scheduler is an ``LCMScheduler`` (marigold-depth-lcm)
runs LCM instead of DDIM, its between-step noise drawn from each member's own generator; the
``e2e-ft`` recipe (`recipes`) runs one DDIM step at t = T from zeros. The two choices are two
objects the predictor holds and never branches on: its geometry (`geometry.PaddedGeometry`,
`geometry.StretchGeometry`) and its sampler (`samplers.DDIMSampler`, `samplers.LCMSampler`).

What differs from calling the pipeline image by image:

* members of different images share UNet batches (grouped by latent size), and each image is
  encoded once whatever its number of members;
* a member's starting noise depends only on (seed, sample id, member index), so member k is the
  same in an N=3 and an N=10 run, and an ablation over N can merge subsets of one prediction;
* `predict` returns the raw members, and `merge` ensembles them, so the run loop can cache
  members and re-merge without touching the model;
* the empty-prompt embedding is computed once at load time and the text encoder is dropped;
* NaN/inf outputs (e.g. fp16 overflow) raise `PredictionError` naming the samples.

With fp32 weights and the same starting latents the members equal the pipeline's to float
round-off (tests check 1e-4).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import InferenceSettingsError, PredictionError
from ..output_spaces import DEPTH_AFFINE, DISPARITY_AFFINE
from . import images as imgs
from .devices import PRECISIONS, check_precision, resolve_device, resolve_placement
from .ensemble import ensemble_depth, resolve_ensembling
from .geometry import is_eight_bit, make_geometry
from .samplers import TIMESTEP_SPACINGS, make_sampler
from .seeding import member_generator

#: Starting-latent kinds. ``annealed`` is the multi-resolution pyramid with the strength it has
#: at the first timestep during annealed training (0.9 * t / 1000).
NOISE_KINDS = ("gaussian", "multires", "annealed", "zeros")

#: Used when a checkpoint's model_index.json has no defaults (checkpoints from the original
#: Marigold code): the values diffusers' port of marigold-depth-v1-0 declares.
FALLBACK_STEPS = 10
FALLBACK_PROCESSING_RES = 768

#: Multi-resolution noise strength, as in training (``noise_strength`` of configs/marigold-sd2.yaml).
MULTIRES_STRENGTH = 0.9

# Auto batch size: rough peak memory per sample, per latent pixel (UNet) and per output pixel
# (VAE decoder), in bytes at 2 bytes per element, for SD-v2 with SDPA attention. Estimates, kept
# generous; a CUDA out-of-memory error under "auto" halves the batch and retries.
_UNET_BYTES_PER_LATENT_PX = 96 * 1024
_VAE_BYTES_PER_PX = 8 * 1024
_AUTO_MAX_BATCH = 32
_AUTO_CPU_BATCH = 4


def check_settings(*, steps=None, timestep_spacing=None, noise="gaussian", ensemble=1, processing_res=None,
                   batch_size=0, precision="fp32", device=None, ensembling=None, padding=None) -> None:
    """Reject invalid inference settings before any weights are loaded.

    Raises:
        InferenceSettingsError: naming the setting and the accepted values.
    """
    check_precision(precision)
    if noise not in NOISE_KINDS:
        raise InferenceSettingsError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {noise!r}")
    if int(ensemble) < 1:
        raise InferenceSettingsError(f"ensemble size must be >= 1, got {ensemble}")
    if int(batch_size) < 0:
        raise InferenceSettingsError(f"batch size must be >= 0 (0 = auto), got {batch_size}")
    if steps is not None and int(steps) < 1:
        raise InferenceSettingsError(f"steps must be >= 1, got {steps}")
    if processing_res is not None and int(processing_res) < 0:
        raise InferenceSettingsError(f"processing resolution must be >= 0 (0 = native), got {processing_res}")
    if timestep_spacing is not None and timestep_spacing not in TIMESTEP_SPACINGS:
        raise InferenceSettingsError(f"timestep spacing must be one of {', '.join(TIMESTEP_SPACINGS)}, "
                                     f"got {timestep_spacing!r}")
    if device is not None:
        resolve_device(device)
    if ensembling is not None:
        check_ensembling(ensembling)
    if padding is not None and padding not in imgs.PADDING_MODES:
        raise InferenceSettingsError(f"padding must be one of {', '.join(imgs.PADDING_MODES)}, got {padding!r}")


def check_ensembling(spec) -> dict:
    """`resolve_ensembling` with its errors as `InferenceSettingsError`."""
    try:
        return resolve_ensembling(spec)
    except (TypeError, ValueError) as exc:
        raise InferenceSettingsError(f"ensembling: {exc}") from exc


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class MarigoldPredictor:
    """Runs a Marigold depth checkpoint on batches of images and ensembles the members.

    Build one with `MarigoldPredictor.from_pretrained` (a checkpoint folder or cached hub id) or
    `MarigoldPredictor.from_pipeline` (an in-memory `diffusers.MarigoldDepthPipeline`).

    Example:
        ```py
        >>> predictor = MarigoldPredictor.from_pretrained("prs-eth/marigold-depth-v1-1", ensemble=10)
        >>> (members,) = predictor.predict([("img0", rgb, list(range(10)))])
        >>> depth, uncertainty = predictor.merge(members, rgb.shape[:2])
        ```
    """

    def __init__(self, *, unet, vae, scheduler, text_encoder, tokenizer, model: str, model_path: str | None,
                 model_source: str, pipeline_config: dict, steps: int | None = None,
                 timestep_spacing: str | None = None, noise: str = "gaussian", ensemble: int = 1,
                 processing_res: int | None = None, batch_size: int = 0, precision: str = "fp32",
                 device: str | torch.device = "auto", seed: int = 1234,
                 ensembling: str | dict | None = "diffusers", compile: bool = False,
                 tiny_vae: str | None = None, weights_sha256: str | None = None, padding: str = imgs.PADDING_MODE,
                 recipe: str = "marigold"):
        check_settings(steps=steps, timestep_spacing=timestep_spacing, noise=noise, ensemble=ensemble,
                       processing_res=processing_res, batch_size=batch_size, precision=precision,
                       padding=padding)
        self.ensembling = self.resolve_ensembling(ensembling)

        self.device, self.dtype = resolve_placement(device, precision)
        self.precision = precision
        self.model = model
        self.model_path = model_path
        self.model_source = model_source
        self.weights_sha256 = weights_sha256
        self.pipeline_config = dict(pipeline_config)
        self.prediction_type = pipeline_config.get("prediction_type") or self.default_prediction_type
        #: what the numbers mean (the Predictor interface)
        self.output_space = self._output_space(self.prediction_type)

        if steps is None:
            steps = pipeline_config.get("default_denoising_steps")
            if steps is None:
                warnings.warn(f"{model}: no default_denoising_steps in the checkpoint; using {FALLBACK_STEPS} "
                              "(pass --steps to choose)", stacklevel=3)
                steps = FALLBACK_STEPS
        if processing_res is None:
            processing_res = pipeline_config.get("default_processing_resolution")
            if processing_res is None:
                warnings.warn(f"{model}: no default_processing_resolution in the checkpoint; using "
                              f"{FALLBACK_PROCESSING_RES} (pass --processing-res to choose)", stacklevel=3)
                processing_res = FALLBACK_PROCESSING_RES
        self.steps, self.processing_res = int(steps), int(processing_res)
        if self.processing_res < 0:
            raise InferenceSettingsError(f"processing resolution must be >= 0 (0 = native), got {processing_res}")
        num_train = scheduler.config.num_train_timesteps
        if not 1 <= self.steps <= num_train:
            raise InferenceSettingsError(f"steps must be between 1 and {num_train}, got {steps}")

        #: "marigold" or "e2e-ft" (`recipes`): recorded, its settings are resolved by the callers
        self.recipe = recipe
        #: the denoising loop (`samplers`): DDIM, or an LCM checkpoint's own scheduler
        self.sampler = make_sampler(scheduler, self.steps, timestep_spacing, self.device)

        self.noise = noise
        self.ensemble = int(ensemble)
        self.batch_size = int(batch_size)
        self.seed = int(seed)

        # NCHW on every device: on an H200 in bf16, channels-last made 1-step inference at 768x768
        # 25 % slower, because GroupNorm (113 calls per image in the VAE and UNet) copies
        # channels-last tensors to NCHW and back (benchmarks/README.md). The attribute stays so
        # that benchmarks/gpu_profile.py can measure the other layout.
        self.memory_format = torch.contiguous_format
        self.unet, self.vae = (self._place(unet), self._place(vae))
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        # Refused, not rounded: below one pixel at the UNet's deepest level the model sees no
        # image (7 ran at one latent pixel without a word), and a rounded value would silently
        # differ from the setting the run records.
        smallest = self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if 0 < self.processing_res < smallest:
            raise InferenceSettingsError(
                f"processing resolution {self.processing_res} is below the smallest this checkpoint can use, "
                f"{smallest} (its VAE's factor {self.vae_scale_factor} times its UNet's "
                f"{smallest // self.vae_scale_factor}); give {smallest} or more, or 0 for the native resolution")
        self.latent_channels = self.vae.config.latent_channels
        self.scaling_factor = self.vae.config.scaling_factor
        #: how images reach the VAE and predictions come back (`geometry`): padded or stretched
        self.geometry = make_geometry(padding, self.processing_res, self.vae_scale_factor)
        self.empty_text_embedding = self._encode_empty_prompt(text_encoder, tokenizer)
        self._text_cache: dict[int, torch.Tensor] = {}
        self.tiny_vae = tiny_vae
        self.decoder = self._load_tiny_decoder(tiny_vae) if tiny_vae else None
        # identified by content, like the model: moved, it is the same decoder; retrained, another
        self.tiny_vae_sha256 = None
        if tiny_vae:
            from ..model.load import weights_fingerprint

            self.tiny_vae_sha256 = weights_fingerprint(tiny_vae, components=(".",))
        self.compiled = bool(compile)
        if self.compiled:
            self._compile()
        self._batch_cap = 0      # set after a CUDA out-of-memory error under batch_size "auto"

    #: what a checkpoint without ``prediction_type`` in its model_index.json predicts
    default_prediction_type = "depth"
    #: channels of one member as `predict` returns it (1: an h x w map, stored without the axis)
    member_channels = 1

    @staticmethod
    def resolve_ensembling(spec) -> dict:
        """The full ensembling settings of ``spec`` (`resolve_ensembling`).

        Raises:
            InferenceSettingsError: an unknown preset or setting.
        """
        return check_ensembling(spec)

    @staticmethod
    def _output_space(prediction_type: str) -> str:
        # Marigold's [0, 1] maps are affine-invariant depth, or disparity where the checkpoint says so
        if prediction_type not in ("depth", "disparity"):
            warnings.warn(f"checkpoint declares prediction_type={prediction_type!r}; treating its output as "
                          "affine-invariant depth", stacklevel=4)
        return DISPARITY_AFFINE if prediction_type == "disparity" else DEPTH_AFFINE

    # the sampler's facts, under the names the adapter has always had
    @property
    def scheduler(self):
        """The scheduler the sampler steps (its ``config`` holds ``num_train_timesteps``)."""
        return self.sampler.scheduler

    @property
    def timesteps(self) -> list[int]:
        return self.sampler.timesteps

    @property
    def timestep_spacing(self) -> str | None:
        return self.sampler.timestep_spacing

    @property
    def checkpoint_spacing(self) -> str | None:
        return self.sampler.checkpoint_spacing

    @property
    def padding(self) -> str:
        """``"replicate"`` (diffusers' geometry) or ``"none"`` (the official pipeline's): see `geometry`."""
        return self.geometry.name

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, model: str, *, steps: int | None = None, timestep_spacing: str | None = None,
                        noise: str | None = None, ensemble: int = 1, processing_res: int | None = None,
                        batch_size: int = 0, precision: str = "fp32", device: str = "auto", seed: int = 1234,
                        ensembling: str | dict = "diffusers", compile: bool = False,
                        tiny_vae: str | None = None, padding: str = imgs.PADDING_MODE,
                        recipe: str | None = None) -> "MarigoldPredictor":
        """Load a diffusers-format Marigold checkpoint and resolve every inference setting.

        Args:
            model (`str`): a checkpoint folder, or a hub id present in the local Hugging Face cache.
            steps (`int`, *optional*): DDIM steps; default: the checkpoint's ``default_denoising_steps``.
            timestep_spacing (`str`, *optional*): ``"trailing"`` or ``"leading"``; default: the
                checkpoint scheduler's (a different value is used but warned about).
            noise (`str`, *optional*): starting latent, one of `NOISE_KINDS`; default ``"gaussian"``
                (the ``e2e-ft`` recipe: ``"zeros"``).
            ensemble (`int`, defaults to 1): members per image (N) used by `predict_images`.
            processing_res (`int`, *optional*): longer side fed to the model, 0 = native;
                default: the checkpoint's ``default_processing_resolution``.
            batch_size (`int`, defaults to 0): members per UNet batch; 0 picks one from the free
                device memory. Does not change results beyond float round-off.
            precision (`str`, defaults to `"fp32"`): ``fp32``, ``fp16`` or ``bf16`` weights/activations.
            device (`str`, defaults to `"auto"`): ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
            seed (`int`, defaults to 1234): run seed; member noise is seeded per (seed, sample, member).
            ensembling (`str` or `dict`, defaults to `"diffusers"`): a preset of
                `ENSEMBLING_PRESETS` or a dict of overrides (see `resolve_ensembling`).
            compile (`bool`, defaults to `False`): ``torch.compile`` the UNet and the VAE's encoder
                and decoder (opt-in: the first batch of each shape pays the compilation).
            tiny_vae (`str`, *optional*): folder of a diffusers ``AutoencoderTiny`` that replaces
                the VAE decoder; faster, and it changes the numbers (recorded as ``decoder``).
            padding (`str`, defaults to `"replicate"`): the geometry (`images.PADDING_MODES`):
                ``"replicate"`` pads the resized image to a multiple of the VAE factor by
                repeating its edge, as diffusers; ``"none"`` gives it to the VAE as it is and
                stretches the decoded map back, as the official Marigold pipeline.
            recipe (`str`, *optional*): ``"marigold"`` (default) or ``"e2e-ft"`` (one DDIM step at
                t = T, trailing, from zeros, N = 1; see `recipes`). The scheduler follows the
                checkpoint: an ``LCMScheduler`` checkpoint runs LCM, every other one DDIM.

        Raises:
            CheckpointError: the model cannot be found or is incomplete.
            InferenceSettingsError: a setting is invalid or unavailable here.
        """
        from ..model.load import load_components, weights_fingerprint
        from .recipes import resolve_recipe
        from .registry import resolve_name

        resolved = resolve_recipe(recipe, steps=steps, timestep_spacing=timestep_spacing, noise=noise,
                                  ensemble=ensemble)
        recipe, steps, timestep_spacing, noise, ensemble = (resolved[k] for k in (
            "recipe", "steps", "timestep_spacing", "noise", "ensemble"))
        check_settings(steps=steps, timestep_spacing=timestep_spacing, noise=noise, ensemble=ensemble,
                       processing_res=processing_res, batch_size=batch_size, precision=precision, device=device,
                       padding=padding)
        cls.resolve_ensembling(ensembling)
        # Weights are loaded in the requested dtype straight away: an fp16 run of SD-v2 should
        # not first materialise 3.5 GB of fp32 weights.
        # a registry name (`registry`) loads its hub id; ``model`` records what was asked for
        parts = load_components(resolve_name(model), torch_dtype=PRECISIONS[precision])
        return cls(unet=parts.unet, vae=parts.vae, scheduler=parts.scheduler, text_encoder=parts.text_encoder,
                   tokenizer=parts.tokenizer, model=str(model), model_path=str(parts.path),
                   model_source=parts.source, pipeline_config=parts.pipeline_config, steps=steps,
                   timestep_spacing=timestep_spacing, noise=noise, ensemble=ensemble,
                   processing_res=processing_res, batch_size=batch_size, precision=precision, device=device,
                   seed=seed, ensembling=ensembling, compile=compile, tiny_vae=tiny_vae, padding=padding,
                   weights_sha256=weights_fingerprint(parts.path), recipe=recipe)

    @classmethod
    def from_pipeline(cls, pipeline, *, model: str = "<in-memory pipeline>", **settings) -> "MarigoldPredictor":
        """Wrap the modules of an in-memory `diffusers.MarigoldDepthPipeline` (tests, benchmarks).

        The pipeline's UNet and VAE are moved to the requested device/dtype in place. Keyword
        arguments are those of `from_pretrained`.
        """
        from .recipes import resolve_recipe

        from ..model.load import PIPELINE_CONFIG_KEYS

        config = {k: pipeline.config.get(k) for k in PIPELINE_CONFIG_KEYS}
        keys = ("steps", "timestep_spacing", "noise", "ensemble")
        settings.update(resolve_recipe(settings.pop("recipe", None), **{k: settings.pop(k, None) for k in keys}))
        return cls(unet=pipeline.unet, vae=pipeline.vae, scheduler=pipeline.scheduler,
                   text_encoder=pipeline.text_encoder, tokenizer=pipeline.tokenizer, model=model,
                   model_path=None, model_source="memory", pipeline_config=config, **settings)

    def _place(self, module):
        # Cast only when needed: diffusers warns on every dtype cast, even a no-op one.
        if next(module.parameters()).dtype != self.dtype:
            module = module.to(dtype=self.dtype)
        module = module.to(device=self.device, memory_format=self.memory_format)
        return module.eval().requires_grad_(False)

    def _load_tiny_decoder(self, path: str):
        """A user-supplied tiny autoencoder (diffusers ``AutoencoderTiny``, e.g. TAESD for SD-v2)
        that replaces the VAE decoder: much faster, and it changes the numbers."""
        from diffusers import AutoencoderTiny

        try:
            decoder = AutoencoderTiny.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise InferenceSettingsError(f"cannot load the tiny VAE decoder from {path}: {exc}") from None
        if decoder.config.latent_channels != self.latent_channels:
            raise InferenceSettingsError(f"tiny VAE {path} has {decoder.config.latent_channels} latent channels, "
                                         f"the model {self.latent_channels}")
        warnings.warn("decoding with a tiny VAE: results differ from the checkpoint's own decoder and are "
                      "not comparable with published numbers", stacklevel=4)
        return self._place(decoder)

    def _compile(self) -> None:
        """``torch.compile`` the UNet and both halves of the VAE, in place.

        At 768x768 the VAE decoder costs more than twice the UNet's FLOPs per 1-step image
        (about 5.8 against 2.1 TFLOP; the encoder 2.6), so compiling the UNet alone leaves most
        of the gain behind. Each module is compiled once per input shape; the numbers equal
        eager ones up to float round-off, so the cache treats a compiled run like an eager one.
        Compilation is in place (``nn.Module.compile``): modules shared with a pipeline given
        to `from_pipeline` are compiled there too, as they are already moved and cast there.
        """
        modules = [self.unet, self.vae.encoder, self.vae.decoder]
        if self.decoder is not None:
            modules.append(self.decoder.decoder)
        for module in modules:
            module.compile()

    @torch.inference_mode()
    def _encode_empty_prompt(self, text_encoder, tokenizer) -> torch.Tensor:
        # As the pipeline: tokens of "" without padding (start + end token), on the run's device
        # and dtype. The encoder is not kept: SD-v2's weighs 340M parameters for this one tensor.
        ids = tokenizer("", padding="do_not_pad", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        param = next(text_encoder.parameters())
        moved = param.device != self.device or param.dtype != self.dtype
        encoder = text_encoder.to(device=self.device, dtype=self.dtype) if moved else text_encoder
        embedding = encoder(ids.to(self.device))[0]
        if moved:
            text_encoder.to(device=param.device, dtype=param.dtype)
        return embedding.to(device=self.device, dtype=self.dtype)

    # ------------------------------------------------------------------ settings

    @property
    def settings(self) -> dict[str, Any]:
        """Every resolved inference setting (JSON-serialisable), as a run records it."""
        return {
            "model": self.model,
            "model_path": self.model_path,
            "model_source": self.model_source,
            "weights_sha256": self.weights_sha256,
            "family": "marigold",
            "output_space": self.output_space,
            "prediction_type": self.prediction_type,
            "steps": self.steps,
            "timestep_spacing": self.timestep_spacing,
            "checkpoint_timestep_spacing": self.checkpoint_spacing,
            "timesteps": list(self.timesteps),
            "scheduler": self.sampler.name,
            **({"recipe": self.recipe} if self.recipe != "marigold" else {}),
            "noise": self.noise,
            "ensemble": self.ensemble,
            "processing_res": self.processing_res,
            # the official path rounds the resized 8-bit image back to 8-bit levels, and its
            # output step is antialiased (equal to plain bilinear when enlarging)
            "resample_input": self.geometry.resample_input,
            "resample_output": self.geometry.resample_output,
            "padding": self.padding,
            "vae_scale_factor": self.vae_scale_factor,
            "precision": self.precision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "seed": self.seed,
            "seeding": "per-member sha256(seed, sample_id, member)",
            "ensembling": dict(self.ensembling),
            "batch_size": self.batch_size if self.batch_size > 0 else "auto",
            "decoder": f"tiny:{self.tiny_vae_sha256}" if self.tiny_vae else "vae",
            **({"tiny_vae_path": str(self.tiny_vae)} if self.tiny_vae else {}),
            "compile": self.compiled,
        }

    # ------------------------------------------------------------------ noise

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """Latent height and width for an input image of ``height`` x ``width``."""
        return self.geometry.latent_size(height, width)

    def initial_latents(self, sample_id: str, members: Sequence[int], latent_hw: tuple[int, int]) -> torch.Tensor:
        """The starting latents of ``members`` of ``sample_id``: float32, CPU, M x C x h x w.

        Each member is drawn from its own generator (`member_generator`), so the result for one
        member never depends on which other members are drawn with it.
        """
        return torch.cat([self._member_start(sample_id, k, latent_hw)[0] for k in members]).float()

    def _member_start(self, sample_id: str, k: int, latent_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Generator]:
        """Member ``k``'s starting latent (1 x C x h x w) and its generator after drawing it.

        An LCM scheduler draws fresh noise between steps; it continues this generator's stream,
        as the diffusers pipeline continues the generator it drew the latents from."""
        shape = (1, self.latent_channels, *latent_hw)
        generator = member_generator(self.seed, sample_id, k)
        if self.noise == "zeros":
            return torch.zeros(shape), generator
        if self.noise == "gaussian":
            return torch.randn(shape, generator=generator), generator
        from ..model import noise as noise_lib  # lazily: the training side owns it

        if self.noise == "multires":
            return noise_lib.multi_resolution_noise(shape, generator=generator, strength=MULTIRES_STRENGTH), generator
        return noise_lib.annealed_multi_resolution_noise(
            shape, [self.timesteps[0]], self.scheduler.config.num_train_timesteps,
            generator=generator, strength=MULTIRES_STRENGTH), generator

    # ------------------------------------------------------------------ batch sizes

    def _auto_batch(self, bytes_per_sample: float) -> int:
        if self.batch_size > 0:
            return self.batch_size
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            scale = torch.finfo(self.dtype).bits / 16
            guess = int(max(1, min(_AUTO_MAX_BATCH, 0.5 * free // (bytes_per_sample * scale))))
        else:
            guess = _AUTO_CPU_BATCH
        return min(guess, self._batch_cap) if self._batch_cap else guess

    def _unet_batch(self, latent_hw) -> int:
        return self._auto_batch(_UNET_BYTES_PER_LATENT_PX * latent_hw[0] * latent_hw[1])

    def _vae_batch(self, image_hw) -> int:
        return self._auto_batch(_VAE_BYTES_PER_PX * image_hw[0] * image_hw[1])

    def _text(self, batch: int) -> torch.Tensor:
        if batch not in self._text_cache:
            self._text_cache[batch] = self.empty_text_embedding.expand(batch, -1, -1)
        return self._text_cache[batch]

    # ------------------------------------------------------------------ model calls

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self.memory_format)
        return self.vae.encode(images).latent_dist.mode() * self.scaling_factor

    def _denoise(self, image_latent: torch.Tensor, latent: torch.Tensor,
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """The sampler's loop; ``generators`` (one per row) draw any between-step noise (LCM)."""
        text = self._text(latent.shape[0])

        def model(noisy: torch.Tensor, t) -> torch.Tensor:
            unet_in = torch.cat([image_latent, noisy], dim=1).contiguous(memory_format=self.memory_format)
            return self.unet(unet_in, t, encoder_hidden_states=text, return_dict=False)[0]

        return self.sampler.denoise(model, latent, generators)

    def _decode(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B x 1 x H x W maps in [0, 1], and which of the B are finite (checked before clipping)."""
        decoded = self._decode_raw(latent)
        mean = decoded.mean(dim=1, keepdim=True)
        finite = torch.isfinite(mean).flatten(1).all(dim=1)
        return (mean.clip(-1.0, 1.0) + 1.0) / 2.0, finite

    def _decode_raw(self, latent: torch.Tensor) -> torch.Tensor:
        """The decoder's B x 3 x H x W output for UNet latents (the VAE's, or the tiny one's)."""
        if self.decoder is not None:  # a tiny autoencoder reads the UNet's (scaled) latents as they are
            decoded = self.decoder.decode(latent, return_dict=False)[0]
            if decoded.shape[-1] != latent.shape[-1] * self.vae_scale_factor:
                raise InferenceSettingsError(
                    f"the tiny VAE upsamples by {decoded.shape[-1] // latent.shape[-1]}, the model's VAE by "
                    f"{self.vae_scale_factor}: they do not belong together")
        else:
            decoded = self.vae.decode(latent / self.scaling_factor, return_dict=False)[0]
        return decoded

    def _run_units(self, units, size, jobs, image_latents, prepared, results, failed) -> None:
        """Denoise and decode ``units`` (job, slot, member) of one padded size into ``results``."""
        latent_hw = tuple(image_latents[units[0][0]].shape[-2:])  # what the encoder made of ``size``
        unet_batch = self._unet_batch(latent_hw)
        vae_batch = min(unet_batch, self._vae_batch(size))
        for chunk in _chunks(units, unet_batch):
            image_latent = torch.stack([image_latents[j] for j, _, _ in chunk])
            starts = [self._member_start(jobs[j][0], k, latent_hw) for j, _, k in chunk]
            start = torch.cat([latent for latent, _ in starts]).float()
            # LCM draws between-step noise, continuing each member's generator; DDIM draws none
            latent = self._denoise(image_latent, start.to(device=self.device, dtype=self.dtype),
                                   generators=[g for _, g in starts] if self.sampler.draws_noise else None)
            for first in range(0, len(chunk), vae_batch):
                maps, finite = self._decode(latent[first:first + vae_batch])
                maps, finite = maps.float().cpu(), finite.cpu()
                for (j, slot, _), m, ok in zip(chunk[first:first + vae_batch], maps, finite):
                    if ok:
                        member = self.geometry.restore(m, prepared[j][1])
                        results[j][slot] = (member[0] if self.member_channels == 1 else member).numpy()
                    else:
                        failed.add(j)

    # ------------------------------------------------------------------ public calls

    @torch.inference_mode()
    def predict(self, jobs: Sequence[tuple[str, np.ndarray, Sequence[int]]]) -> list[np.ndarray]:
        """Raw ensemble members for a list of jobs.

        Args:
            jobs: ``(sample_id, image, members)`` per image. ``image`` is uint8 H x W x 3 RGB (other
                layouts and bit depths accepted by `images.to_float_rgb` work too); ``members``
                the member indices wanted, e.g. ``range(10)``, or only the missing ones on resume.

        Returns:
            One float32 array per job, ``len(members) x h x w``, values in [0, 1], at processing
            resolution with the padding removed (with padding ``"none"``: at the size the
            decoder returns, the processing size rounded down to multiples of the VAE factor),
            before ensembling and before resizing back.

        Raises:
            PredictionError: when the model produced NaN/inf for some samples. Its message names
                them; ``error.sample_ids`` lists them and ``error.results`` holds the outputs of
                every job (``None`` for the failed ones), so a caller can keep the rest.
        """
        prepared = []
        for sample_id, image, members in jobs:
            # on a GPU the resize and padding run there too
            tensor = imgs.to_model_tensor(image, name=f"sample {sample_id}",
                                          device=self.device if self.device.type == "cuda" else None)
            prepared.append(self.geometry.prepare(tensor, is_eight_bit(image)))

        # Encode every image once, batching images of the same padded size.
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for j, (padded, _) in enumerate(prepared):
            by_size[tuple(padded.shape[-2:])].append(j)
        image_latents: list[torch.Tensor | None] = [None] * len(jobs)
        for size, job_ids in by_size.items():
            for chunk in _chunks(job_ids, self._vae_batch(size)):
                latents = self._encode(torch.cat([prepared[j][0] for j in chunk]))
                for j, latent in zip(chunk, latents):
                    image_latents[j] = latent

        results: list[np.ndarray | None] = []
        for j, (sample_id, _, members) in enumerate(jobs):
            # what the decoder gives back, restored by the geometry: the processing size, or
            # unpadded the part of it that the latent covers
            h, w = self.geometry.restored_size(tuple(image_latents[j].shape[-2:]), prepared[j][1])
            channels = () if self.member_channels == 1 else (self.member_channels,)
            results.append(np.empty((len(members), *channels, h, w), dtype=np.float32))
        failed: set[int] = set()

        # Then all members of all images of one latent size, in batches.
        for size, job_ids in by_size.items():
            units = [(j, slot, k) for j in job_ids for slot, k in enumerate(jobs[j][2])]
            while True:
                try:
                    self._run_units(units, size, jobs, image_latents, prepared, results, failed)
                    break
                except torch.cuda.OutOfMemoryError:
                    # "auto" guessed too big for this size: halve it and redo the size group.
                    # Results do not depend on the batch size, so nothing else changes.
                    unet_batch = self._unet_batch(self.geometry.latent_of(size))
                    if self.batch_size > 0 or unet_batch <= 1:
                        raise
                    torch.cuda.empty_cache()
                    self._batch_cap = max(1, unet_batch // 2)

        if failed:
            names = sorted({str(jobs[j][0]) for j in failed})
            error = PredictionError(
                f"the model produced NaN/inf for sample(s) {', '.join(names)} "
                f"(precision {self.precision}; fp16 overflows are a common cause: try --precision bf16 or fp32)")
            error.sample_ids = names
            error.results = [None if j in failed else r for j, r in enumerate(results)]
            raise error
        return results

    def merge(self, members: np.ndarray, out_shape: tuple[int, int] | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Ensemble members of one image and resize the result to ``out_shape``.

        Args:
            members: ``N x h x w`` raw members from `predict` (any subset of an image's members).
            out_shape: ``(H, W)`` of the result, usually the input image's (or ground truth's) size;
                `None`: no resize, the result stays at the members' resolution (resize it later
                as ``settings["resample_output"]`` says).

        Returns:
            ``(depth, uncertainty)``, float32 ``H x W``. For N > 1, ``depth`` is the
            `ensemble_depth` result (spanning [0, 1]) with this predictor's ensembling settings
            and ``uncertainty`` its spread; for N = 1 the member itself and `None`, as the pipeline.
        """
        members = np.asarray(members, dtype=np.float32)
        if members.ndim == 2:
            members = members[None]
        if members.ndim != 3 or members.shape[0] < 1:
            raise PredictionError(f"merge expects N x h x w members, got shape {members.shape}")
        if not np.isfinite(members).all():
            raise PredictionError("ensemble members contain NaN/inf")
        # On a GPU the ensembling and the resize run there: on the host they cost 0.3-0.6 s per
        # image at N=10 (H100 host, 480x640 to 768x768), and ETH3D's 24 M-pixel resize a quarter
        # of a second. Either place gives the same numbers up to float32 round-off.
        on_gpu = self.device.type == "cuda"
        stack = torch.from_numpy(members).to(self.device) if on_gpu else members
        if members.shape[0] > 1:
            settings = {k: v for k, v in self.ensembling.items() if k != "preset"}
            depth, uncertainty = ensemble_depth(stack, output_uncertainty=True, **settings)
        else:
            depth, uncertainty = stack[0], None
        size = tuple(int(s) for s in (out_shape if out_shape is not None else members.shape[-2:]))
        # the geometry's output step (the official one is antialiased: the same numbers when enlarging)
        depth = self._resize(depth, size)
        if uncertainty is not None:
            uncertainty = self._resize(uncertainty, size)
        return depth, uncertainty

    def _resize(self, prediction, size: tuple[int, int]) -> np.ndarray:
        """An h x w map (numpy, or a tensor on any device) resized to ``size`` by the geometry
        where it lies, returned as a float32 numpy array."""
        if not torch.is_tensor(prediction):
            prediction = torch.from_numpy(np.ascontiguousarray(prediction, dtype=np.float32))
        return self.geometry.resize(prediction.float()[None, None], size)[0, 0].cpu().numpy()

    def predict_images(self, items: Sequence[tuple[str, Any]], members: Sequence[int] | None = None
                       ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """`predict` then `merge` at each image's own size; ``items`` are ``(sample_id, image)``."""
        members = list(range(self.ensemble)) if members is None else list(members)
        raw = self.predict([(sid, image, members) for sid, image in items])
        return [self.merge(r, np.asarray(image).shape[:2]) for (_, image), r in zip(items, raw)]

    def __repr__(self) -> str:
        s = self.settings
        return (f"MarigoldPredictor(model={s['model']!r}, steps={s['steps']}, spacing={s['timestep_spacing']}, "
                f"N={s['ensemble']}, res={s['processing_res']}, {s['precision']} on {s['device']})")


__all__ = ["MarigoldPredictor", "InferenceSettingsError", "check_settings", "NOISE_KINDS", "PRECISIONS", "resolve_device",
           "TIMESTEP_SPACINGS"]
