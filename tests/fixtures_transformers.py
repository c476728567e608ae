"""Tiny random transformers depth estimators, saved like hub checkpoints (no network).

`make_tiny_depth_model(folder, arch)` writes a folder with ``config.json``, the weights and a
``preprocessor_config.json`` for the matching image processor, shaped like the public
checkpoints of that architecture (the processor settings are theirs, only the sizes are small).
Such a folder loads back through `transformers.pipeline("depth-estimation", model=folder)` and
`AutoModelForDepthEstimation.from_pretrained(folder)`, offline.

A randomly initialised depth head ends in a ReLU and outputs about 0 everywhere, which would make
any parity test pass trivially; so the convolutions are re-initialised with He (Kaiming) normal
weights and the last convolution's bias is lifted above zero: outputs then vary with the image
and the position (docs/parity.md, "transformers depth estimators").

Architectures: ``dpt`` (DPT-large-like, fixed square input), ``depth_anything`` (Depth Anything
v2 relative: DINOv2 backbone, aspect ratio kept, multiple of 14), ``depth_anything_metric`` (the
same with ``depth_estimation_type="metric"``), ``glpn`` (sizes rounded down to a multiple of 32),
``zoedepth`` and ``depth_pro`` (field of view head on, so its post-processing turns inverse depth
into metres). Their processors need torchvision: `ARCHS` (what parity tests run) lists them only
where torchvision is importable.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

#: every architecture the fixture builds; `ARCHS`: those whose processors work here
ALL_ARCHS = ("dpt", "depth_anything", "depth_anything_metric", "glpn", "zoedepth", "depth_pro")
NEEDS_TORCHVISION = ("zoedepth", "depth_pro")
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
ARCHS = tuple(a for a in ALL_ARCHS if HAS_TORCHVISION or a not in NEEDS_TORCHVISION)

#: ImageNet statistics, as in the Depth Anything and ZoeDepth processors
_IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def _dinov2_backbone():
    from transformers import Dinov2Config

    return Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2,
                        image_size=56, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
                        apply_layernorm=True)


def _build(arch: str, max_depth: float):
    """(model, image processor) for ``arch``, random weights."""
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTConfig,
                              DPTForDepthEstimation, GLPNConfig, GLPNForDepthEstimation)
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil
    from transformers.models.glpn.image_processing_pil_glpn import GLPNImageProcessorPil

    if arch == "dpt":
        config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=48,
                           image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
                           neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5],
                           use_auxiliary_head=False, readout_type="project")
        model = DPTForDepthEstimation(config)
        # as Intel/dpt-large: a fixed square input, bicubic resize, mean/std 0.5
        processor = DPTImageProcessorPil(size={"height": 32, "width": 32}, keep_aspect_ratio=False,
                                         ensure_multiple_of=1, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    elif arch in ("depth_anything", "depth_anything_metric"):
        metric = arch == "depth_anything_metric"
        config = DepthAnythingConfig(backbone_config=_dinov2_backbone(), patch_size=14, reassemble_hidden_size=32,
                                     neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8,
                                     depth_estimation_type="metric" if metric else "relative",
                                     max_depth=int(max_depth) if metric else 1)
        model = DepthAnythingForDepthEstimation(config)
        # as depth-anything/Depth-Anything-V2-*-hf: aspect ratio kept, sides a multiple of 14
        processor = DPTImageProcessorPil(size={"height": 42, "width": 42}, keep_aspect_ratio=True,
                                         ensure_multiple_of=14, resample=3, do_pad=False, **_IMAGENET)
    elif arch == "glpn":
        config = GLPNConfig(num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[4, 2, 1, 1],
                            hidden_sizes=[8, 16, 16, 32], num_attention_heads=[1, 1, 2, 2], mlp_ratios=[2, 2, 2, 2],
                            decoder_hidden_size=16, max_depth=int(max_depth), drop_path_rate=0.0)
        model = GLPNForDepthEstimation(config)
        # as vinvino02/glpn-nyu: no resize beyond rounding down to a multiple of 32
        processor = GLPNImageProcessorPil(size_divisor=32, resample=2)
    elif arch == "zoedepth":
        from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation
        from transformers.models.zoedepth.image_processing_pil_zoedepth import ZoeDepthImageProcessorPil

        backbone = BeitConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=48,
                              image_size=32, patch_size=8, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
                              use_relative_position_bias=True, add_fpn=False)
        config = ZoeDepthConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                reassemble_factors=[4, 2, 1, 0.5], bottleneck_features=16, num_attractors=[4, 4, 2, 2],
                                bin_embedding_dim=16, num_relative_features=8,
                                bin_configurations=[{"n_bins": 8, "min_depth": 1e-3, "max_depth": max_depth,
                                                     "name": "nyu"}])
        model = ZoeDepthForDepthEstimation(config)
        processor = ZoeDepthImageProcessorPil(size={"height": 32, "width": 32}, keep_aspect_ratio=True,
                                              ensure_multiple_of=8)
    elif arch == "depth_pro":
        from transformers import DepthProConfig, DepthProForDepthEstimation, DepthProImageProcessor, Dinov2Config

        # one Dinov2 shape for the image, patch and field-of-view encoders, whose image size must
        # equal the patch size the model cuts the 64x64 input into
        def encoder():
            return Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2,
                                image_size=32, patch_size=8)

        config = DepthProConfig(fusion_hidden_size=16, patch_size=32, intermediate_hook_ids=[1, 0],
                                intermediate_feature_dims=[16, 16], scaled_images_ratios=[0.5, 1],
                                scaled_images_overlap_ratios=[0.0, 0.25], scaled_images_feature_dims=[32, 16],
                                use_fov_model=True, num_fov_head_layers=1, image_model_config=encoder(),
                                patch_model_config=encoder(), fov_model_config=encoder())
        model = DepthProForDepthEstimation(config)
        processor = DepthProImageProcessor(size={"height": 64, "width": 64})
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: {', '.join(ARCHS)}")
    return model, processor


@torch.no_grad()
def _make_outputs_vary(model, seed: int) -> None:
    """He-initialise every convolution and lift the last one's bias, so the ReLU head's output
    varies instead of sitting at 0."""
    generator = torch.Generator().manual_seed(seed)
    last = None
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            if module.bias is not None:
                module.bias.zero_()
            last = module
    if last is not None and last.bias is not None:
        last.bias.fill_(0.5)


def make_tiny_depth_model(folder, arch: str = "dpt", *, seed: int = 0, max_depth: int = 10) -> Path:
    """Build, randomise and save a tiny depth estimator of ``arch`` with its image processor.

    Args:
        folder: where to write it (created if missing).
        arch: one of `ARCHS`.
        seed: seed of the weights (same seed, same files).
        max_depth: the metric models' depth range in metres.

    Returns:
        `Path`: ``folder``.
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    model, processor = _build(arch, max_depth)
    _make_outputs_vary(model, seed)
    if arch == "depth_pro":
        # its last convolution is the field-of-view head's: lift the depth head's instead, so the
        # inverse depth stays positive (0 would post-process to the 1e4 m clamp everywhere), and
        # fix the field of view at a positive value (a random head can give a negative one,
        # hence a negative focal length); the depth map still varies with the image
        with torch.no_grad():
            model.head.layers[4].bias.fill_(0.5)
            fov = model.fov_model.head.layers[-1]
            fov.weight.zero_()
            fov.bias.fill_(1.0)
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


__all__ = ["ALL_ARCHS", "ARCHS", "HAS_TORCHVISION", "make_tiny_depth_model"]
