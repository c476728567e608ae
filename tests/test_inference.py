"""MarigoldPredictor against diffusers.MarigoldDepthPipeline, determinism, and bad inputs."""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from marigold_bench.errors import BenchError, PredictionError
from marigold_bench.inference import load_predictor, member_seed
from marigold_bench.inference.images import InputImageError, to_float_rgb, to_model_tensor
from marigold_bench.inference.predictor import InferenceSettingsError, MarigoldPredictor
from marigold_bench.model.load import CheckpointError

H, W = 36, 48


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    from diffusers import MarigoldDepthPipeline

    pipeline = MarigoldDepthPipeline.from_pretrained(tiny_checkpoint)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _load(path, **settings):
    settings.setdefault("device", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_predictor(str(path), **settings)


# ----------------------------------------------------------------------------- parity


# Every spacing meets every step count and every resolution; the full grid is marked slow.
PARITY_CASES = [("leading", 1, 0), ("leading", 4, 32), ("trailing", 1, 32), ("trailing", 4, 0),
                ("leading", 1, 64), ("trailing", 4, 64)]
FULL_GRID = [pytest.param(sp, st, r, marks=pytest.mark.slow) for sp in ("leading", "trailing") for st in (1, 4)
             for r in (0, 32, 64) if (sp, st, r) not in PARITY_CASES]


@pytest.mark.parametrize("spacing,steps,res", PARITY_CASES + FULL_GRID)
def test_parity_with_diffusers_pipeline(tiny_checkpoint, pipe, rgb, spacing, steps, res):
    from diffusers import DDIMScheduler
    from PIL import Image

    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing=spacing)
    # Ensembling with no solver steps on both sides: the pipeline's optimiser uses float32
    # finite differences, whose result is round-off (see test_ensemble.py for the objective).
    predictor = _load(tiny_checkpoint, steps=steps, processing_res=res, timestep_spacing=spacing,
                      ensemble=3, ensembling={"max_iter": 0})
    (members,) = predictor.predict([("sample", rgb, [0, 1, 2])])
    latents = predictor.initial_latents("sample", [0, 1, 2], predictor.latent_size(H, W))
    image = Image.fromarray(rgb)   # the pipeline reads H x W x 3 numpy arrays' size wrongly

    raw = pipe([image] * 3, num_inference_steps=steps, processing_resolution=res, latents=latents,
               match_input_resolution=False, batch_size=3).prediction[..., 0]
    assert members.shape == raw.shape
    np.testing.assert_allclose(members, raw, atol=1e-4)

    one = pipe(image, num_inference_steps=steps, processing_resolution=res, latents=latents[:1]).prediction
    depth, uncertainty = predictor.merge(members[:1], (H, W))
    assert uncertainty is None
    np.testing.assert_allclose(depth, one[0, ..., 0], atol=1e-4)

    three = pipe(image, num_inference_steps=steps, processing_resolution=res, latents=latents, ensemble_size=3,
                 batch_size=3, ensembling_kwargs={"max_iter": 0}, output_uncertainty=True)
    depth, uncertainty = predictor.merge(members, (H, W))
    np.testing.assert_allclose(depth, three.prediction[0, ..., 0], atol=1e-4)
    np.testing.assert_allclose(uncertainty, three.uncertainty[0, ..., 0], atol=1e-4)


def test_defaults_come_from_checkpoint_and_settings_are_json(tiny_checkpoint):
    predictor = _load(tiny_checkpoint)
    settings = json.loads(json.dumps(predictor.settings))
    assert settings["steps"] == 1 and settings["processing_res"] == 0     # model_index.json defaults
    assert settings["timestep_spacing"] == "leading" == settings["checkpoint_timestep_spacing"]
    assert settings["prediction_type"] == "depth"
    assert settings["padding"] == "replicate" and settings["dtype"] == "float32"
    assert settings["ensembling"]["preset"] == "diffusers" and settings["ensembling"]["max_iter"] == 2
    assert settings["batch_size"] == "auto" and settings["device"] == "cpu" and settings["seed"] == 1234
    for key in ("model", "model_path", "noise", "ensemble", "precision", "timesteps"):
        assert key in settings


def test_spacing_differing_from_checkpoint_warns(tiny_checkpoint):
    with pytest.warns(UserWarning, match="spacing"):
        predictor = load_predictor(str(tiny_checkpoint), timestep_spacing="trailing", steps=2, device="cpu")
    assert predictor.timesteps == [999, 499]


