"""Model surgery: a Stable Diffusion v2 checkpoint becomes Marigold's starting point.

* :func:`expand_conv_in` widens the UNet's first convolution from 4 to 8 input channels
  (image latent + noisy depth latent), copying the weight to both halves and halving it, so
  that the widened UNet fed ``cat([x, x])`` computes what the original computed on ``x``.
* :func:`load_sd2_components` opens a diffusers-format SD-v2 folder (or a hub id that is in
  the local Hugging Face cache; nothing is downloaded) and checks that it is SD-v2-like.
* :func:`prepare_marigold_components` freezes the VAE and the text encoder and computes the
  empty-prompt embedding once.
* :func:`convert_sd2_checkpoint` does all of it and writes the untrained Marigold pipeline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from marigold_bench.errors import CheckpointError

from .hub import download_command

#: Tokenizer padding of the empty prompt. "do_not_pad" gives [1, 2, D] (BOS, EOS) as the official
#: trainer and diffusers' MarigoldDepthPipeline use; "max_length" pads to 77 tokens.
PADDING_CHOICES = ("do_not_pad", "max_length")


def expand_conv_in(unet):
    """Widen ``unet.conv_in`` from 4 to 8 input channels, in place; returns ``unet``.

    The weight is repeated along the input-channel axis and multiplied by 0.5; the bias is
    kept, and ``unet.config.in_channels`` is set to 8 with ``register_to_config``.
    """
    conv = unet.conv_in
    if conv.in_channels != 4 or unet.config.in_channels != 4:
        raise CheckpointError(
            f"expand_conv_in expects an SD-v2 UNet with 4 input channels, got conv_in with "
            f"{conv.in_channels} (config.in_channels={unet.config.in_channels}); a UNet that is "
            "already 8-channel (a Marigold checkpoint) needs no conversion")
    wide = torch.nn.Conv2d(8, conv.out_channels, kernel_size=conv.kernel_size, stride=conv.stride,
                           padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                           bias=conv.bias is not None, padding_mode=conv.padding_mode)
    wide = wide.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(conv.weight.repeat(1, 2, 1, 1) * 0.5)
        if conv.bias is not None:
            wide.bias.copy_(conv.bias)
    wide.weight.requires_grad_(conv.weight.requires_grad)
    if conv.bias is not None:
        wide.bias.requires_grad_(conv.bias.requires_grad)
    unet.conv_in = wide
    unet.register_to_config(in_channels=8)
    return unet


def _resolve_source(path_or_hub_id: str | os.PathLike) -> str:
    """A local folder, or the snapshot folder of a hub id in the local cache."""
    source = str(path_or_hub_id)
    if os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, "unet", "config.json")):
            raise CheckpointError(
                f"{source} is not a diffusers-format Stable Diffusion folder: expected "
                "unet/, vae/, text_encoder/, tokenizer/ and scheduler/ sub-folders "
                "(unet/config.json is missing)")
        return source
    if os.path.exists(source) or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise CheckpointError(f"base checkpoint {source!r} not found: give a diffusers-format "
                              "folder or a hub id such as stabilityai/stable-diffusion-2")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(source, local_files_only=True)
    except Exception as exc:  # not in the cache (offline machines end here)
        raise CheckpointError(
            f"hub model {source!r} is not in the local Hugging Face cache and nothing is "
            f"downloaded here ({type(exc).__name__}). On a machine with internet run "
            f"`{download_command(source)}` (or point the config at a local "
            "diffusers-format folder), then try again") from None


def load_sd2_components(path_or_hub_id, expected_prediction_type: str = "v_prediction",
                        allow_prediction_type_mismatch: bool = False) -> dict:
    """Open an SD-v2-like checkpoint: unet, vae, text_encoder, tokenizer and scheduler config.

    Raises :class:`CheckpointError` when it is absent or not SD-v2-like: the UNet must have 4
    input and 4 output channels, the VAE 4 latent channels, the UNet's cross-attention width must
    match the text encoder, and the scheduler's prediction type must be
    ``expected_prediction_type`` (SD-v2 768 px is v-prediction) unless
    ``allow_prediction_type_mismatch`` is set.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    source = _resolve_source(path_or_hub_id)
    try:
        components = dict(
            unet=UNet2DConditionModel.from_pretrained(source, subfolder="unet"),
            vae=AutoencoderKL.from_pretrained(source, subfolder="vae"),
            text_encoder=CLIPTextModel.from_pretrained(source, subfolder="text_encoder"),
            tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer"),
        )
        with open(os.path.join(source, "scheduler", "scheduler_config.json"), encoding="utf-8") as f:
            components["scheduler_config"] = json.load(f)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read the checkpoint at {source}: {exc}") from None
    check_sd2_like(components, expected_prediction_type, allow_prediction_type_mismatch)
    return components


