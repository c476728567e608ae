"""Model families: the Predictor contract for every registered family, a family added by one
spec file (``--include``) running end to end, settings a family cannot honour refused by name,
and a folder no family claims named as such."""

import argparse
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from marigold_bench.cli import main
from marigold_bench.errors import CheckpointError, InferenceSettingsError
from marigold_bench.inference.families import Family, all_families, family_for, family_names, get_family
from marigold_bench.inference.interface import REQUIRED_SETTINGS, check_predictor, output_space_of, task_of
from marigold_bench.output_spaces import is_point_map
from marigold_bench.plugins import INCLUDE_ENV, PluginWarning

INCLUDE = Path(__file__).resolve().parent / "include_family"
BUILT_INS = ["baseline", "marigold", "marigold-normals", "transformers", "moge"]


@pytest.fixture
def plane_family(monkeypatch):
    """The test-only ``plane`` family, included as a user would (``--include``'s environment)."""
    monkeypatch.setenv(INCLUDE_ENV, str(INCLUDE))
    return get_family("plane")


def _transformers_example(folder):
    from fixtures_transformers import make_tiny_depth_model

    return str(make_tiny_depth_model(folder / "dpt", "dpt"))


def _moge_example(folder):
    from fixtures_moge import write_checkpoint

    return str(write_checkpoint(folder / "moge"))


#: tiny models of the families that offer no `Family.example` of their own
FIXTURES = {"transformers": _transformers_example, "moge": _moge_example}


def _example(family: Family, folder: Path) -> str:
    model = family.example(folder) or (FIXTURES[family.name](folder) if family.name in FIXTURES else None)
    if model is None:
        pytest.fail(f"family {family.name!r} has no example model and no fixture: the contract cannot run on it")
    return model


def _images():
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (20, 28, 3), dtype=np.uint8), rng.integers(0, 256, (24, 18, 3), dtype=np.uint8)


def check_family_contract(family: Family, folder: Path) -> None:
    """What the run loop, the cache and ``predict`` rely on, for one family's tiny model."""
    model = _example(family, folder)
    assert family_for(model) is family, f"{family.name} does not claim its own example {model}"
    settings = {k: v for k, v in {"device": "cpu", "ensemble": 2}.items() if k in family.settings}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # tiny checkpoints lack defaults; N=2 of a deterministic model
        predictor = family.build(model, settings)
    check_predictor(predictor)
    recorded = json.loads(json.dumps(predictor.settings))   # JSON-serialisable, as a run records it
    assert set(REQUIRED_SETTINGS) <= set(recorded)
    assert recorded["family"] == family.name and recorded["ensemble"] == settings.get("ensemble", 1)
    assert output_space_of(predictor) == recorded["output_space"]
    if family.output_space is not None:
        assert predictor.output_space == family.output_space

    first, second = _images()
    raw = predictor.predict([("a", first, [0, 1]), ("b", second, [1])])
    assert len(raw) == 2
    assert [r.dtype for r in raw] == [np.float32, np.float32]
    # a normals or point-map predictor's members and merged maps carry 3 channels (x, y, z) before h x w
    channels = (3,) if task_of(predictor) == "normals" or is_point_map(output_space_of(predictor)) else ()
    assert raw[0].ndim == 3 + len(channels) and raw[0].shape[0] == 2 and raw[1].shape[0] == 1
    # member k does not depend on which other members were drawn with it (the cache merges subsets)
    # (normals: making a decoded vector unit length scales batch round-off up where it is short)
    np.testing.assert_allclose(raw[1][0], predictor.predict([("b", second, [0, 1])])[0][1],
                               atol=1e-4 if channels else 1e-5)
    for image, members in ((first, raw[0]), (second, raw[1])):
        merged, spread = predictor.merge(members, image.shape[:2])
        assert merged.dtype == np.float32 and merged.shape == channels + image.shape[:2] and np.isfinite(merged).all()
        assert spread is None or (spread.shape == image.shape[:2] and spread.dtype == np.float32)
        if family.value_range is not None:
            lo, hi = family.value_range
            assert lo - 1e-5 <= merged.min() and merged.max() <= hi + 1e-5
        native, _ = predictor.merge(members, None)
        assert native.shape == channels + members.shape[-2:]


@pytest.mark.parametrize("name", family_names())
def test_every_registered_family_keeps_the_predictor_contract(name, tmp_path, monkeypatch):
    from fixtures_moge import install

    install(monkeypatch)   # MoGe is not on PyPI: its family runs on a stand-in moge package
    check_family_contract(get_family(name), tmp_path)


def test_a_plugin_family_runs_the_same_contract(plane_family, tmp_path):
    assert plane_family.origin == f"include {INCLUDE / 'plane.py'}"
    check_family_contract(plane_family, tmp_path)


