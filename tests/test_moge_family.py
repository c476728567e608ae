"""The MoGe family against a stand-in ``moge`` package (tests/fixtures_moge.py; CI has no MoGe):
which folders and hub ids it claims, the registry rows, the Predictor contract, 3xHxW points in
OpenCV axes, what happens to pixels MoGe's mask rejects, settings honoured and refused, a
``run --protocol moge`` end to end, and the error when MoGe is not installed.

Expected points are the plane lifted by hand (tests/include_points/pointplane.plane_points),
independently of the fake's own lifting through the inverse intrinsics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.errors import InferenceSettingsError, MissingPackageError, PredictionError
from marigold_bench.inference.families import family_for, get_family
from marigold_bench.inference.interface import check_predictor
from marigold_bench.inference.registry import KNOWN_MODELS, lookup

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_moge  # noqa: E402
from include_points.pointplane import plane_points  # noqa: E402
from test_moge_pack import CENTRED, H, W, pack_root, rgb, write_sample  # noqa: E402

REVISION = "0123456789abcdef0123456789abcdef01234567"
INSTALL = "pip install git+https://github.com/microsoft/MoGe.git"


@pytest.fixture
def fake_moge(monkeypatch):
    return fixtures_moge.install(monkeypatch)


def _build(folder, **settings):
    settings.setdefault("device", "cpu")
    return get_family("moge").build(str(folder), settings)


def test_a_folder_with_moges_model_pt_is_claimed_and_others_are_not(tmp_path):
    folder = fixtures_moge.write_checkpoint(tmp_path / "moge")
    assert family_for(str(folder)).name == "moge"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "weights.pt").write_bytes(b"\0")
    assert not get_family("moge").claims(str(tmp_path / "other"), tmp_path / "other")
    assert not get_family("moge").claims(str(folder), None)   # by name alone: no


def test_a_cached_hub_id_and_its_registry_name_are_claimed(tmp_path, monkeypatch, fake_moge):
    cache = tmp_path / "hub"
    repo = cache / "models--Ruicheng--moge-2-vitl"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    fixtures_moge.write_checkpoint(repo / "snapshots" / REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for model in ("Ruicheng/moge-2-vitl", "moge-2-vitl"):
        assert family_for(model).name == "moge"
    predictor = _build("moge-2-vitl")
    assert predictor.settings["model_path"] == str(repo / "snapshots" / REVISION)


def test_registry_rows_of_the_public_checkpoints():
    # from microsoft/MoGe's README table: MoGe-1 has no metric scale, every MoGe-2 model has
    expected = {"moge-vitl": ("Ruicheng/moge-vitl", "points_scale_invariant"),
                "moge-2-vitl": ("Ruicheng/moge-2-vitl", "points_metric"),
                "moge-2-vitl-normal": ("Ruicheng/moge-2-vitl-normal", "points_metric"),
                "moge-2-vitb-normal": ("Ruicheng/moge-2-vitb-normal", "points_metric"),
                "moge-2-vits-normal": ("Ruicheng/moge-2-vits-normal", "points_metric")}
    rows = {name: e for name, e in KNOWN_MODELS.items() if e.family == "moge"}
    assert {name: (e.hub_id, e.output_space) for name, e in rows.items()} == expected
    assert lookup("ruicheng/MOGE-2-vitl").name == "moge-2-vitl"


@pytest.mark.parametrize("version, metric, space", [("v2", True, "points_metric"), ("v1", False, "points_scale_invariant"),
                                                    ("v2", False, "points_scale_invariant")])
def test_the_version_and_output_space_come_from_the_checkpoint_config(tmp_path, fake_moge, version, metric, space):
    predictor = _build(fixtures_moge.write_checkpoint(tmp_path / "m", version, metric))
    check_predictor(predictor)
    assert predictor.output_space == space and predictor.settings["moge_version"] == version
    json.dumps(predictor.settings)
    predictor.predict([("a", rgb(), [0])])
    assert fake_moge.calls[-1]["version"] == version


def test_points_are_3xhxw_in_opencv_axes_and_equal_the_plane_lifted_by_hand(tmp_path, fake_moge):
    predictor = _build(fixtures_moge.write_checkpoint(tmp_path / "m", plane_z=2.5, fx=0.8), ensemble=2)
    (members,) = predictor.predict([("a", rgb(), [0, 1])])
    assert members.shape == (2, 3, H, W) and members.dtype == np.float32
    expect = plane_points(2.5, 0.8, (H, W))
    np.testing.assert_allclose(members[1], expect, rtol=1e-6, atol=1e-6)
    x, y, z = members[0]
    # OpenCV: x grows to the right (columns), y downwards (rows), z forward (positive)
    assert (np.diff(x, axis=1) > 0).all() and (np.diff(y, axis=0) > 0).all() and (z > 0).all()
    merged, spread = predictor.merge(members, (H, W))
    assert spread is None and np.array_equal(merged, members[0])
    # a bilinear halving (align_corners=False) samples between pixel pairs: a plane's points,
    # linear in (u, v), stay the plane lifted at half size
    half, _ = predictor.merge(members, (H // 2, W // 2))
    np.testing.assert_allclose(half, plane_points(2.5, 0.8, (H // 2, W // 2)), rtol=1e-5, atol=1e-6)


def test_moges_mask_is_not_applied_so_rejected_pixels_keep_their_points(tmp_path, fake_moge):
    predictor = _build(fixtures_moge.write_checkpoint(tmp_path / "m"))
    (members,) = predictor.predict([("a", rgb(), [0])])
    call = fake_moge.calls[-1]
    # as MoGe's own evaluation (baselines/moge.py infer_for_evaluation): no mask, own camera
    assert call["apply_mask"] is False and call["fov_x"] is None and call["force_projection"] is True
    assert call["resolution_level"] == 9 and call["num_tokens"] is None and call["use_fp16"] is False
    # the top quarter is where the fake's mask is false: finite, and the plane there too
    top = members[0][:, : H // 4]
    assert np.isfinite(top).all()
    np.testing.assert_allclose(top, plane_points(2.0, 1.0, (H, W))[:, : H // 4], rtol=1e-6, atol=1e-6)


def test_non_finite_points_fail_only_their_sample(tmp_path, fake_moge, monkeypatch):
    predictor = _build(fixtures_moge.write_checkpoint(tmp_path / "m"))
    infer = fake_moge.infer

    def masked_for_small_images(self, image, **kwargs):
        # a model that writes inf (as MoGe's apply_mask does) for the 24-row image only
        return infer(self, image, **{**kwargs, "apply_mask": image.shape[-2] == 24})

    monkeypatch.setattr(fake_moge, "infer", masked_for_small_images)
    with pytest.raises(PredictionError, match="NaN/inf points for sample.*small") as caught:
        predictor.predict([("big", rgb(), [0]), ("small", rgb(24, 32), [0])])
    assert caught.value.sample_ids == ["small"]
    assert caught.value.results[1] is None and caught.value.results[0].shape == (1, 3, H, W)


def test_precision_and_batches(tmp_path, fake_moge):
    folder = fixtures_moge.write_checkpoint(tmp_path / "m")
    with pytest.warns(UserWarning, match="fp16 on the CPU"):
        predictor = _build(folder, precision="fp16", batch_size=2)
    predictor.predict([(str(i), rgb(seed=i), [0]) for i in range(3)] + [("odd", rgb(24, 32), [0])])
    # images of one size go together, two at a time; MoGe's autocast switch is on
    assert [c["shape"][0] for c in fake_moge.calls] == [2, 1, 1]
    assert all(c["use_fp16"] for c in fake_moge.calls) and predictor.settings["precision"] == "fp16"
    with pytest.raises(InferenceSettingsError, match="fp32 or fp16"):
        _build(folder, precision="bf16")


def test_diffusion_flags_are_refused_by_name(tmp_path, fake_moge, capsys):
    family = get_family("moge")
    with pytest.raises(InferenceSettingsError, match="--steps 4 cannot apply"):
        family.check({"steps": 4, "precision": "fp16", "device": "cpu"}, "m")
    folder = fixtures_moge.write_checkpoint(tmp_path / "m")
    assert main(["run", "--dataset", "synthetic", "--model", str(folder), "--steps", "4", "--max-samples", "1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--steps 4 cannot apply" in capsys.readouterr().err


def _nyu_pack(root: Path) -> Path:
    bench = pack_root(root, "NYUv2", index=("s/1", "s/2"))
    write_sample(bench / "s/1", rgb(), np.full((H, W), 2.0, np.float32), CENTRED, near=1.0, far=4.0)
    write_sample(bench / "s/2", rgb(seed=1), np.full((H, W), 3.0, np.float32), CENTRED, near=1.0, far=4.0)
    return root


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_run_protocol_moge_end_to_end(tmp_path, fake_moge, version):
    _nyu_pack(tmp_path / "data")
    folder = fixtures_moge.write_checkpoint(tmp_path / "moge", version, metric=version == "v2")
    out = tmp_path / "run"
    assert main(["run", "--model", str(folder), "--dataset", "moge/nyu", "--data-root", str(tmp_path / "data"),
                 "--protocol", "moge", "--device", "cpu", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    frame = pd.read_csv(out / "per_sample.csv")
    assert summary["settings"]["family"] == "moge" and summary["settings"]["moge_version"] == version
    if version == "v2":
        assert summary["output_space"] == "points_metric"
        # the plane 2 m away is exact on s/1 (ground truth 2 m) and 1.5x too near on s/2 (3 m)
        assert frame["rel_point_metric"][0] < 1e-5 and frame["rel_point_metric"][1] > 0.05
    else:
        assert summary["output_space"] == "points_scale_invariant" and "rel_point_metric" not in frame.columns
    # up to scale the plane is the ground truth (CENTRED warps to fx 1 at 640x480, the fake's focal)
    assert frame["rel_point_scale"].abs().max() < 1e-5 and frame["fov_x_mae"].max() < 1e-4
    from marigold_bench.eval.cache import PredictionCache

    with PredictionCache(out / "predictions.h5") as cache:
        np.testing.assert_allclose(cache.prediction("s/1"), plane_points(2.0, 1.0, (480, 640)), rtol=1e-6, atol=1e-6)


def test_without_moge_installed_the_error_names_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "moge", None)   # `import moge` raises ImportError
    monkeypatch.setitem(sys.modules, "moge.model", None)
    folder = fixtures_moge.write_checkpoint(tmp_path / "m")
    with pytest.raises(MissingPackageError, match="pip install git\\+https://github.com/microsoft/MoGe.git"):
        _build(folder)
    assert main(["run", "--dataset", "synthetic", "--model", str(folder), "--max-samples", "1",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert INSTALL in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_model_pt_that_is_not_moges_is_a_clear_error(tmp_path, fake_moge):
    import torch

    (tmp_path / "m").mkdir()
    torch.save({"state_dict": {}}, tmp_path / "m" / "model.pt")
    from marigold_bench.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not a MoGe checkpoint"):
        _build(tmp_path / "m")


def test_predict_writes_the_point_map_and_its_z_as_depth(tmp_path, fake_moge):
    from PIL import Image

    folder = fixtures_moge.write_checkpoint(tmp_path / "m", plane_z=3.0, fx=0.9)
    Image.fromarray(rgb(24, 32)).save(tmp_path / "a.png")
    assert main(["predict", "--model", str(folder), "--input", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    points = np.load(tmp_path / "out" / "a_points.npy")
    np.testing.assert_allclose(points, plane_points(3.0, 0.9, (24, 32)), rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.load(tmp_path / "out" / "a_depth.npy"), points[2])
    assert json.loads((tmp_path / "out" / "settings.json").read_text())["output_space"] == "points_metric"
