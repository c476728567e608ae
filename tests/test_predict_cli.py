"""``marigold-bench predict`` end to end on the tiny model."""

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from marigold_bench.commands import predict as predict_cmd
from marigold_bench.errors import BenchError


pytestmark = pytest.mark.usefixtures("one_thread")


def _parse(argv):
    parser = argparse.ArgumentParser(prog="marigold-bench")
    sub = parser.add_subparsers(dest="command")
    predict_cmd.add_parser(sub)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """A folder of awkward inputs: 8-bit RGB, grayscale JPEG, RGBA, 16-bit grayscale, float .npy,
    a sub-folder, and a file that is not an image (ignored)."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(root / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8)).save(root / "gray.jpg")
    (root / "sub").mkdir()
    Image.fromarray(rng.integers(0, 256, (33, 41, 4), dtype=np.uint8), "RGBA").save(root / "sub" / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (24, 40), dtype=np.uint16)).save(root / "depthcam16.png")
    np.save(root / "float.npy", rng.random((28, 36, 3)).astype(np.float32))
    (root / "notes.txt").write_text("not an image")
    return root


def test_predict_folder_with_ensemble(tiny_checkpoint, image_dir, tmp_path):
    out = tmp_path / "out"
    args = _parse(["predict", "--model", str(tiny_checkpoint), "--input", str(image_dir), "--out", str(out),
                   "--ensemble", "2", "--steps", "1", "--device", "cpu", "--batch-size", "3"])
    assert args.func is predict_cmd.run
    assert predict_cmd.run(args) == 0
    sizes = {"rgb": (36, 48), "gray": (30, 20), "sub/rgba": (33, 41), "depthcam16": (24, 40), "float": (28, 36)}
    for stem, size in sizes.items():
        depth = np.load(out / f"{stem}_depth.npy")
        assert depth.shape == size and depth.dtype == np.float32
        assert depth.min() >= 0 and depth.max() <= 1
        png16 = np.array(Image.open(out / f"{stem}_depth_16bit.png"))
        assert png16.shape == size and png16.max() > 255
        np.testing.assert_allclose(png16 / 65535.0, depth, atol=1e-4)
        colored = Image.open(out / f"{stem}_depth_colored.png")
        assert colored.mode == "RGB" and colored.size == (size[1], size[0])
        assert np.load(out / f"{stem}_uncertainty.npy").shape == size
        assert (out / f"{stem}_uncertainty.png").is_file()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["ensemble"] == 2 and settings["batch_size"] == 3 and settings["device"] == "cpu"


def test_predict_single_file_no_uncertainty(tiny_checkpoint, image_dir, tmp_path):
    args = _parse(["predict", "--model", str(tiny_checkpoint), "--input", str(image_dir / "rgb.png"), "--out",
                   str(tmp_path), "--device", "cpu", "--processing-res", "30", "--noise", "zeros"])
    assert predict_cmd.run(args) == 0
    assert np.load(tmp_path / "rgb_depth.npy").shape == (36, 48)
    assert not (tmp_path / "rgb_uncertainty.npy").exists()
    assert json.loads((tmp_path / "settings.json").read_text())["processing_res"] == 30


def test_unreadable_image_is_reported_and_others_written(tiny_checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(inputs / "ok.png")
    (inputs / "broken.png").write_bytes(b"not a png")
    args = _parse(["predict", "--model", str(tiny_checkpoint), "--input", str(inputs), "--out", str(tmp_path / "o"),
                   "--device", "cpu"])
    assert predict_cmd.run(args) == 1
    assert (tmp_path / "o" / "ok_depth.npy").is_file()
    assert "broken.png" in capsys.readouterr().err


def test_user_errors_are_bench_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        predict_cmd.run(_parse(["predict", "--model", str(tiny_checkpoint), "--input", str(tmp_path / "nope"),
                                "--out", str(tmp_path / "o")]))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(BenchError, match="no such checkpoint"):
        predict_cmd.run(_parse(["predict", "--model", str(tmp_path / "missing"), "--input",
                                str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]))
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="CUDA is not available"):
            predict_cmd.run(_parse(["predict", "--model", str(tiny_checkpoint), "--input", str(tmp_path / "a.png"),
                                    "--out", str(tmp_path / "o"), "--device", "cuda"]))


def test_colorize_is_spectral():
    import matplotlib

    ramp = np.linspace(0, 1, 5)[None]
    expected = matplotlib.colormaps["Spectral"](ramp, bytes=True)[..., :3]
    np.testing.assert_array_equal(predict_cmd.colorize(ramp), expected)
    assert tuple(predict_cmd.colorize(np.zeros((1, 1)))[0, 0]) == tuple(expected[0, 0])


def test_default_model_and_baselines(image_dir, tmp_path):
    from marigold_bench.commands.common import BUNDLED_TINY

    if (BUNDLED_TINY / "model_index.json").is_file():
        assert predict_cmd.run(_parse(["predict", "--input", str(image_dir / "rgb.png"), "--out",
                                       str(tmp_path / "tiny"), "--device", "cpu"])) == 0
        assert np.load(tmp_path / "tiny" / "rgb_depth.npy").shape == (36, 48)
    assert predict_cmd.run(_parse(["predict", "--model", "baseline:ramp", "--input", str(image_dir / "rgb.png"),
                                   "--out", str(tmp_path / "ramp")])) == 0
    assert np.load(tmp_path / "ramp" / "rgb_depth.npy").shape == (36, 48)


def test_cli_entry_point_when_present(tiny_checkpoint, image_dir, tmp_path):
    cli = pytest.importorskip("marigold_bench.cli")
    if not hasattr(cli, "main"):
        pytest.skip("marigold_bench.cli.main not written yet")
    code = cli.main(["predict", "--model", str(tiny_checkpoint), "--input", str(image_dir / "rgb.png"),
                     "--out", str(tmp_path), "--device", "cpu"])
    assert code in (0, None)
    assert (tmp_path / "rgb_depth.npy").is_file()


def _images(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):  # each image its own size: the outputs say whose they are
        Image.fromarray(np.zeros((8 + k, 12, 3), np.uint8)).save(folder / name)
    return folder


def test_images_sharing_a_name_keep_their_extension(tmp_path, capsys):
    """a.png and a.jpg both wrote a_depth.* (one silently lost while "wrote 4 image(s)" was said);
    x.v1.png and x.v2.png both wrote x.npy (Path.with_suffix cut their names at the dot)."""
    inputs = _images(tmp_path / "in", "a.png", "a.jpg", "x.v1.png", "x.v2.png", "solo.png")
    out = tmp_path / "out"
    assert predict_cmd.run(_parse(["predict", "--model", "baseline:ramp", "--input", str(inputs),
                                   "--out", str(out)])) == 0
    shapes = {name: np.load(out / f"{name}_depth.npy").shape[0] for name in ("a_png", "a_jpg", "x.v1", "x.v2", "solo")}
    assert shapes == {"a_png": 8, "a_jpg": 9, "x.v1": 10, "x.v2": 11, "solo": 12}
    assert not (out / "a_depth.npy").exists() and not (out / "x.npy").exists()
    assert len(list(out.glob("*_depth.npy"))) == 5
    printed = capsys.readouterr().out
    assert "wrote 5 image(s)" in printed and "a.jpg -> a_jpg_*, a.png -> a_png_*" in printed


def test_names_that_still_coincide_are_refused_before_the_model_loads(tmp_path, monkeypatch):
    inputs = _images(tmp_path / "in", "a.png", "a.jpg", "a_png.jpg")

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the names were checked")
    monkeypatch.setattr(predict_cmd, "build_predictor", refuse)
    with pytest.raises(BenchError, match="a.png and a_png.jpg; rename one"):
        predict_cmd.run(_parse(["predict", "--model", "baseline:ramp", "--input", str(inputs),
                                "--out", str(tmp_path / "out")]))
    assert not (tmp_path / "out").exists()


def test_names_in_other_folders_never_clash(tmp_path):
    inputs = _images(tmp_path / "in", "a.png")
    _images(inputs / "sub", "a.jpg")
    names = predict_cmd.output_names(sorted(inputs.rglob("*.*")), inputs)
    assert sorted(map(str, names.values())) == ["a", "sub/a"]