def check_sd2_like(components: dict, expected_prediction_type: str = "v_prediction",
                   allow_prediction_type_mismatch: bool = False) -> None:
    """Raise :class:`CheckpointError` naming every way ``components`` differ from SD-v2's shape."""
    unet, vae, text_encoder = components["unet"], components["vae"], components["text_encoder"]
    problems = []
    if unet.config.in_channels != 4:
        problems.append(f"UNet has {unet.config.in_channels} input channels (SD-v2: 4)")
    if unet.config.out_channels != 4:
        problems.append(f"UNet has {unet.config.out_channels} output channels (SD-v2: 4)")
    if vae.config.latent_channels != 4:
        problems.append(f"VAE has {vae.config.latent_channels} latent channels (SD-v2: 4)")
    if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
        problems.append(f"UNet cross-attention width {unet.config.cross_attention_dim} does not match "
                        f"the text encoder's {text_encoder.config.hidden_size}")
    prediction = components.get("scheduler_config", {}).get("prediction_type", "epsilon")
    if prediction != expected_prediction_type and not allow_prediction_type_mismatch:
        problems.append(f"scheduler predicts {prediction!r} but {expected_prediction_type!r} is configured "
                        "(set allow_prediction_type_mismatch to train it anyway)")
    if problems:
        raise CheckpointError("not an SD-v2-like checkpoint: " + "; ".join(problems))


@torch.no_grad()
def encode_empty_prompt(tokenizer, text_encoder, padding: str = "do_not_pad") -> torch.Tensor:
    """Embedding of the empty prompt, [1, L, D] (L = 2 without padding, 77 with ``max_length``)."""
    if padding not in PADDING_CHOICES:
        raise ValueError(f"padding must be one of {PADDING_CHOICES}, got {padding!r}")
    ids = tokenizer("", padding=padding, max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


def freeze(module):
    """Put ``module`` in eval mode with gradients off; returns it."""
    module.requires_grad_(False)
    return module.eval()


def prepare_marigold_components(components: dict, padding: str = "do_not_pad") -> dict:
    """Expand the UNet's conv_in, freeze VAE and text encoder, add ``empty_text_embedding``."""
    if components["unet"].config.in_channels == 4:
        expand_conv_in(components["unet"])
    freeze(components["vae"])
    freeze(components["text_encoder"])
    components["empty_text_embedding"] = encode_empty_prompt(components["tokenizer"],
                                                             components["text_encoder"], padding)
    components["empty_prompt_padding"] = padding
    return components


def convert_sd2_checkpoint(path_or_hub_id, out_dir, padding: str = "do_not_pad",
                           expected_prediction_type: str = "v_prediction",
                           allow_prediction_type_mismatch: bool = False,
                           timestep_spacing: str = "leading", zero_snr: bool = False) -> Path:
    """Write the untrained Marigold starting point of an SD-v2 checkpoint to ``out_dir``.

    ``out_dir`` receives a ``MarigoldDepthPipeline`` in diffusers format (8-channel UNet, frozen
    VAE and text encoder, tokenizer, DDIM scheduler with the checkpoint's schedule), the
    empty-prompt embedding (``empty_text_embedding.safetensors``) and ``conversion.json``
    recording the source and the padding choice. Returns ``out_dir``.
    """
    from safetensors.torch import save_file

    from marigold_bench.model.pipeline import export_pipeline

    components = prepare_marigold_components(
        load_sd2_components(path_or_hub_id, expected_prediction_type, allow_prediction_type_mismatch),
        padding)
    out = Path(out_dir)
    export_pipeline(out, components["unet"], components["vae"], components["text_encoder"],
                    components["tokenizer"], components["scheduler_config"],
                    timestep_spacing=timestep_spacing, zero_snr=zero_snr)
    save_file({"empty_text_embedding": components["empty_text_embedding"].contiguous()},
              str(out / "empty_text_embedding.safetensors"))
    record = dict(source=str(path_or_hub_id), empty_prompt_padding=padding,
                  empty_text_embedding_shape=list(components["empty_text_embedding"].shape),
                  conv_in="4 -> 8 channels, weight repeated and x0.5, bias kept",
                  prediction_type=components["scheduler_config"].get("prediction_type"))
    (out / "conversion.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["CheckpointError", "PADDING_CHOICES", "expand_conv_in", "load_sd2_components", "check_sd2_like",
           "encode_empty_prompt", "freeze", "prepare_marigold_components", "convert_sd2_checkpoint"]
