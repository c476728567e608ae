"""Tiny stand-ins for Stable Diffusion v2's components.

They are built from the same diffusers/transformers classes as SD-v2 (UNet2DConditionModel with
linear-projection cross-attention, AutoencoderKL, CLIPTextModel, DDIMScheduler with
v-prediction), only much smaller, so that every code path of the suite -- conversion, training,
inference, export -- runs on a laptop CPU in seconds. No weights are downloaded.
"""

from __future__ import annotations

import torch

from marigold_bench.model.sd2_configs import SD2_SCHEDULER_CONFIG
from marigold_bench.model.tokenizer import tiny_tokenizer

#: Text-embedding width of the tiny text encoder (SD-v2 uses 1024).
TINY_TEXT_DIM = 32


def tiny_unet_config(in_channels: int = 8) -> dict:
    """UNet2DConditionModel config shaped like SD-v2 (v-prediction, linear projection), tiny."""
    return dict(
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY_TEXT_DIM,
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        norm_num_groups=16,
    )


def tiny_vae_config() -> dict:
    """AutoencoderKL config with SD's structure (4 latent channels), downsampling by 4."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
        scaling_factor=0.18215,
    )


def tiny_scheduler_config(timestep_spacing: str = "leading", zero_snr: bool = False) -> dict:
    """SD-v2's own DDIM/DDPM schedule (scaled-linear betas 0.00085..0.012, 1000 steps, v-prediction):
    the tiny model differs from SD-v2 in size, not in its diffusion process."""
    return {**SD2_SCHEDULER_CONFIG, "timestep_spacing": timestep_spacing, "rescale_betas_zero_snr": zero_snr}


def tiny_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def build_tiny_components(seed: int = 0, in_channels: int = 8, timestep_spacing: str = "leading",
                          zero_snr: bool = False) -> dict:
    """Random-initialised tiny components, keyed as in a MarigoldDepthPipeline.

    ``in_channels=4`` gives an SD-v2-like UNet (before Marigold's conv_in expansion).
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    return dict(
        unet=UNet2DConditionModel(**tiny_unet_config(in_channels)),
        vae=AutoencoderKL(**tiny_vae_config()),
        text_encoder=tiny_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        scheduler=DDIMScheduler(**tiny_scheduler_config(timestep_spacing, zero_snr)),
    )


def build_tiny_pipeline(seed: int = 0, timestep_spacing: str = "leading", **pipeline_kwargs):
    """A random-initialised tiny ``diffusers.MarigoldDepthPipeline`` (8-channel UNet)."""
    from diffusers import MarigoldDepthPipeline

    kwargs = dict(prediction_type="depth", scale_invariant=True, shift_invariant=True,
                  default_denoising_steps=1, default_processing_resolution=0)
    kwargs.update(pipeline_kwargs)
    return MarigoldDepthPipeline(**build_tiny_components(seed, 8, timestep_spacing), **kwargs)
