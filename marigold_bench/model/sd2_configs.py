"""Stable Diffusion v2's component configurations, as data (no weights).

These are the shapes of ``stabilityai/stable-diffusion-2`` (the 768-px v-prediction model that
Marigold fine-tunes), written out so that benchmarks can build full-size, randomly initialised
components offline: the speed and memory of a random SD-v2-size model are those of the real one.
The UNet here already has Marigold's 8 input channels.
"""

from __future__ import annotations

import torch

SD2_UNET_CONFIG = dict(
    sample_size=96,
    in_channels=8,                       # SD-v2: 4; Marigold stacks image and depth latents
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    only_cross_attention=False,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20),   # diffusers' legacy name: the number of heads (64-wide)
    use_linear_projection=True,
    dual_cross_attention=False,
    upcast_attention=False,
)

SD2_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=768,
    scaling_factor=0.18215,
)

# OpenCLIP ViT-H/14 text tower as transformers' CLIPTextModel (penultimate layer: 23 layers).
SD2_TEXT_ENCODER_CONFIG = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    projection_dim=512,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

SD2_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="v_prediction",
    timestep_spacing="leading",
)


def build_sd2_size_pipeline(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                            seed: int = 0, **pipeline_kwargs):
    """A `diffusers.MarigoldDepthPipeline` with SD-v2-size random components (benchmarks only).

    The tokenizer is the tiny byte-level one (SD-v2's vocabulary is not bundled); the text encoder
    has SD-v2's size with a vocabulary to match it. Only the empty prompt is ever encoded, so this
    changes nothing that matters for speed. Modules are created directly on ``device``.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .tokenizer import tiny_tokenizer

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    text_config = CLIPTextConfig(**{**SD2_TEXT_ENCODER_CONFIG, "vocab_size": vocab, "bos_token_id": vocab - 2,
                                    "eos_token_id": vocab - 1, "pad_token_id": vocab - 1})
    with torch.device(device):
        modules = [UNet2DConditionModel(**SD2_UNET_CONFIG), AutoencoderKL(**SD2_VAE_CONFIG), CLIPTextModel(text_config)]
    if dtype != torch.float32:   # diffusers warns on every cast, so cast only when asked to
        modules = [m.to(dtype) for m in modules]
    unet, vae, text_encoder = modules
    kwargs = dict(prediction_type="depth", scale_invariant=True, shift_invariant=True,
                  default_denoising_steps=1, default_processing_resolution=768)
    kwargs.update(pipeline_kwargs)
    return MarigoldDepthPipeline(unet=unet, vae=vae, scheduler=DDIMScheduler(**SD2_SCHEDULER_CONFIG),
                                 text_encoder=text_encoder, tokenizer=tokenizer, **kwargs)


__all__ = ["SD2_UNET_CONFIG", "SD2_VAE_CONFIG", "SD2_TEXT_ENCODER_CONFIG", "SD2_SCHEDULER_CONFIG",
           "build_sd2_size_pipeline"]
