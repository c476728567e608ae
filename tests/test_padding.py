"""The official pipeline's no-pad geometry (``--padding none``), checked independently.

The model here downsamples by 8 like SD-v2's VAE, so ETH3D's processing size 504 x 756 is not a
multiple of the factor: the VAE must see 504 x 756 as it is (not 504 x 760 padded), the decoder
gives back 504 x 752, and that is stretched to the input size. The reference is a composition of
diffusers components written out in this file: 8-bit resize -> encode -> DDIM -> decode ->
antialiased bilinear resize back.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from marigold_bench.commands.common import build_predictor
from marigold_bench.errors import BenchError, InferenceSettingsError
from marigold_bench.inference.images import official_processing_size, processing_size
from marigold_bench.inference.predictor import MarigoldPredictor

pytestmark = pytest.mark.usefixtures("one_thread")

# an ETH3D frame (4032 x 6048) at a quarter of its size, processed at ETH3D's 756
IMAGE_HW = (1008, 1512)
RES = 756


@pytest.fixture(scope="module")
def pipe8():
    """A tiny Marigold pipeline whose VAE downsamples by 8 (four encoder blocks)."""
    from diffusers import AutoencoderKL, MarigoldDepthPipeline

    from marigold_bench.model.tiny import build_tiny_components, tiny_vae_config

    parts = build_tiny_components(seed=0, timestep_spacing="trailing")
    torch.manual_seed(1)
    parts["vae"] = AutoencoderKL(**{**tiny_vae_config(), "block_out_channels": (16, 32, 32, 32),
                                    "down_block_types": ("DownEncoderBlock2D",) * 4,
                                    "up_block_types": ("UpDecoderBlock2D",) * 4})
    return MarigoldDepthPipeline(**parts, prediction_type="depth", scale_invariant=True, shift_invariant=True,
                                 default_denoising_steps=1, default_processing_resolution=RES)


@pytest.fixture(scope="module")
def rgb():
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:IMAGE_HW[0], 0:IMAGE_HW[1]]
    smooth = np.stack([np.sin(x / 41.0 + c) * np.cos(y / 29.0 - c) for c in range(3)], -1) * 90 + 128
    return np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)


def _predictor(pipe, padding, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MarigoldPredictor.from_pipeline(pipe, padding=padding, noise="zeros", device="cpu",
                                               **{"processing_res": RES, "steps": 2, **settings})


def _vae_inputs(pipe):
    seen = []
    handle = pipe.vae.encoder.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    return seen, handle


def test_vae_sees_the_unpadded_image_and_the_map_is_stretched_back(pipe8, rgb):
    seen, handle = _vae_inputs(pipe8)
    try:
        none = _predictor(pipe8, "none")
        (members,) = none.predict([("frame", rgb, [0])])
        replicate = _predictor(pipe8, "replicate")
        (padded_members,) = replicate.predict([("frame", rgb, [0])])
    finally:
        handle.remove()
    assert seen == [(1, 3, 504, 756), (1, 3, 504, 760)]     # as it is; padded to 95 latent columns
    assert members.shape == (1, 504, 752)                     # 94 latent columns decode to 752
    assert padded_members.shape == (1, 504, 756)              # the padding cut off again
    depth, _ = none.merge(members, IMAGE_HW)
    assert depth.shape == IMAGE_HW
    # the two geometries give different maps: the comparison below can tell them apart
    assert np.abs(depth - replicate.merge(padded_members, IMAGE_HW)[0]).max() > 1e-2
    assert none.settings["padding"] == "none" and replicate.settings["padding"] == "replicate"
    assert none.settings["resample_output"] == "bilinear-antialias"
    assert replicate.settings["resample_output"] == "bilinear"


@torch.no_grad()
def _by_hand(pipe, rgb, res, steps):
    """The official geometry from diffusers components, written out step by step."""
    from diffusers import DDIMScheduler

    levels = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()          # 0..255
    if res:
        h, w = rgb.shape[:2]
        factor = min(res / w, res / h)
        size = (int(h * factor), int(w * factor))
        # torchvision's resize of a uint8 tensor: float, antialiased bilinear, rounded back
        levels = torch.round(F.interpolate(levels, size, mode="bilinear", antialias=True, align_corners=False))
    image = (levels / 255.0) * 2.0 - 1.0
    sf = pipe.vae.config.scaling_factor
    image_latent = pipe.vae.encode(image).latent_dist.mean * sf
    ids = pipe.tokenizer("", padding="do_not_pad", return_tensors="pt").input_ids
    text = pipe.text_encoder(ids)[0]
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    latent = torch.zeros_like(image_latent)
    for t in scheduler.timesteps:
        noise_pred = pipe.unet(torch.cat([image_latent, latent], 1), t, encoder_hidden_states=text).sample
        latent = scheduler.step(noise_pred, t, latent).prev_sample
    decoded = pipe.vae.decode(latent / sf).sample.mean(1, keepdim=True)
    depth = (decoded.clip(-1, 1) + 1) / 2
    depth = F.interpolate(depth, rgb.shape[:2], mode="bilinear", antialias=True, align_corners=False)
    return depth[0, 0].numpy()


def test_no_pad_path_equals_a_composition_of_diffusers_components(pipe8, rgb):
    depth, _ = _predictor(pipe8, "none").predict_images([("frame", rgb)])[0]
    expected = _by_hand(pipe8, rgb, RES, 2)
    assert depth.shape == expected.shape == IMAGE_HW
    assert expected.std() > 0.01          # a map with structure, not a constant
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-5)


def test_native_resolution_of_an_odd_size(pipe8):
    # 3 rows and 5 columns past a multiple of 8: the decoder returns 96 x 120, stretched to 99 x 125
    image = np.random.default_rng(9).integers(0, 256, (99, 125, 3), dtype=np.uint8)
    predictor = _predictor(pipe8, "none", processing_res=0, steps=1)
    (members,) = predictor.predict([("odd", image, [0])])
    assert members.shape == (1, 96, 120)
    depth, _ = predictor.merge(members, image.shape[:2])
    np.testing.assert_allclose(depth, _by_hand(pipe8, image, 0, 1), rtol=0, atol=1e-5)


def test_both_geometries_agree_at_native_resolution_on_multiples_of_eight(pipe8):
    image = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    none = _predictor(pipe8, "none", processing_res=0).predict_images([("a", image)])[0][0]
    replicate = _predictor(pipe8, "replicate", processing_res=0).predict_images([("a", image)])[0][0]
    np.testing.assert_allclose(none, replicate, rtol=0, atol=1e-6)


def test_official_size_rule_truncates_a_float_product():
    assert official_processing_size(4032, 6048, 756) == processing_size(4032, 6048, 756) == (504, 756)
    # 330 * (756 / 1080) = 230.99999999999997 in floating point; the integer rule gives 231
    assert official_processing_size(330, 1080, 756) == (230, 756)
    assert processing_size(330, 1080, 756) == (231, 756)
    assert official_processing_size(37, 45, 0) == (37, 45)


def test_unknown_padding_is_refused(pipe8):
    with pytest.raises(InferenceSettingsError, match="padding must be one of replicate, none"):
        _predictor(pipe8, "reflect")


# ----------------------------------------------------------------------------- command line


def _args(**overrides):
    from marigold_bench.cli import build_parser

    argv = ["run", "--dataset", overrides.pop("dataset", "synthetic")]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return build_parser().parse_args(argv)


def test_padding_flag_on_a_baseline_is_a_clear_error():
    with pytest.raises(InferenceSettingsError, match="--padding none cannot apply"):
        build_predictor(_args(model="baseline:ramp", padding="none"))
    assert issubclass(InferenceSettingsError, BenchError)
    build_predictor(_args(model="baseline:ramp"))   # without the flag it builds


def test_padding_flag_on_the_cli_exits_2_with_one_line(capsys):
    from marigold_bench.cli import main

    assert main(["run", "--dataset", "synthetic", "--model", "baseline:constant", "--padding", "replicate",
                 "--max-samples", "1", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--padding replicate cannot apply" in err and "Traceback" not in err


def test_eth3d_defaults_to_the_official_geometry_under_the_marigold_protocol(tiny_checkpoint):
    def padding_of(**flags):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build_predictor(_args(model=tiny_checkpoint, device="cpu", **flags),
                                   processing_res=0).settings["padding"]

    assert padding_of(dataset="eth3d") == "none"
    assert padding_of(dataset="eth3d", padding="replicate") == "replicate"
    assert padding_of(dataset="eth3d", protocol="moge") == "replicate"
    assert padding_of(dataset="nyu") == "replicate"
    assert padding_of(dataset="nyu", padding="none") == "none"


def test_padding_flag_on_a_transformers_model_is_a_clear_error(tmp_path):
    from fixtures_transformers import make_tiny_depth_model

    folder = make_tiny_depth_model(tmp_path / "dpt", "dpt")
    with pytest.raises(InferenceSettingsError, match="transformers depth model.*--padding none cannot apply"):
        build_predictor(_args(model=folder, padding="none", device="cpu"))