# ----------------------------------------------------------------------------- determinism


def test_member_seed_is_stable():
    assert member_seed(1234, "test/kitchen_0004/rgb_0001", 0) == member_seed(1234, "test/kitchen_0004/rgb_0001", 0)
    seeds = {member_seed(s, i, k) for s in (0, 1) for i in ("a", "b") for k in range(3)}
    assert len(seeds) == 12
    assert all(0 <= s < 2**63 for s in seeds)
    # Pinned: a change would silently change every published number made with the suite.
    assert member_seed(1234, "a", 0) == 2515554719168962233


def test_same_seed_same_output_across_batch_sizes_and_order(tiny_checkpoint, rgb):
    other = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    jobs = [("a", rgb, [0, 1, 2, 3]), ("b", other, [0, 1]), ("c", rgb, [2])]
    predictor = _load(tiny_checkpoint, steps=2)
    results = {}
    for batch_size in (1, 3, 8):
        predictor.batch_size = batch_size
        results[batch_size] = predictor.predict(jobs)
    for batch_size in (3, 8):
        for ref, got in zip(results[1], results[batch_size]):
            # Batched BLAS kernels may sum in another order: equal up to float round-off.
            np.testing.assert_allclose(got, ref, atol=1e-5)
    predictor.batch_size = 3
    again = predictor.predict(jobs)
    for ref, got in zip(results[3], again):
        np.testing.assert_array_equal(got, ref)
    reordered = predictor.predict(jobs[::-1])[::-1]
    for ref, got in zip(results[3], reordered):
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_member_reuse_across_ensemble_sizes(tiny_checkpoint, rgb):
    predictor = _load(tiny_checkpoint, steps=2, batch_size=1)
    three = predictor.predict([("s", rgb, list(range(3)))])[0]
    five = predictor.predict([("s", rgb, list(range(5)))])[0]
    np.testing.assert_array_equal(five[:3], three)
    missing = predictor.predict([("s", rgb, [3, 4])])[0]          # resume: only the missing members
    np.testing.assert_array_equal(missing, five[3:])
    lat3 = predictor.initial_latents("s", range(3), (9, 12))
    lat5 = predictor.initial_latents("s", range(5), (9, 12))
    assert torch.equal(lat5[:3], lat3)
    assert not torch.equal(lat5[0], lat5[1])
    assert not torch.equal(predictor.initial_latents("t", [0], (9, 12))[0], lat5[0])


def test_seed_changes_members(tiny_predictor, rgb):
    a = tiny_predictor.predict([("s", rgb, [0])])[0]
    tiny_predictor.seed += 1
    try:
        b = tiny_predictor.predict([("s", rgb, [0])])[0]
    finally:
        tiny_predictor.seed -= 1
    assert np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize("noise", ["zeros", "multires", "annealed"])
def test_noise_kinds(tiny_checkpoint, rgb, noise):
    predictor = _load(tiny_checkpoint, noise=noise, steps=2)
    latents = predictor.initial_latents("s", [0, 1], (9, 12))
    if noise == "zeros":
        assert torch.count_nonzero(latents) == 0
    else:
        assert 0.8 < float(latents.std()) < 1.2
        assert torch.equal(latents, predictor.initial_latents("s", [0, 1], (9, 12)))
    (members,) = predictor.predict([("s", rgb, [0, 1])])
    assert members.shape == (2, H, W) and np.isfinite(members).all()
    assert predictor.settings["noise"] == noise


def test_multires_noise_is_the_training_pyramid(tiny_checkpoint):
    from marigold_bench.inference.seeding import member_generator
    from marigold_bench.model.noise import multi_resolution_noise

    predictor = _load(tiny_checkpoint, noise="multires")
    expected = multi_resolution_noise((1, 4, 9, 12), generator=member_generator(1234, "s", 1), strength=0.9)
    assert torch.equal(predictor.initial_latents("s", [1], (9, 12)), expected)


# ----------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def tiny_predictor(tiny_checkpoint):
    return _load(tiny_checkpoint, steps=1)


