"""Opt-in fast paths: a user-supplied tiny VAE decoder and torch.compile of the UNet and VAE."""

import numpy as np
import pytest

from marigold_bench.eval.evaluator import split_settings
from marigold_bench.inference import load_predictor

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_autoencoder(path, upsamplings=2):
    from diffusers import AutoencoderTiny

    blocks = upsamplings + 1
    AutoencoderTiny(encoder_block_out_channels=(16,) * blocks, decoder_block_out_channels=(16,) * blocks,
                    num_encoder_blocks=(1,) * blocks, num_decoder_blocks=(1,) * blocks).save_pretrained(path)
    return str(path)


def test_tiny_vae_decoder_is_used_recorded_and_changes_the_cache_identity(tiny_checkpoint, tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (36, 48, 3), dtype=np.uint8)
    plain = load_predictor(str(tiny_checkpoint), processing_res=0)
    with pytest.warns(UserWarning, match="tiny VAE"):
        fast = load_predictor(str(tiny_checkpoint), processing_res=0, tiny_vae=_tiny_autoencoder(tmp_path / "taesd"))
    (a,), (b,) = plain.predict([("x", rgb, [0])]), fast.predict([("x", rgb, [0])])
    assert a.shape == b.shape == (1, 36, 48)
    assert not np.allclose(a, b)  # another decoder, other numbers
    assert fast.settings["decoder"].startswith("tiny:") and plain.settings["decoder"] == "vae"
    assert split_settings(fast.settings)[0] != split_settings(plain.settings)[0]


def test_tiny_vae_of_another_scale_is_refused(tiny_checkpoint, tmp_path):
    from marigold_bench.errors import BenchError

    with pytest.warns(UserWarning):
        fast = load_predictor(str(tiny_checkpoint), processing_res=0,
                              tiny_vae=_tiny_autoencoder(tmp_path / "taesd8", upsamplings=3))
    rgb = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(BenchError, match="do not belong together"):
        fast.predict([("x", rgb, [0])])


def test_compile_is_not_part_of_the_cache_identity(tiny_checkpoint):
    eager = load_predictor(str(tiny_checkpoint), processing_res=0)
    compiled = load_predictor(str(tiny_checkpoint), processing_res=0, compile=True)
    assert compiled.settings["compile"] is True
    assert split_settings(compiled.settings)[0] == split_settings(eager.settings)[0]
    # the UNet and both halves of the VAE are compiled (lazily: nothing runs until a call)
    for module in (compiled.unet, compiled.vae.encoder, compiled.vae.decoder):
        assert module._compiled_call_impl is not None
    assert eager.vae.decoder._compiled_call_impl is None


@pytest.mark.slow
def test_compiled_unet_gives_the_eager_numbers(tiny_checkpoint):
    rgb = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    eager = load_predictor(str(tiny_checkpoint), processing_res=0).predict([("x", rgb, [0, 1])])[0]
    compiled = load_predictor(str(tiny_checkpoint), processing_res=0, compile=True).predict([("x", rgb, [0, 1])])[0]
    np.testing.assert_allclose(compiled, eager, atol=1e-4)


def test_tiny_vae_is_identified_by_content(tiny_checkpoint, tmp_path):
    import shutil

    from marigold_bench.eval.evaluator import split_settings

    first = _tiny_autoencoder(tmp_path / "taesd")
    moved = shutil.copytree(first, tmp_path / "elsewhere")
    with pytest.warns(UserWarning, match="tiny VAE"):
        a = load_predictor(str(tiny_checkpoint), processing_res=0, tiny_vae=first)
    with pytest.warns(UserWarning, match="tiny VAE"):
        b = load_predictor(str(tiny_checkpoint), processing_res=0, tiny_vae=str(moved))
    assert a.settings["tiny_vae_path"] != b.settings["tiny_vae_path"]
    assert split_settings(a.settings)[0] == split_settings(b.settings)[0]   # same decoder, moved
    weights = next(moved.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="tiny VAE"):
        c = load_predictor(str(tiny_checkpoint), processing_res=0, tiny_vae=str(moved))
    assert split_settings(c.settings)[0]["decoder"] != split_settings(a.settings)[0]["decoder"]