def test_the_built_in_families_and_their_order():
    assert family_names()[:5] == BUILT_INS
    assert all(f.origin == "built-in" for f in all_families()[:4])
    with pytest.raises(InferenceSettingsError, match="unknown model family 'lotus'.*baseline, marigold, marigold-normals, transformers"):
        get_family("lotus")


# ----------------------------------------------------------------------------- a family in one file


def _synthetic_abs_rel_and_delta1(value: float, n: int) -> tuple[float, float]:
    """By hand from the ground truth: a plane at ``value`` metres scored without alignment."""
    from marigold_bench.data import load_dataset

    dataset = load_dataset("synthetic")
    abs_rel, delta1 = [], []
    for i in range(n):
        item = dataset[i]
        d = item["depth"][item["valid"]].astype(np.float64)
        abs_rel.append(np.mean(np.abs(value - d) / d))
        delta1.append(np.mean(np.maximum(value / d, d / value) < 1.25))
    return float(np.mean(abs_rel)), float(np.mean(delta1))


def test_an_included_family_runs_end_to_end(plane_family, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "plane:2", "--max-samples", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["family"] == "plane" and summary["scoring"]["alignment"] == "none"
    abs_rel, delta1 = _synthetic_abs_rel_and_delta1(2.0, 2)
    assert summary["n"] == 2
    assert summary["metrics"]["abs_rel"] == pytest.approx(abs_rel, rel=1e-6)
    assert summary["metrics"]["delta1"] == pytest.approx(delta1, rel=1e-6)


def test_a_setting_the_family_cannot_honour_is_refused_by_name(plane_family, tmp_path, capsys):
    code = main(["run", "--dataset", "synthetic", "--model", "plane:2", "--max-samples", "1", "--steps", "3",
                 "--precision", "bf16", "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--model plane:2 is a constant plane" in err and "--steps 3, --precision bf16 cannot apply" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_leaderboard_drops_what_a_family_cannot_honour_and_reports_it(plane_family):
    from marigold_bench.commands.common import add_inference_flags, drop_unhonoured
    from marigold_bench.commands.run import add_dataset_flags

    parser = argparse.ArgumentParser()
    add_dataset_flags(parser)
    add_inference_flags(parser)
    args = parser.parse_args(["--dataset", "synthetic", "--model", "plane:2", "--steps", "3", "--ensemble", "2"])
    kept, dropped = drop_unhonoured(args)
    assert dropped == ["--steps 3"] and kept.steps is None and kept.ensemble == 2 and args.steps == 3


# ----------------------------------------------------------------------------- claims


def _copy_with_index(tiny_checkpoint, folder, **changes):
    shutil.copytree(tiny_checkpoint, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def test_a_diffusers_folder_of_another_pipeline_is_claimed_by_no_family(tiny_checkpoint, tmp_path, capsys):
    lotus = _copy_with_index(tiny_checkpoint, tmp_path / "lotus", _class_name="LotusGPipeline")
    with pytest.raises(CheckpointError, match=r"no model family recognises .*\(tried: baseline, marigold, "
                                              r"marigold-normals, transformers, moge\).*LotusGPipeline"):
        family_for(str(lotus))
    assert main(["run", "--dataset", "synthetic", "--model", str(lotus), "--max-samples", "1",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no model family recognises" in err and "Traceback" not in err


def test_the_families_tried_include_plugins(plane_family, tmp_path):
    (tmp_path / "weights.ckpt").write_bytes(b"\0")
    with pytest.raises(CheckpointError, match=r"tried: baseline, marigold, marigold-normals, transformers, moge, plane\).*"
                                              r"Found: weights.ckpt"):
        family_for(str(tmp_path))


def test_which_checkpoints_the_marigold_family_claims(tiny_checkpoint, tmp_path):
    marigold = get_family("marigold")
    assert family_for(str(tiny_checkpoint)) is marigold
    # the original Marigold code's class, and E2E-FT's Stable Diffusion export (8-channel UNet)
    assert family_for(str(_copy_with_index(tiny_checkpoint, tmp_path / "v0", _class_name="MarigoldPipeline"))) \
        is marigold
    e2e = _copy_with_index(tiny_checkpoint, tmp_path / "e2e", _class_name="StableDiffusionPipeline")
    assert family_for(str(e2e)) is marigold
    # Stable Diffusion itself (a 4-channel UNet) is no depth model: nobody claims it, and the
    # message says what to do
    sd = _copy_with_index(tiny_checkpoint, tmp_path / "sd", _class_name="StableDiffusionPipeline")
    unet = json.loads((sd / "unet" / "config.json").read_text())
    (sd / "unet" / "config.json").write_text(json.dumps({**unet, "in_channels": 4}))
    with pytest.raises(CheckpointError, match="tried: .*Stable Diffusion checkpoint.*Convert it"):
        family_for(str(sd))
    # a normals checkpoint is the normals family's, by its class or its declared prediction type
    normals = _copy_with_index(tiny_checkpoint, tmp_path / "normals", _class_name="MarigoldNormalsPipeline")
    assert family_for(str(normals)) is get_family("marigold-normals")
    declared = _copy_with_index(tiny_checkpoint, tmp_path / "declared", prediction_type="normals")
    assert family_for(str(declared)) is get_family("marigold-normals")
    assert not marigold.claims(str(declared), declared)


def test_a_name_claim_comes_before_any_file(plane_family, tmp_path, monkeypatch):
    # a folder called "plane:3" in the working directory is still the plane family's model
    monkeypatch.chdir(tmp_path)
    Path("plane:3").mkdir()
    assert family_for("plane:3") is plane_family and family_for("baseline:ramp") is get_family("baseline")


# ----------------------------------------------------------------------------- plugins that are wrong


def test_a_plugin_that_is_no_family_or_shadows_a_built_in_is_left_out_with_a_warning(tmp_path, monkeypatch):
    (tmp_path / "not_a_family.py").write_text("FAMILY = 'marigold'\n")
    (tmp_path / "shadow.py").write_text(
        "from marigold_bench.inference.families import Family\n"
        "class Shadow(Family):\n    name = 'marigold'\n    description = 'an impostor'\n"
        "FAMILY = Shadow()\n")
    monkeypatch.setenv(INCLUDE_ENV, str(tmp_path))
    with pytest.warns(PluginWarning) as record:
        names = family_names()
    messages = " | ".join(str(w.message) for w in record)
    assert "not_a_family.py: provides a str, not a marigold_bench Family" in messages
    assert "shadow.py: a family named 'marigold' exists already (built-in)" in messages
    assert names == BUILT_INS and get_family("marigold").description != "an impostor"


# ----------------------------------------------------------------------------- the command line


def test_settings_are_what_the_user_set():
    from marigold_bench.cli import build_parser
    from marigold_bench.commands.common import settings_from_args

    args = build_parser().parse_args(["run", "--dataset", "synthetic", "--steps", "4", "--compile",
                                      "--noise", "gaussian", "--output-space", "depth_metric"])
    # --noise gaussian is the default: no request; the switch reads True
    assert settings_from_args(args) == {"steps": 4, "compile": True, "output_space": "depth_metric"}
    assert settings_from_args(build_parser().parse_args(["run", "--dataset", "synthetic"])) == {}


def test_png_scaling_follows_the_family_value_range():
    from marigold_bench.commands.predict import display_map, png_scaling

    assert png_scaling(get_family("marigold").value_range) == "none"
    assert png_scaling(get_family("baseline").value_range) == "none"
    assert png_scaling(get_family("transformers").value_range) == "min-max"
    assert png_scaling((0, 10)) == "0..10"
    depth = np.array([[2.5, 5.0], [7.5, 10.0]], np.float32)
    np.testing.assert_allclose(display_map(depth, "0..10"), [[0.25, 0.5], [0.75, 1.0]])
    np.testing.assert_allclose(display_map(depth, "min-max"), [[0, 1 / 3], [2 / 3, 1]], atol=1e-7)


def test_models_family_filter_reads_the_registry(capsys):
    assert main(["models", "--family", "transformers", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert rows and all(r.split(",")[1] == "transformers" for r in rows)
    assert main(["models", "--family", "lotus"]) == 2
    assert "unknown model family 'lotus'" in capsys.readouterr().err


@pytest.fixture
def fresh_registry():
    """The registry found anew for the test and forgotten after it (entry points are read once)."""
    from marigold_bench.inference.families import reset_registry

    reset_registry()
    yield
    reset_registry()


def test_an_installed_plugin_family_claims_what_no_built_in_does(tiny_checkpoint, tmp_path, monkeypatch,
                                                                  fresh_registry):
    """An entry point (group ``marigold_bench.families``) adds a family for a pipeline the
    built-ins do not know, and the registry asks it after them."""
    from importlib import metadata

    class LotusFamily(Family):
        name = "lotus"
        description = "a Lotus depth checkpoint"

        def claims(self, model, path):
            from marigold_bench.model.load import pipeline_class

            return path is not None and pipeline_class(path) == "LotusGPipeline"

    class Point:
        name, value = "lotus", "lotus_plugin:FAMILY"
        dist = argparse.Namespace(name="lotus-plugin")

        def load(self):
            return LotusFamily()

    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None, **kw: [Point()] if group == "marigold_bench.families" else real(group=group))
    lotus = _copy_with_index(tiny_checkpoint, tmp_path / "lotus", _class_name="LotusGPipeline")
    family = family_for(str(lotus))
    assert family.name == "lotus" and family.origin == "plugin lotus-plugin (lotus = lotus_plugin:FAMILY)"
    assert family_for(str(tiny_checkpoint)).name == "marigold"


def test_a_mistyped_family_prefix_lists_the_prefixes_families_claim(plane_family):
    with pytest.raises(CheckpointError, match=r"'baselin:ramp'.*model names families claim: baseline:\.\.\., "
                                              r"plane:\.\.\."):
        family_for("baselin:ramp")