def test_input_kinds_give_the_same_prediction(tiny_predictor, rgb):
    gray = rgb[..., 0]
    gray_rgb = np.repeat(gray[..., None], 3, axis=2)
    variants = {
        "grayscale": gray,
        "grayscale_hw1": gray[..., None],
        "uint16": gray.astype(np.uint16) * 257,                   # 257 / 65535 == 1 / 255
        "float": gray.astype(np.float32) / 255.0,
        "rgba": np.dstack([gray_rgb, np.full_like(gray, 7)]),
    }
    outputs = tiny_predictor.predict([(name, image, [0]) for name, image in variants.items()])
    # Noise depends on the sample id, so each variant is compared with uint8 RGB under its name.
    references = tiny_predictor.predict([(name, gray_rgb, [0]) for name in variants])
    for name, out, ref in zip(variants, outputs, references):
        assert out.shape == (1, H, W)
        np.testing.assert_allclose(out, ref, atol=1e-5, err_msg=name)


def test_float_rgb_conversion_rules():
    assert to_float_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    np.testing.assert_allclose(to_float_rgb(np.full((2, 2), 65535, np.uint16)), 1.0)
    np.testing.assert_allclose(to_float_rgb(np.full((2, 2, 4), 255, np.uint8)), 1.0)
    for bad in (np.full((4, 4, 3), 2.0, np.float32), np.full((4, 4), np.nan), np.zeros((4, 4, 5), np.uint8),
                np.zeros((4, 4), np.int16), np.zeros((2, 4, 4, 3), np.uint8)):
        with pytest.raises(InputImageError):
            to_float_rgb(bad)
    assert issubclass(InputImageError, BenchError)


