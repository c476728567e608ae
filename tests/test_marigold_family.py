"""Marigold-family checkpoints beyond DDIM: LCM (own scheduler) and E2E-FT (one step from zeros),
against diffusers' MarigoldDepthPipeline with the same scheduler and latents."""

import argparse
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from marigold_bench.errors import InferenceSettingsError
from marigold_bench.inference import load_predictor
from marigold_bench.inference.seeding import member_generator

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 36, 48
RES = 32


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def lcm_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with its scheduler swapped to an LCMScheduler, as marigold-depth-lcm
    names it: in scheduler_config.json and in model_index.json."""
    from diffusers import DDIMScheduler, LCMScheduler

    path = tmp_path_factory.mktemp("tiny_lcm") / "ckpt"
    shutil.copytree(tiny_checkpoint, path)
    ddim = DDIMScheduler.from_pretrained(path, subfolder="scheduler")
    LCMScheduler.from_config(ddim.config).save_pretrained(path / "scheduler")
    index = json.loads((path / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "LCMScheduler"]
    (path / "model_index.json").write_text(json.dumps(index))
    return path


def _load(path, **settings):
    settings.setdefault("device", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_predictor(str(path), **settings)


def _pipe(path):
    from diffusers import MarigoldDepthPipeline

    pipe = MarigoldDepthPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------- LCM


def test_lcm_checkpoint_runs_its_own_scheduler(lcm_checkpoint):
    from diffusers import LCMScheduler

    predictor = _load(lcm_checkpoint, steps=4, processing_res=RES)
    assert isinstance(predictor.scheduler, LCMScheduler)
    settings = json.loads(json.dumps(predictor.settings))
    assert settings["scheduler"] == "LCMScheduler" and settings["timestep_spacing"] is None
    # LCM's schedule: 4 of the 50 distillation steps (k = 20), evenly spaced from the last one
    assert settings["timesteps"] == [999, 759, 499, 259]
    with pytest.raises(InferenceSettingsError, match="LCMScheduler"):
        _load(lcm_checkpoint, timestep_spacing="trailing")


def test_lcm_one_step_equals_the_pipeline(lcm_checkpoint, rgb):
    pipe = _pipe(lcm_checkpoint)
    assert type(pipe.scheduler).__name__ == "LCMScheduler"
    predictor = _load(lcm_checkpoint, steps=1, processing_res=RES)
    (members,) = predictor.predict([("s", rgb, [0, 1])])
    latents = predictor.initial_latents("s", [0, 1], predictor.latent_size(H, W))
    raw = pipe([Image.fromarray(rgb)] * 2, num_inference_steps=1, processing_resolution=RES, latents=latents,
               match_input_resolution=False, batch_size=2).prediction[..., 0]
    np.testing.assert_allclose(members, raw, atol=1e-4)
    assert np.abs(members[0] - members[1]).max() > 1e-3   # the two members really differ


def test_lcm_multi_step_draws_its_step_noise_like_the_pipeline(lcm_checkpoint, rgb):
    """Between steps LCM adds fresh noise. Each member's comes from its own generator, continued
    after the starting latent: the pipeline given those generators gives the same members."""
    pipe = _pipe(lcm_checkpoint)
    predictor = _load(lcm_checkpoint, steps=4, processing_res=RES, batch_size=2)
    (members,) = predictor.predict([("s", rgb, [0, 1])])
    generators = [member_generator(predictor.seed, "s", k) for k in (0, 1)]
    raw = pipe([Image.fromarray(rgb)] * 2, num_inference_steps=4, processing_resolution=RES, generator=generators,
               match_input_resolution=False, batch_size=2).prediction[..., 0]
    np.testing.assert_allclose(members, raw, atol=1e-4)
    # the same members again (the step counter restarts) and member by member (noise per member)
    (again,) = predictor.predict([("s", rgb, [1, 0])])
    np.testing.assert_allclose(again[::-1], members, atol=1e-5)
    # and the between-step noise matters: without it the result is another one
    latents = predictor.initial_latents("s", [0], predictor.latent_size(H, W))
    other = pipe(Image.fromarray(rgb), num_inference_steps=4, processing_resolution=RES, latents=latents,
                 match_input_resolution=False, generator=None).prediction[0, ..., 0]
    assert np.abs(other - members[0]).max() > 1e-3


def test_lcm_rejects_more_steps_than_distilled(lcm_checkpoint):
    with pytest.raises(InferenceSettingsError, match="LCM"):
        _load(lcm_checkpoint, steps=60)


# ----------------------------------------------------------------------------- E2E-FT


def test_e2e_ft_recipe_is_one_trailing_step_from_zeros(tiny_checkpoint, rgb):
    from diffusers import DDIMScheduler

    predictor = _load(tiny_checkpoint, recipe="e2e-ft", processing_res=RES)
    settings = predictor.settings
    assert settings["recipe"] == "e2e-ft"
    assert (settings["steps"], settings["timestep_spacing"], settings["noise"], settings["ensemble"]) == \
        (1, "trailing", "zeros", 1)
    assert settings["timesteps"] == [999]                              # t = T
    assert settings["scheduler"] == "DDIMScheduler"

    pipe = _pipe(tiny_checkpoint)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    zeros = torch.zeros(1, 4, *predictor.latent_size(H, W))
    expected = pipe(Image.fromarray(rgb), num_inference_steps=1, processing_resolution=RES, latents=zeros).prediction
    (members,) = predictor.predict([("s", rgb, [0])])
    depth, _ = predictor.merge(members, (H, W))
    np.testing.assert_allclose(depth, expected[0, ..., 0], atol=1e-4)
    # deterministic: another sample id (another seed) gives the same map
    (again,) = predictor.predict([("other id", rgb, [0])])
    np.testing.assert_array_equal(again, members)


@pytest.mark.parametrize("bad,named", [(dict(steps=4), "--steps 4"), (dict(ensemble=3), "--ensemble 3"),
                                       (dict(noise="gaussian"), "--noise gaussian"),
                                       (dict(timestep_spacing="leading"), "--timestep-spacing leading")])
def test_e2e_ft_recipe_refuses_contradicting_settings(tiny_checkpoint, bad, named):
    with pytest.raises(InferenceSettingsError, match=f"e2e-ft recipe.*{named} contradicts"):
        _load(tiny_checkpoint, recipe="e2e-ft", **bad)


def test_default_recipe_settings_are_unchanged(tiny_checkpoint):
    settings = _load(tiny_checkpoint).settings
    assert "recipe" not in settings and settings["noise"] == "gaussian" and settings["scheduler"] == "DDIMScheduler"


def test_recipe_flag_on_the_command_line(tiny_checkpoint):
    from marigold_bench.commands.common import add_inference_flags, build_predictor

    parser = argparse.ArgumentParser()
    add_inference_flags(parser)
    args = parser.parse_args(["--model", str(tiny_checkpoint), "--recipe", "e2e-ft", "--device", "cpu"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = build_predictor(args, processing_res=RES)
    assert predictor.settings["recipe"] == "e2e-ft" and predictor.settings["noise"] == "zeros"
    args = parser.parse_args(["--model", str(tiny_checkpoint), "--recipe", "e2e-ft", "--noise", "multires"])
    with pytest.raises(InferenceSettingsError, match="--noise multires"):
        build_predictor(args)
