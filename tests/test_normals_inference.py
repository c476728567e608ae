"""MarigoldNormalsPredictor against diffusers.MarigoldNormalsPipeline (diffusers' geometry) and
against a step-by-step re-derivation of the official pipeline's geometry; its family, registry
entry, ensembling and bad inputs."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from marigold_bench.errors import InferenceSettingsError, PredictionError
from marigold_bench.inference.interface import check_predictor, output_space_of, task_of
from marigold_bench.inference.normals import MarigoldNormalsPredictor
from marigold_bench.inference.normals_ensemble import ensemble_normals, resolve_normals_ensembling

H, W = 37, 50
BUNDLED = Path(__file__).resolve().parents[1] / "marigold_bench" / "checkpoints" / "tiny-normals"

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_normals_pipeline(use_full_z_range=True):
    from diffusers import MarigoldNormalsPipeline

    from marigold_bench.model.tiny import build_tiny_components

    return MarigoldNormalsPipeline(**build_tiny_components(seed=3, timestep_spacing="trailing", zero_snr=True),
                                   prediction_type="normals", use_full_z_range=use_full_z_range,
                                   default_denoising_steps=1, default_processing_resolution=0)


@pytest.fixture(scope="module")
def random_normals(tmp_path_factory):
    """A random-initialised tiny normals checkpoint in diffusers format."""
    path = tmp_path_factory.mktemp("tiny_normals")
    _tiny_normals_pipeline().save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["random", "bundled"])
def checkpoint(request, random_normals):
    return random_normals if request.param == "random" else BUNDLED


@pytest.fixture(scope="module")
def pipe(checkpoint):
    from diffusers import MarigoldNormalsPipeline

    pipeline = MarigoldNormalsPipeline.from_pretrained(checkpoint)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _load(path, **settings):
    settings.setdefault("device", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MarigoldNormalsPredictor.from_pretrained(str(path), **settings)


# ----------------------------------------------------------------------------- diffusers' geometry


@pytest.mark.parametrize("steps,res", [(1, 0), (4, 32), (2, 64)])
@pytest.mark.parametrize("reduction", ["closest", "mean"])
def test_parity_with_diffusers_pipeline(checkpoint, pipe, rgb, steps, res, reduction):
    from PIL import Image

    predictor = _load(checkpoint, steps=steps, processing_res=res, ensemble=3, ensembling=reduction)
    (members,) = predictor.predict([("sample", rgb, [0, 1, 2])])
    latents = predictor.initial_latents("sample", [0, 1, 2], predictor.latent_size(H, W))
    image = Image.fromarray(rgb)
    assert members.shape[:2] == (3, 3)

    raw = pipe([image] * 3, num_inference_steps=steps, processing_resolution=res, latents=latents,
               match_input_resolution=False, batch_size=3, output_type="pt").prediction
    np.testing.assert_allclose(members, raw.numpy(), atol=1e-4)

    # N = 1: the member alone (a batch of one on both sides: unit length amplifies round-off
    # where the decoded vector is short, so batch shapes are kept equal)
    (alone,) = predictor.predict([("sample", rgb, [0])])
    one = pipe(image, num_inference_steps=steps, processing_resolution=res, latents=latents[:1],
               output_type="pt").prediction[0]
    normals, uncertainty = predictor.merge(alone, (H, W))
    assert uncertainty is None and normals.shape == (3, H, W) and normals.dtype == np.float32
    np.testing.assert_allclose(normals, one.numpy(), atol=1e-4)

    three = pipe(image, num_inference_steps=steps, processing_resolution=res, latents=latents, ensemble_size=3,
                 batch_size=3, ensembling_kwargs={"reduction": reduction}, output_uncertainty=True, output_type="pt")
    normals, uncertainty = predictor.merge(members, (H, W))
    np.testing.assert_allclose(normals, three.prediction[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(uncertainty, three.uncertainty[0, 0].numpy(), atol=1e-4)
    # unit length after the resize: diffusers' geometry renormalises
    np.testing.assert_allclose(np.linalg.norm(normals, axis=0), 1.0, atol=1e-5)


def test_half_z_range_checkpoint_matches_diffusers(tmp_path, rgb):
    from PIL import Image

    pipeline = _tiny_normals_pipeline(use_full_z_range=False)
    pipeline.save_pretrained(tmp_path)
    pipeline.set_progress_bar_config(disable=True)
    predictor = _load(tmp_path, steps=2)
    assert predictor.settings["use_full_z_range"] is False
    (member,) = predictor.predict([("s", rgb, [0])])
    latents = predictor.initial_latents("s", [0], predictor.latent_size(H, W))
    ref = pipeline(Image.fromarray(rgb), num_inference_steps=2, latents=latents, output_type="pt").prediction[0]
    normals, _ = predictor.merge(member, (H, W))
    np.testing.assert_allclose(normals, ref.numpy(), atol=1e-4)
    assert normals[2].min() >= -1e-6     # z only towards the viewer


# ----------------------------------------------------------------------------- the official geometry


def _official_rederived(predictor, rgb, members_idx, reduction):
    """The official pipeline's steps written out with torch alone: 8-bit antialiased resize,
    no padding, encode, DDIM, decode, clip + unit length per member, ensemble, antialiased
    resize back, clip (no unit length)."""
    vae, unet = predictor.vae, predictor.unet
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    h, w = rgb.shape[:2]
    res = predictor.processing_res
    if res:
        factor = min(res / w, res / h)
        size = (int(h * factor), int(w * factor))
        image = F.interpolate(image, size, mode="bilinear", antialias=True, align_corners=False).round().clamp(0, 255)
    image = image / 255.0 * 2.0 - 1.0
    latent = vae.encode(image).latent_dist.mean * vae.config.scaling_factor
    start = predictor.initial_latents("s", members_idx, tuple(latent.shape[-2:]))
    latent = latent.expand(len(members_idx), -1, -1, -1)
    x = start
    text = predictor.empty_text_embedding.expand(len(members_idx), -1, -1)
    scheduler = predictor.sampler.scheduler
    for t in scheduler.timesteps:
        eps = unet(torch.cat([latent, x], dim=1), t, encoder_hidden_states=text).sample
        x = scheduler.step(eps, t, x).prev_sample
    decoded = vae.decode(x / vae.config.scaling_factor).sample.clip(-1, 1)
    members = decoded / decoded.norm(dim=1, keepdim=True).clamp(min=1e-6)
    if len(members_idx) > 1:
        mean = members.mean(dim=0, keepdim=True)
        mean = mean / mean.norm(dim=1, keepdim=True).clamp(min=1e-6)
        if reduction == "mean":
            merged = mean
        else:
            cosine = (members * mean).sum(dim=1, keepdim=True)
            pick = cosine.argmax(dim=0, keepdim=True).repeat(1, 3, 1, 1)
            merged = members.gather(0, pick)
    else:
        merged = members
    merged = F.interpolate(merged, (h, w), mode="bilinear", antialias=True, align_corners=False)
    return merged[0].clip(-1, 1).numpy()


@pytest.mark.parametrize("steps,res", [(1, 0), (4, 32), (2, 45)])
@pytest.mark.parametrize("reduction", ["closest", "mean"])
def test_official_geometry_equals_rederivation(rgb, steps, res, reduction):
    predictor = _load(BUNDLED, steps=steps, processing_res=res, ensemble=3, ensembling=reduction, padding="none")
    assert predictor.settings["padding"] == "none"
    with torch.inference_mode():
        for idx in ([0], [0, 1, 2]):
            (members,) = predictor.predict([("s", rgb, idx)])
            normals, _ = predictor.merge(members, (H, W))
            np.testing.assert_allclose(normals, _official_rederived(predictor, rgb, idx, reduction), atol=1e-4)
    # clipped, not renormalised: the antialiased resize leaves some vectors short of unit length
    norms = np.linalg.norm(normals, axis=0)
    assert norms.max() <= math.sqrt(3) and norms.min() < 0.999
    assert np.abs(normals).max() <= 1.0


def test_geometries_differ_only_in_the_output_step(rgb):
    """At native resolution with sides that are multiples of the VAE factor, the two geometries
    give the same members; the merged maps differ by the finishing step alone."""
    image = rgb[:36, :48]
    padded = _load(BUNDLED, steps=1, ensemble=2, padding="replicate")
    plain = _load(BUNDLED, steps=1, ensemble=2, padding="none")
    (a,), (b,) = padded.predict([("s", image, [0, 1])]), plain.predict([("s", image, [0, 1])])
    np.testing.assert_allclose(a, b, atol=1e-5)
    na, _ = padded.merge(a, (72, 96))
    nb, _ = plain.merge(a, (72, 96))
    up = F.interpolate(torch.from_numpy(ensemble_normals(torch.from_numpy(a))[0].numpy())[None], (72, 96),
                       mode="bilinear", antialias=False)[0]
    np.testing.assert_allclose(na, (up / up.norm(dim=0, keepdim=True).clamp(min=1e-6)).numpy(), atol=1e-6)
    np.testing.assert_allclose(nb, up.clip(-1, 1).numpy(), atol=1e-6)   # enlarging: antialias changes nothing


# ----------------------------------------------------------------------------- ensembling


def test_ensemble_by_hand():
    # one pixel, three members: two close to +z, one along +x
    a, b, c = np.array([0.0, 0.1, 1.0]), np.array([0.1, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
    members = np.stack([v / np.linalg.norm(v) for v in (a, b, c)])
    tensor = torch.from_numpy(members).float()[:, :, None, None]
    mean = members.mean(axis=0) / np.linalg.norm(members.mean(axis=0))
    angles = np.arccos(np.clip(members @ mean, -1, 1))
    merged, unc = ensemble_normals(tensor, "mean")
    np.testing.assert_allclose(merged[:, 0, 0], mean, atol=1e-6)
    np.testing.assert_allclose(unc[0, 0], angles.mean() / np.pi, atol=1e-6)
    merged, _ = ensemble_normals(tensor, "closest")
    np.testing.assert_allclose(merged[:, 0, 0], members[np.argmax(members @ mean)], atol=1e-6)
    assert ensemble_normals(tensor, "closest", output_uncertainty=False)[1] is None


def test_ensembling_values():
    assert resolve_normals_ensembling(None) == {"reduction": "closest"}
    assert resolve_normals_ensembling("diffusers") == {"reduction": "closest"}
    assert resolve_normals_ensembling("official") == {"reduction": "closest"}
    assert resolve_normals_ensembling({"reduction": "mean"}) == {"reduction": "mean"}
    for bad in ("cvpr", "median", {"reduction": "closest", "max_iter": 2}):
        with pytest.raises(InferenceSettingsError, match="closest|only a reduction"):
            resolve_normals_ensembling(bad)
    with pytest.raises(InferenceSettingsError, match="does not apply to surface normals"):
        _load(BUNDLED, ensembling="official-2024")


# ----------------------------------------------------------------------------- interface, family


def test_interface_and_settings(rgb):
    predictor = _load(BUNDLED, ensemble=2)
    check_predictor(predictor)
    assert task_of(predictor) == "normals" and predictor.frame == "opengl"
    assert output_space_of(predictor) == "normals"
    settings = json.loads(json.dumps(predictor.settings))
    assert settings["task"] == "normals" and settings["frame"] == "opengl" and settings["output_space"] == "normals"
    assert settings["family"] == "marigold-normals" and settings["ensembling"] == {"reduction": "closest"}
    from marigold_bench.eval.resize import RESIZE_MODES

    assert settings["resample_output"] not in RESIZE_MODES   # the cache asks merge for the full size
    (members,) = predictor.predict([("s", rgb, [0, 1])])
    with pytest.raises(PredictionError, match="M x 3"):
        predictor.merge(members[:, :2])


def test_check_predictor_refuses_a_normals_predictor_without_frame():
    predictor = _load(BUNDLED)

    class NoFrame:
        task, frame, output_space = "normals", None, "normals"
        settings = {**predictor.settings, "frame": None}
        predict, merge = predictor.predict, predictor.merge

    with pytest.raises(TypeError, match="frame"):
        check_predictor(NoFrame())


def test_families_split_depth_and_normals(tiny_checkpoint):
    from marigold_bench.inference.families import family_for, get_family

    assert family_for(str(BUNDLED)).name == "marigold-normals"
    assert family_for(str(tiny_checkpoint)).name == "marigold"
    assert not get_family("marigold").claims(str(BUNDLED), BUNDLED)
    assert not get_family("marigold-normals").claims(str(tiny_checkpoint), Path(tiny_checkpoint))
    family = get_family("marigold-normals")
    with pytest.raises(InferenceSettingsError, match="--recipe"):
        family.check({"recipe": "e2e-ft"}, str(BUNDLED))
    predictor = family.build(str(BUNDLED), {"steps": 2, "ensemble": 3, "device": "cpu", "ensembling": "mean"})
    assert (predictor.steps, predictor.ensemble, predictor.ensembling["reduction"]) == (2, 3, "mean")


def test_registry_entry():
    from marigold_bench.commands.models import rows
    from marigold_bench.inference.registry import lookup

    entry = lookup("marigold-normals-v1-1")
    assert entry is lookup("prs-eth/marigold-normals-v1-1")
    assert (entry.family, entry.output_space, entry.steps, entry.processing_res) == ("marigold-normals", "normals", 4, 768)
    assert "marigold-normals-v1-1" in [r["name"] for r in rows(family="marigold-normals")]


# ----------------------------------------------------------------------------- bad input


def test_nan_members_and_nan_model_output(rgb):
    predictor = _load(BUNDLED)
    (members,) = predictor.predict([("a", rgb, [0, 1])])
    members[1, 0, 3, 4] = np.nan
    with pytest.raises(PredictionError, match="NaN"):
        predictor.merge(members, (H, W))

    decode = predictor._decode_raw

    def broken(latent):
        out = decode(latent)
        out[0, 1, 2, 2] = float("nan")   # the first member of each batch
        return out

    predictor._decode_raw = broken
    with pytest.raises(PredictionError) as info:
        predictor.predict([("bad", rgb, [0]), ("good", rgb[::-1].copy(), [0])])
    assert info.value.sample_ids == ["bad"] and info.value.results[0] is None
    assert info.value.results[1].shape[:2] == (1, 3)


def test_depth_checkpoint_is_no_normals_checkpoint(tiny_checkpoint):
    from marigold_bench.errors import CheckpointError

    with pytest.raises(CheckpointError, match="normals"):
        _load(tiny_checkpoint)


def test_predict_command_writes_normals(tmp_path):
    from PIL import Image

    from marigold_bench.cli import main

    rgb = np.random.default_rng(2).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["predict", "--input", str(tmp_path / "a.png"), "--out", str(out), "--model", str(BUNDLED),
                 "--ensemble", "2", "--device", "cpu"]) == 0
    normals = np.load(out / "a_normals.npy")
    assert normals.shape == (3, 30, 41) and normals.dtype == np.float32
    png = np.asarray(Image.open(out / "a_normals.png"))
    np.testing.assert_array_equal(png, ((np.clip(normals, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0))
    assert np.load(out / "a_uncertainty.npy").shape == (30, 41) and (out / "a_uncertainty.png").is_file()
    assert not list(out.glob("*_depth*"))
    settings = json.loads((out / "settings.json").read_text())
    assert settings["task"] == "normals" and settings["frame"] == "opengl"
    # a depth-only ensembling preset and a depth output space are refused, exit 2
    assert main(["predict", "--input", str(tmp_path / "a.png"), "--out", str(out), "--model", str(BUNDLED),
                 "--ensembling", "cvpr"]) == 2
    assert main(["predict", "--input", str(tmp_path / "a.png"), "--out", str(out), "--model", str(BUNDLED),
                 "--output-space", "depth_metric"]) == 2


def test_benchmark_seed_is_suggested_and_the_users_wins():
    """The official normals scripts re-seed per benchmark (NYUv2 4321): `run` passes the spec's
    seed as a suggestion, so the default run is the official one and ``--seed`` still wins."""
    from marigold_bench.cli import build_parser
    from marigold_bench.commands.common import build_predictor
    from marigold_bench.data.registry import get_benchmark

    spec = get_benchmark("nyu", task="normals")
    assert spec.seed == 4321   # the official script/normals NYUv2 inference seed
    tiny = str(Path(__file__).resolve().parents[1] / "marigold_bench" / "checkpoints" / "tiny-normals")
    args = build_parser().parse_args(["run", "--dataset", "nyu", "--model", tiny, "--steps", "1"])
    assert build_predictor(args, processing_res=64, seed=spec.seed).settings["seed"] == 4321
    args = build_parser().parse_args(["run", "--dataset", "nyu", "--model", tiny, "--steps", "1", "--seed", "7"])
    assert build_predictor(args, processing_res=64, seed=spec.seed).settings["seed"] == 7


def test_registry_gives_marigold_normals_v1_1_its_official_ensemble(monkeypatch):
    """marigold-normals-v1-1's row carries the official evaluation's ensemble of 10: a run with no
    ``--ensemble`` gets it, an explicit one wins; depth rows carry none (one member by default)."""
    from marigold_bench.inference import registry
    from marigold_bench.inference.marigold_normals_family import FAMILY

    entry = registry.KNOWN_MODELS["marigold-normals-v1-1"]
    assert (entry.steps, entry.ensemble) == (4, 10)
    assert all(e.ensemble is None for e in registry.KNOWN_MODELS.values() if e.family != "marigold-normals")
    tiny = str(Path(__file__).resolve().parents[1] / "marigold_bench" / "checkpoints" / "tiny-normals")
    # the tiny checkpoint stands in for the cached hub folder the row resolves to
    monkeypatch.setattr(registry, "lookup_path", lambda model: entry if model == tiny else None)
    assert FAMILY.build(tiny, {"steps": 1, "processing_res": 32}).settings["ensemble"] == 10
    assert FAMILY.build(tiny, {"steps": 1, "processing_res": 32, "ensemble": 2}).settings["ensemble"] == 2