@pytest.mark.parametrize("size,res", [((37, 45), 0), ((37, 45), 30), ((36, 48), 30), ((20, 70), 0)])
def test_sizes_not_multiple_of_vae_factor(tiny_checkpoint, size, res):
    image = np.random.default_rng(2).integers(0, 256, (*size, 3), dtype=np.uint8)
    predictor = _load(tiny_checkpoint, processing_res=res)
    (members,) = predictor.predict([("s", image, [0, 1])])
    long_side = max(size)
    expected = size if res == 0 else (size[0] * res // long_side, size[1] * res // long_side)
    assert members.shape == (2, *expected)
    assert np.isfinite(members).all() and members.min() >= 0 and members.max() <= 1
    depth, uncertainty = predictor.merge(members, size)
    assert depth.shape == size == uncertainty.shape and depth.dtype == np.float32


def test_nan_from_model_raises_prediction_error(tiny_checkpoint, rgb):
    predictor = _load(tiny_checkpoint, batch_size=1)
    real_forward = predictor.unet.forward
    calls = {"n": 0}

    def broken(sample, *args, **kwargs):
        calls["n"] += 1
        out = real_forward(sample, *args, **kwargs)
        if calls["n"] == 1:   # only the first batch: sample "bad", member 0
            return (torch.full_like(out[0], float("nan")),)
        return out

    predictor.unet.forward = broken
    with pytest.raises(PredictionError, match="bad") as info:
        predictor.predict([("bad", rgb, [0, 1]), ("good", rgb, [0])])
    assert info.value.sample_ids == ["bad"]
    assert info.value.results[0] is None and info.value.results[1].shape == (1, H, W)

    predictor.unet.forward = lambda sample, *a, **k: (torch.full_like(sample[:, :4], float("inf")),)
    with pytest.raises(PredictionError, match="s1"):
        predictor.predict([("s1", rgb, [0])])


def test_out_of_memory_under_auto_batch_halves_and_retries(tiny_checkpoint, rgb):
    predictor = _load(tiny_checkpoint)                       # batch_size 0: auto (4 on the CPU)
    reference = predictor.predict([("s", rgb, list(range(5)))])[0]
    real_denoise = predictor._denoise
    seen = []

    def picky(image_latent, latent, **kwargs):
        seen.append(latent.shape[0])
        if latent.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("pretend")
        return real_denoise(image_latent, latent, **kwargs)

    predictor._denoise = picky
    again = predictor.predict([("s", rgb, list(range(5)))])[0]
    assert seen[0] == 4 and max(seen[1:]) == 2
    np.testing.assert_allclose(again, reference, atol=1e-5)
    fixed = _load(tiny_checkpoint, batch_size=4)
    fixed._denoise = picky
    with pytest.raises(torch.cuda.OutOfMemoryError):          # an explicit batch size is kept
        fixed.predict([("s", rgb, list(range(5)))])


def test_merge_shapes(tiny_predictor):
    members = np.random.default_rng(0).random((3, 9, 12)).astype(np.float32)
    depth, unc = tiny_predictor.merge(members, (18, 24))
    assert depth.shape == unc.shape == (18, 24)
    assert depth.min() >= -1e-6 and depth.max() <= 1 + 1e-6
    depth, unc = tiny_predictor.merge(members[:1], (9, 12))
    np.testing.assert_array_equal(depth, members[0])
    assert unc is None
    with pytest.raises(PredictionError):
        tiny_predictor.merge(np.full((2, 4, 4), np.nan, np.float32), (4, 4))


def test_bf16_runs(tiny_checkpoint, rgb):
    predictor = _load(tiny_checkpoint, precision="bf16")
    (members,) = predictor.predict([("s", rgb, [0])])
    assert members.dtype == np.float32 and np.isfinite(members).all()
    assert predictor.settings["dtype"] == "bfloat16"


# ----------------------------------------------------------------------------- settings and checkpoints


def test_invalid_settings(tiny_checkpoint):
    for bad in (dict(precision="fp8"), dict(noise="pink"), dict(ensemble=0), dict(steps=0),
                dict(timestep_spacing="sideways"), dict(processing_res=-1), dict(ensembling="nope")):
        with pytest.raises(BenchError):
            _load(tiny_checkpoint, **bad)
    if not torch.cuda.is_available():
        with pytest.raises(InferenceSettingsError, match="CUDA"):
            _load(tiny_checkpoint, device="cuda")


def test_checkpoint_missing_component(tiny_checkpoint, tmp_path):
    broken = tmp_path / "no_vae"
    shutil.copytree(tiny_checkpoint, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(CheckpointError, match="'vae'"):
        _load(broken)
    weights = tmp_path / "no_unet_weights"
    shutil.copytree(tiny_checkpoint, weights)
    for f in (weights / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(CheckpointError, match="'unet' has no weights"):
        _load(weights)
    with pytest.raises(CheckpointError, match="model_index.json"):
        _load(tiny_checkpoint / "unet")


def test_sd_checkpoint_with_four_channels(tiny_checkpoint, tmp_path):
    sd = tmp_path / "sd"
    shutil.copytree(tiny_checkpoint, sd)
    config_file = sd / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config["in_channels"] = 4
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="Stable Diffusion checkpoint.*4 input channels"):
        _load(sd)


def test_hub_id_not_in_cache():
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache.*hf download"):
        _load("nobody-here/no-such-marigold-model")
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        _load("./does/not/exist")


def test_from_pretrained_is_the_loader(tiny_checkpoint):
    predictor = MarigoldPredictor.from_pretrained(str(tiny_checkpoint), device="cpu", ensemble=3)
    assert predictor.settings["ensemble"] == 3
    assert predictor.settings["model_path"] == str(tiny_checkpoint.resolve())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("ensembling", ["diffusers", "cvpr"])
def test_gpu_merge_equals_host_merge(tiny_checkpoint, ensembling):
    # on CUDA, merge ensembles and resizes on the GPU; the host path is the reference
    members = np.clip(np.random.default_rng(2).normal(0.5, 0.1, (10, 48, 64)), 0, 1).astype(np.float32)
    host = load_predictor(str(tiny_checkpoint), device="cpu", ensembling=ensembling)
    gpu = load_predictor(str(tiny_checkpoint), device="cuda", ensembling=ensembling)
    for n in (1, 10):
        d_host, u_host = host.merge(members[:n], (96, 128))
        d_gpu, u_gpu = gpu.merge(members[:n], (96, 128))
        assert isinstance(d_gpu, np.ndarray) and d_gpu.shape == (96, 128)
        np.testing.assert_allclose(d_gpu, d_host, atol=1e-5)
        if n > 1:
            np.testing.assert_allclose(u_gpu, u_host, atol=1e-5)


def test_model_tensor_divides_like_diffusers():
    # every uint8 level, divided in float32 as diffusers' processor does on the host
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    tensor = to_model_tensor(levels)
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == torch.float32
    expected = torch.from_numpy(levels.astype(np.float32) / np.float32(255.0)).permute(2, 0, 1)[None]
    assert torch.equal(tensor, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_tensor_on_the_gpu_equals_the_host():
    # CUDA divides by a Python scalar through its reciprocal; the device path must not
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert torch.equal(to_model_tensor(levels, device="cuda").cpu(), to_model_tensor(levels))
