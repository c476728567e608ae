"""SD-v2 -> Marigold conversion (model/convert.py) on tiny SD-like components."""

import copy
import json

import pytest
import torch

from marigold_bench.model import expand_conv_in
from marigold_bench.model.convert import (CheckpointError, check_sd2_like, convert_sd2_checkpoint,
                                          encode_empty_prompt, load_sd2_components)
from marigold_bench.model.tiny import build_tiny_components


@pytest.fixture(scope="module")
def sd_like():
    return build_tiny_components(seed=0, in_channels=4)


def test_expanded_unet_on_duplicated_input_equals_original(sd_like):
    original = sd_like["unet"].eval()
    wide = expand_conv_in(copy.deepcopy(original))
    assert wide.config.in_channels == 8 and wide.conv_in.in_channels == 8
    torch.manual_seed(0)
    x = torch.randn(2, 4, 16, 24)
    t = torch.tensor([10, 700])
    text = torch.randn(2, 2, 32)
    with torch.no_grad():
        want = original(x, t, text).sample
        got = wide(torch.cat([x, x], dim=1), t, text).sample
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_weight_halves_and_bias_kept(sd_like):
    original = sd_like["unet"]
    wide = expand_conv_in(copy.deepcopy(original))
    w = original.conv_in.weight.detach()
    assert torch.equal(wide.conv_in.weight[:, :4], w * 0.5)
    assert torch.equal(wide.conv_in.weight[:, 4:], w * 0.5)
    assert torch.equal(wide.conv_in.bias, original.conv_in.bias)


def test_expanding_twice_is_refused(sd_like):
    wide = expand_conv_in(copy.deepcopy(sd_like["unet"]))
    with pytest.raises(CheckpointError, match="already 8-channel"):
        expand_conv_in(wide)


def test_epsilon_checkpoint_needs_the_override(sd_like):
    components = dict(sd_like, scheduler_config={"prediction_type": "epsilon"})
    with pytest.raises(CheckpointError, match="epsilon"):
        check_sd2_like(components, "v_prediction")
    check_sd2_like(components, "v_prediction", allow_prediction_type_mismatch=True)


def test_empty_prompt_padding_choices(sd_like):
    short = encode_empty_prompt(sd_like["tokenizer"], sd_like["text_encoder"], "do_not_pad")
    long = encode_empty_prompt(sd_like["tokenizer"], sd_like["text_encoder"], "max_length")
    assert short.shape == (1, 2, 32) and long.shape == (1, 77, 32)
    with pytest.raises(ValueError):
        encode_empty_prompt(sd_like["tokenizer"], sd_like["text_encoder"], "left")


def write_sd_folder(folder, components, prediction_type="v_prediction"):
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        components[name].save_pretrained(str(folder / name))
    components["scheduler"].register_to_config(prediction_type=prediction_type)
    components["scheduler"].save_pretrained(str(folder / "scheduler"))


def test_convert_folder_to_marigold_pipeline(tmp_path):
    from diffusers import MarigoldDepthPipeline

    write_sd_folder(tmp_path / "sd", build_tiny_components(seed=1, in_channels=4))
    out = convert_sd2_checkpoint(tmp_path / "sd", tmp_path / "out", timestep_spacing="trailing", zero_snr=True)
    record = json.loads((out / "conversion.json").read_text())
    assert record["empty_prompt_padding"] == "do_not_pad"
    assert record["empty_text_embedding_shape"] == [1, 2, 32]
    assert (out / "empty_text_embedding.safetensors").is_file()
    pipe = MarigoldDepthPipeline.from_pretrained(str(out))
    assert pipe.unet.config.in_channels == 8
    assert pipe.config.prediction_type == "depth"
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.scheduler.config.rescale_betas_zero_snr
    assert not pipe.text_encoder.training and not pipe.vae.training


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_sd2_components(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="unet/config.json"):
        load_sd2_components(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        load_sd2_components("marigold-bench-tests/no-such-model")
    # wrong channel count (an already converted UNet) and epsilon prediction
    wrong = build_tiny_components(seed=2, in_channels=8)
    write_sd_folder(tmp_path / "wide", wrong, prediction_type="epsilon")
    with pytest.raises(CheckpointError) as err:
        load_sd2_components(tmp_path / "wide")
    assert "8 input channels" in str(err.value) and "epsilon" in str(err.value)
