"""The transformers adapter against `transformers.pipeline("depth-estimation")`, output spaces,
kind detection and bad input (tiny random models built by tests/fixtures_transformers.py)."""

import argparse
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures_transformers import ALL_ARCHS, ARCHS, HAS_TORCHVISION, make_tiny_depth_model
from marigold_bench.errors import CheckpointError, InferenceSettingsError, PredictionError
from marigold_bench.inference.interface import check_predictor
from marigold_bench.inference.transformers_depth import TransformersDepthPredictor, output_space_for
from marigold_bench.model.load import detect_kind

pytestmark = pytest.mark.usefixtures("one_thread")

#: every architecture; those whose processors need torchvision show as skipped without it
ARCH_PARAMS = [a if a in ARCHS else pytest.param(a, marks=pytest.mark.skip(reason="needs torchvision"))
               for a in ALL_ARCHS]

#: what each architecture predicts (docs/parity.md, "transformers depth estimators")
EXPECTED_SPACE = {"dpt": "disparity_affine_invariant", "depth_anything": "disparity_affine_invariant",
                  "depth_anything_metric": "depth_metric", "glpn": "depth_metric", "zoedepth": "depth_metric",
                  "depth_pro": "depth_metric"}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_transformers")
    return {arch: make_tiny_depth_model(root / arch, arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def images():
    """Three images, two sizes (and aspect ratios): the first and last share a processed size."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), rng.integers(0, 256, (50, 36, 3), dtype=np.uint8),
            rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)]


def _load(path, **kw):
    kw.setdefault("device", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TransformersDepthPredictor.from_pretrained(str(path), **kw)


def _pipeline(path):
    from transformers import pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline("depth-estimation", model=str(path), device="cpu", dtype=torch.float32)


def _count_forwards(predictor):
    calls = []
    predictor.model.register_forward_hook(lambda module, args, kwargs_or_out, *rest: calls.append(1))
    return calls


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("defer", [None, False], ids=["resize-in-merge", "postprocess-in-predict"])
@pytest.mark.parametrize("arch", ARCH_PARAMS)
def test_parity_with_depth_estimation_pipeline(tiny_models, images, arch, defer):
    pipe = _pipeline(tiny_models[arch])
    predictor = _load(tiny_models[arch])
    if defer is not None:
        predictor.defer_resize = defer
    calls = _count_forwards(predictor)
    raws = predictor.predict([(f"img{i}", im, [0]) for i, im in enumerate(images)])
    # batched: one forward per processed size, not one per image
    shapes = {tuple(pipe.image_processor(images=Image.fromarray(im), return_tensors="pt")["pixel_values"].shape)
              for im in images}
    assert len(calls) == len(shapes) < len(images)
    for image, raw in zip(images, raws):
        expected = pipe(Image.fromarray(image))["predicted_depth"].numpy()
        ours, uncertainty = predictor.merge(raw, image.shape[:2])
        assert uncertainty is None and ours.shape == expected.shape == image.shape[:2]
        spread = float(expected.max() - expected.min())
        assert spread > 1e-3                                  # the fixture's outputs vary
        assert np.abs(ours - expected).max() <= 1e-4 * spread


def test_postprocessing_that_is_not_a_plain_resize_runs_inside_predict(tiny_models, images):
    base = _load(tiny_models["dpt"])
    assert base.defer_resize and base.settings["postprocess"] == "merge"
    processor = base.image_processor
    plain_post = processor.post_process_depth_estimation
    processor.post_process_depth_estimation = lambda outputs, sizes: [
        {"predicted_depth": 2 * r["predicted_depth"] + 1} for r in plain_post(outputs, sizes)]
    odd = TransformersDepthPredictor(base.model, processor, model_name="odd", device="cpu")
    assert not odd.defer_resize and odd.settings["postprocess"] == "predict"
    image = images[1]
    (raw,) = odd.predict([("a", image, [0])])
    assert raw.shape == (1, *image.shape[:2])                  # already at the input size
    del processor.post_process_depth_estimation
    (plain,) = base.predict([("a", image, [0])])
    expected = 2 * base.merge(plain, image.shape[:2])[0] + 1
    np.testing.assert_allclose(odd.merge(raw, image.shape[:2])[0], expected, rtol=0, atol=1e-5)


def test_members_are_copies_and_merge_none_keeps_model_resolution(tiny_models, images):
    with pytest.warns(UserWarning, match="deterministic"):
        predictor = TransformersDepthPredictor.from_pretrained(str(tiny_models["dpt"]), device="cpu", ensemble=3)
    calls = _count_forwards(predictor)
    (members,) = predictor.predict([("a", images[0], [0, 1, 2])])
    assert len(calls) == 1 and members.shape[0] == 3
    np.testing.assert_array_equal(members[0], members[2])
    kept, _ = predictor.merge(members, None)
    # DPT's head doubles the 32 x 32 processed input: the map stays at the model's resolution
    assert kept.shape == (64, 64)
    np.testing.assert_array_equal(kept, members[0])
    assert predictor.settings["resample_output"] == "bicubic" and predictor.settings["ensembling"] is None


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_half_precisions_run_and_are_recorded(tiny_models, images, precision, dtype):
    fp32 = _load(tiny_models["glpn"])
    half = _load(tiny_models["glpn"], precision=precision)
    assert next(half.model.parameters()).dtype == dtype
    (a,), (b,) = fp32.predict([("a", images[0], [0])]), half.predict([("a", images[0], [0])])
    assert b.dtype == np.float32 and np.isfinite(b).all()
    # 8 (bf16) or 11 (fp16) bits of mantissa: close to fp32, not equal
    assert 0 < np.abs(a - b).max() < 0.1 * (a.max() - a.min())
    assert half.settings["precision"] == precision


# ----------------------------------------------------------------------------- output spaces


@pytest.mark.parametrize("arch", ARCH_PARAMS)
def test_output_space_declared_per_architecture(tiny_models, arch):
    predictor = _load(tiny_models[arch])
    check_predictor(predictor)
    assert predictor.output_space == EXPECTED_SPACE[arch]
    settings = predictor.settings
    json.dumps(settings)
    assert settings["family"] == "transformers" and settings["output_space"] == EXPECTED_SPACE[arch]
    assert settings["architecture"] == json.loads((tiny_models[arch] / "config.json").read_text())["model_type"]
    assert len(settings["weights_sha256"]) == 64


def test_output_space_override_is_recorded(tiny_models):
    predictor = _load(tiny_models["depth_anything"], output_space="depth_affine_invariant")
    assert predictor.output_space == predictor.settings["output_space"] == "depth_affine_invariant"
    assert predictor.settings["declared_output_space"] == "disparity_affine_invariant"
    with pytest.raises(InferenceSettingsError, match="unknown output space 'inverse'"):
        _load(tiny_models["depth_anything"], output_space="inverse")


def test_unknown_architecture_needs_an_explicit_output_space():
    config = argparse.Namespace(model_type="tipsv2_dpt")
    with pytest.raises(InferenceSettingsError, match="--output-space"):
        output_space_for(config)


# ----------------------------------------------------------------------------- kinds and bad input


def test_kind_is_detected_from_the_files(tiny_models, tiny_checkpoint):
    assert detect_kind(tiny_models["dpt"]) == "transformers"
    assert detect_kind(tiny_checkpoint) == "marigold"


def test_folder_of_neither_kind_says_what_it_found(tmp_path):
    (tmp_path / "weights.ckpt").write_bytes(b"\0")
    (tmp_path / "notes").mkdir()
    with pytest.raises(CheckpointError, match=r"neither a diffusers.*Found: notes/, weights.ckpt"):
        detect_kind(tmp_path)


def test_a_component_folder_of_a_diffusers_checkpoint(tiny_checkpoint):
    with pytest.raises(CheckpointError, match=r"one component \(UNet2DConditionModel\).*model_index.json"):
        detect_kind(tiny_checkpoint / "unet")


def test_config_without_image_processor(tiny_models, tmp_path):
    (tmp_path / "config.json").write_text((tiny_models["dpt"] / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"model_type 'dpt'.*no preprocessor_config.json"):
        detect_kind(tmp_path)


def test_truncated_weights_are_a_clear_error_from_the_command_line(tiny_models, tmp_path, capsys):
    import shutil

    from marigold_bench.cli import main

    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["dpt"], broken)
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    code = main(["run", "--dataset", "synthetic", "--max-samples", "1", "--model", str(broken),
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert "cannot load transformers depth model" in capsys.readouterr().err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_transformers_model_that_is_not_a_depth_estimator(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    ViTForImageClassification(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=16, image_size=16, patch_size=8)).save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"model_type 'vit'.*ViTForImageClassification.*not a depth estimator"):
        TransformersDepthPredictor.from_pretrained(str(tmp_path), device="cpu")


def test_hub_id_not_in_the_cache_names_the_download_command(tmp_path, monkeypatch):
    from marigold_bench.commands.common import add_inference_flags, build_predictor

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    parser = argparse.ArgumentParser()
    add_inference_flags(parser)
    with pytest.raises(CheckpointError, match="hf download Intel/dpt-large"):
        build_predictor(parser.parse_args(["--model", "Intel/dpt-large"]))


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed here")
def test_zoedepth_without_torchvision_names_the_extra(tmp_path):
    path = make_tiny_depth_model(tmp_path / "zoe", "zoedepth")   # the model builds; its processor's
    with pytest.raises(InferenceSettingsError, match=r"torchvision.*marigold-bench\[vision\]"):  # post-processing
        TransformersDepthPredictor.from_pretrained(str(path), device="cpu")       # needs torchvision


def test_nan_for_one_image_fails_that_sample_and_the_run_continues(tiny_models, tmp_path):
    from marigold_bench.data import load_dataset
    from marigold_bench.eval.evaluator import run_predictor

    dataset = load_dataset("synthetic", split="test:3")
    predictor = _load(tiny_models["depth_anything"])
    bad = predictor._preprocess("x", dataset[1]["rgb"])["pixel_values"][0]
    forward = predictor.model.forward

    def poisoned(pixel_values, **kw):
        out = forward(pixel_values=pixel_values, **kw)
        for b in range(len(pixel_values)):
            if torch.equal(pixel_values[b], bad):
                out.predicted_depth[b, 3, 5] = float("nan")
        return out

    predictor.model.forward = poisoned
    with pytest.raises(PredictionError) as caught:
        predictor.predict([(dataset.ids[i], dataset[i]["rgb"], [0]) for i in range(3)])
    assert caught.value.sample_ids == [dataset.ids[1]]
    assert [r is None for r in caught.value.results] == [False, True, False]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run_predictor(dataset, predictor, str(tmp_path / "run"), progress=False, images_per_batch=3)
    assert summary["n"] == 2 and summary["n_failed"] == 1
    rows = (tmp_path / "run" / "per_sample.csv").read_text()
    assert dataset.ids[1] in rows and "NaN/inf" in rows


def test_run_loop_batches_a_transformers_model_on_the_cpu(tiny_models, tmp_path):
    """images_per_batch 0 (auto) hands the adapter several images per call on the CPU too,
    and they go through one forward pass per processed size."""
    from marigold_bench.data import load_dataset
    from marigold_bench.eval.evaluator import resolve_images_per_batch, run_predictor

    dataset = load_dataset("synthetic", split="test:4")  # one image size
    predictor = _load(tiny_models["dpt"], batch_size=4)
    assert resolve_images_per_batch(0, predictor) == 4
    calls = _count_forwards(predictor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run_predictor(dataset, predictor, str(tmp_path / "run"), progress=False)
    assert summary["n"] == 4 and len(calls) == 1


# ----------------------------------------------------------------------------- commands


def _inference_args(argv):
    from marigold_bench.commands.common import add_inference_flags

    parser = argparse.ArgumentParser()
    add_inference_flags(parser)
    parser.add_argument("--output-space", default=None)
    return parser.parse_args(argv)


def test_build_predictor_dispatches_on_the_files(tiny_models):
    from marigold_bench.commands.common import build_predictor

    predictor = build_predictor(_inference_args(["--model", str(tiny_models["glpn"]), "--device", "cpu",
                                                 "--output-space", "depth_scale_invariant"]), processing_res=768)
    assert isinstance(predictor, TransformersDepthPredictor)
    assert predictor.settings["output_space"] == "depth_scale_invariant"


@pytest.mark.parametrize("flags,named", [(["--steps", "4"], "--steps 4"), (["--noise", "zeros"], "--noise zeros"),
                                         (["--processing-res", "512"], "--processing-res 512"),
                                         (["--tiny-vae", "x"], "--tiny-vae x"), (["--compile"], "--compile")])
def test_transformers_model_refuses_marigold_flags(tiny_models, flags, named):
    from marigold_bench.commands.common import build_predictor

    with pytest.raises(InferenceSettingsError, match=f"transformers depth model.*{named}"):
        build_predictor(_inference_args(["--model", str(tiny_models["dpt"]), "--device", "cpu", *flags]))


@pytest.mark.parametrize("flags,named", [(["--steps", "2"], "--steps 2"), (["--precision", "bf16"], "--precision bf16"),
                                         (["--timestep-spacing", "trailing"], "--timestep-spacing trailing"),
                                         (["--ensembling", "official"], "--ensembling official")])
def test_baseline_refuses_flags_it_cannot_honour(flags, named):
    from marigold_bench.commands.common import build_predictor

    with pytest.raises(InferenceSettingsError, match=f"baseline.*{named}"):
        build_predictor(_inference_args(["--model", "baseline:ramp", *flags]))
    assert build_predictor(_inference_args(["--model", "baseline:ramp", "--ensemble", "2"])).settings["ensemble"] == 2


def test_predict_writes_raw_disparity_and_records_the_output_space(tiny_models, images, tmp_path):
    from marigold_bench.commands import predict as predict_cmd

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, image in enumerate(images[:2]):
        Image.fromarray(image).save(inputs / f"im{i}.png")
    parser = argparse.ArgumentParser()
    predict_cmd.add_parser(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["predict", "--model", str(tiny_models["depth_anything"]), "--input", str(inputs),
                              "--out", str(out), "--device", "cpu"])
    assert predict_cmd.run(args) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["output_space"] == "disparity_affine_invariant" and settings["png_scaling"] == "min-max"
    pipe = _pipeline(tiny_models["depth_anything"])
    for i, image in enumerate(images[:2]):
        disparity = np.load(out / f"im{i}_disparity.npy")
        expected = pipe(Image.fromarray(image))["predicted_depth"].numpy()
        assert disparity.shape == image.shape[:2]
        assert np.abs(disparity - expected).max() <= 1e-4 * (expected.max() - expected.min())
        png = np.array(Image.open(out / f"im{i}_disparity_16bit.png")).astype(np.float64) / 65535
        np.testing.assert_allclose(png, (disparity - disparity.min()) / (disparity.max() - disparity.min()),
                                   atol=1e-4)
    assert not list(out.glob("*_depth.npy"))

    out2 = tmp_path / "out2"
    args = parser.parse_args(["predict", "--model", str(tiny_models["depth_anything"]), "--input", str(inputs),
                              "--out", str(out2), "--device", "cpu", "--output-space", "depth_metric"])
    assert predict_cmd.run(args) == 0
    assert json.loads((out2 / "settings.json").read_text())["output_space"] == "depth_metric"
    assert (out2 / "im0_depth.npy").is_file()
