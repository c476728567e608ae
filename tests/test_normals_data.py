"""Surface-normals ground truth: frames, the normals benchmarks' specs and registry lookups by task,
the official (.npy) and DSINE (8-bit PNG) layouts read from format-true files, the synthetic
scenes' analytic normals, and the bad inputs.

Expected values are written by hand from datasets/normals.md, the official loaders' code and the DSINE
README, or computed by a second method (finite differences of the depth map), never read back
from the code under test.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.normals import read_png8_normals
from marigold_bench.data.registry import MissingTaskError, get_benchmark, tasks_of
from marigold_bench.data.source import Source
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import SplitCountWarning
from marigold_bench.data.splits import parse_split
from marigold_bench.errors import BenchError, FrameError, SampleError, SplitNotFoundError
from marigold_bench.frames import FRAMES, check_frame, convert_normals


# --- frames -------------------------------------------------------------------------------------

def test_frames_vocabulary_and_conversion_by_hand():
    assert FRAMES == ("opengl", "opencv")
    # a floor seen by an OpenCV camera faces -y (up); in OpenGL up is +y; z flips with it
    assert convert_normals([0.0, -1.0, 0.0], "opencv", "opengl").tolist() == [0.0, 1.0, 0.0]
    assert convert_normals([0.6, 0.0, -0.8], "opencv", "opengl").tolist() == [0.6, -0.0, 0.8]
    assert convert_normals([0.25, 0.5, 0.75], "opengl", "opencv").tolist() == [0.25, -0.5, -0.75]
    assert convert_normals([0.25, 0.5, 0.75], "opengl", "opengl").tolist() == [0.25, 0.5, 0.75]
    n = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    there = convert_normals(n, "opengl", "opencv")
    assert there.dtype == np.float32 and there is not n
    assert np.array_equal(convert_normals(there, "opencv", "opengl"), n)
    assert check_frame("opencv") == "opencv"


def test_unknown_frame_and_channel_first_maps_are_refused():
    with pytest.raises(FrameError, match="unknown camera frame 'dx'.*opengl, opencv"):
        convert_normals([0, 0, 1], "dx", "opengl")
    with pytest.raises(FrameError, match=r"last axis.*\(3, 4, 5\)"):
        convert_normals(np.zeros((3, 4, 5)), "opencv", "opengl")
    assert issubclass(FrameError, BenchError)
    with pytest.raises(FrameError, match="must declare its frame"):
        BenchmarkSpec(name="bare-normals", task="normals", min_depth=0.0, max_depth=1.0)


# --- specs and registry -----------------------------------------------------------------------------

#: plain name -> (spec name, folder, split file, lines, processing res, seed), datasets/normals.md's table
OFFICIAL = {
    "nyu": ("nyu-normals", "nyuv2/test", "nyu_normals/nyuv2_test.txt", 654, 640, 4321),
    "scannet": ("scannet-normals", "scannet", "scannet_normals/scannet_test.txt", 300, 640, 1234),
    "ibims": ("ibims-normals", "ibims/ibims", "ibims_normals/ibims_test.txt", 100, 640, 4321),
    "diode": ("diode-normals", "diode/val", "diode_normals/diode_test.txt", 771, 768, 1234),
    "oasis": ("oasis-normals", "oasis/val", "oasis_normals/oasis_test.txt", 9999, 768, 1234),
}


@pytest.mark.parametrize("plain", list(OFFICIAL))
def test_official_normals_specs(plain):
    name, folder, split, lines, res, seed = OFFICIAL[plain]
    spec = get_benchmark(plain, task="normals")
    assert spec is get_benchmark(name) and spec.dataset == plain
    assert (spec.name, spec.task, spec.frame, spec.folder, spec.archive) == (name, "normals", "opengl", folder, None)
    assert (spec.default_split, spec.expected_count, spec.splits) == (split, lines, {"test": split})
    assert (spec.processing_res, spec.seed) == (res, seed)
    assert spec.split_files[split].lines == lines
    assert spec.subsets.keys() == ({"indoor", "outdoor"} if plain == "diode" else set())
    recorded = spec.to_dict()
    assert (recorded["task"], recorded["frame"], recorded["default_split"]) == ("normals", "opengl", split)


def test_official_normals_lists_have_the_recorded_sha256_and_counts(splits_dir):
    for plain, (_, _, split, lines, _, _) in OFFICIAL.items():
        data = (splits_dir / split).read_bytes()
        facts = get_benchmark(plain, task="normals").split_files[split]
        assert hashlib.sha256(data).hexdigest() == facts.sha256, split
        assert len(parse_split(data.decode())) == lines == facts.lines, split
        assert all(len(r) == 2 for r in parse_split(data.decode()))


def test_diode_normals_subsets_split_the_official_list(splits_dir):
    spec = get_benchmark("diode", task="normals")
    ids = [r[0].rsplit(".", 1)[0] for r in parse_split((splits_dir / spec.default_split).read_text())]
    assert sum(map(spec.subsets["indoor"], ids)) == 325 and sum(map(spec.subsets["outdoor"], ids)) == 446


def test_depth_lookups_are_unchanged():
    assert get_benchmark("nyu").task == "depth" and get_benchmark("nyu", task="depth") is get_benchmark("nyu")
    assert "task" not in get_benchmark("nyu").to_dict()  # depth records keep their keys exactly
    assert get_benchmark("nyu").frame is None and get_benchmark("nyu").dataset == "nyu"
    assert set(tasks_of("nyu")) == {"depth", "normals"} and set(tasks_of("kitti")) == {"depth"}
    # iBims-1 has depth ground truth too since the metric boards' spec (data/ibims.py)
    assert set(tasks_of("ibims")) == {"depth", "normals"} and tasks_of("nyu2") == {}


def test_depth_only_benchmark_asked_for_normals_and_the_reverse():
    with pytest.raises(MissingTaskError, match=r"^kitti has no normals ground truth; its tasks: depth \(kitti\)$"):
        get_benchmark("kitti", task="normals")
    assert get_benchmark("ibims", task="depth").name == "ibims"  # the metric boards' iBims-1 depth
    with pytest.raises(MissingTaskError, match="oasis has no depth ground truth"):
        get_benchmark("oasis")  # a plain name alone means depth
    with pytest.raises(MissingTaskError, match="dsine/nyu has no depth"):
        load_dataset("dsine/nyu", "/nowhere", task="depth")
    with pytest.raises(MissingTaskError, match="eth3d has no normals"):
        load_dataset("eth3d", "/nowhere", task="normals")
    assert issubclass(MissingTaskError, BenchError)


def test_benchmarks_listing_shows_the_task(capsys):
    assert main(["benchmarks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["nyu-normals"]["task"] == "normals" and rows["nyu"]["task"] == "depth"
    assert rows["synthetic-normals"]["source"] == "generated" and rows["dsine/nyu"]["layout"] == "dsine_eval/nyuv2/"
    assert main(["benchmarks"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("ibims-normals"))
    assert line.split()[:4] == ["ibims-normals", "iBims-1", "normals", "normals"]  # name, title (2 words), task


# --- the official layout: .npy ground truth ------------------------------------------------------

def _png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="PNG")


def _official_tree(tmp_path):
    """``<base>/nyuv2/test`` with two samples, and a split file of the official format."""
    folder = tmp_path / "base" / "nyuv2" / "test"
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    gt = np.zeros((4, 6, 3), np.float32)
    gt[0, 0] = (0.0, 0.0, 1.0)         # a wall facing the camera (OpenGL: z towards the viewer)
    gt[1, 2] = (0.6, 0.8, 0.0)         # unit
    gt[2, 3] = (0.0, 0.0, 2.0)         # not unit length: kept as is
    gt[3, 5] = (0.0, np.nan, 1.0)      # not finite: no ground truth
    gt[3, 4] = (1e-3, 0.0, 0.0)        # short but not zero: valid
    _png(folder / "000000_img.png", rgb)
    np.save(folder / "000000_normal.npy", gt)
    _png(folder / "000001_img.png", rgb[::-1].copy())
    np.save(folder / "000001_normal.npy", np.tile(np.float32([0.0, 1.0, 0.0]), (4, 6, 1)))
    split = tmp_path / "nyuv2_test.txt"
    split.write_bytes(b"000000_img.png 000000_normal.npy\n000001_img.png 000001_normal.npy")
    return folder, rgb, gt, split


def _tar_of(folder, tar_path, skip=()):
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name not in skip:
                tar.add(path, arcname="./" + path.relative_to(folder).as_posix())
    return tar_path


def _check_first(item, rgb, gt):
    assert sorted(item) == ["frame", "id", "mask", "normals", "rgb", "valid"]
    assert item["id"] == "000000_img" and item["frame"] == "opengl"
    assert item["rgb"].dtype == np.uint8 and np.array_equal(item["rgb"], rgb)
    assert item["normals"].dtype == np.float32 and item["normals"].shape == (4, 6, 3)
    assert item["normals"][2, 3].tolist() == [0.0, 0.0, 2.0]  # not renormalised
    assert item["normals"][1, 2].tolist() == [np.float32(0.6), np.float32(0.8), 0.0]
    want = np.zeros((4, 6), bool)
    want[0, 0] = want[1, 2] = want[2, 3] = want[3, 4] = True
    assert np.array_equal(item["mask"], want) and np.array_equal(item["valid"], want)


def test_official_layout_from_the_base_folder(tmp_path):
    folder, rgb, gt, split = _official_tree(tmp_path)
    dataset = load_dataset("nyu", tmp_path / "base", split, task="normals")
    assert len(dataset) == 2 and dataset.ids == ["000000_img", "000001_img"]
    _check_first(dataset[0], rgb, gt)
    second = dataset[1]
    assert second["mask"].all() and np.array_equal(second["normals"][..., 1], np.ones((4, 6), np.float32))
    info = dataset.describe()
    assert (info["task"], info["frame"], info["source_type"]) == ("normals", "opengl", "folder")
    assert info["source"] == str(folder)


def test_official_layout_from_a_tar_of_the_folder(tmp_path):
    folder, rgb, gt, split = _official_tree(tmp_path)
    tar = _tar_of(folder, tmp_path / "nyu_normals.tar")
    dataset = load_dataset("nyu-normals", tar, split)
    assert dataset.source.kind == "archive"
    _check_first(dataset[0], rgb, gt)


def test_data_verify_reads_a_normals_root(tmp_path, capsys):
    _, _, _, split = _official_tree(tmp_path)
    assert main(["data", "verify", "--dataset", "nyu-normals", "--data-root", str(tmp_path / "base"),
                 "--split", str(split)]) == 0
    np.save(tmp_path / "base" / "nyuv2" / "test" / "000001_normal.npy", np.zeros((4, 6), np.float32))
    assert main(["data", "verify", "--dataset", "nyu-normals", "--data-root", str(tmp_path / "base"),
                 "--split", str(split)]) == 1
    assert "000001_normal.npy: a normals map must be HxWx3" in capsys.readouterr().out


def test_official_split_count_is_checked(tmp_path, monkeypatch):
    folder, _, _, split = _official_tree(tmp_path)
    splits = tmp_path / "splits" / "nyu_normals"
    splits.mkdir(parents=True)
    (splits / "nyuv2_test.txt").write_bytes(split.read_bytes())
    monkeypatch.setenv("MARIGOLD_SPLITS", str(tmp_path / "splits"))
    with pytest.warns(SplitCountWarning, match="yields 2 nyu-normals samples but the official split has 654"):
        load_dataset("nyu", tmp_path / "base", task="normals")


@pytest.mark.parametrize("shape", [(3, 4, 6), (4, 6), (4, 6, 4)])
def test_wrong_shape_normals_npy_names_the_file(tmp_path, shape):
    folder, _, _, split = _official_tree(tmp_path)
    np.save(folder / "000001_normal.npy", np.zeros(shape, np.float32))
    dataset = load_dataset("nyu", tmp_path / "base", split, task="normals")
    with pytest.raises(SampleError, match=r"000001_normal\.npy: a normals map must be HxWx3.*" + str(shape[0])):
        dataset[1]


def test_integer_normals_npy_is_refused(tmp_path):
    folder, _, _, split = _official_tree(tmp_path)
    np.save(folder / "000001_normal.npy", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(SampleError, match=r"000001_normal\.npy: a normals map must hold floats"):
        load_dataset("nyu", tmp_path / "base", split, task="normals")[1]


def test_normals_of_another_size_than_the_image(tmp_path):
    folder, _, _, split = _official_tree(tmp_path)
    np.save(folder / "000001_normal.npy", np.zeros((5, 6, 3), np.float32))
    with pytest.raises(SampleError, match=r"000001_normal\.npy: normals are 5x6 but its RGB image is 4x6"):
        load_dataset("nyu", tmp_path / "base", split, task="normals")[1]


def test_tar_missing_a_ground_truth_file(tmp_path):
    folder, _, _, split = _official_tree(tmp_path)
    tar = _tar_of(folder, tmp_path / "cut.tar", skip={"000001_normal.npy"})
    dataset = load_dataset("nyu", tar, split, task="normals")  # the first sample is complete
    dataset[0]
    with pytest.raises(SampleError, match=r"missing file \./000001_normal\.npy in archive .*cut\.tar"):
        dataset[1]


# --- DSINE's layout: 8-bit PNG ground truth -----------------------------------------------------

def _dsine_tree(tmp_path):
    folder = tmp_path / "base" / "dsine_eval" / "nyuv2"
    raw = np.full((2, 3, 3), 128, np.uint8)
    raw[0, 0] = (255, 128, 0)
    raw[0, 1] = (0, 0, 0)      # no ground truth
    raw[0, 2] = (0, 0, 1)      # sums to 1: valid, although nearly black
    raw[1, 0] = (128, 128, 255)  # DSINE's wall facing the camera, (0, 0, 1) up to 8 bits
    _png(folder / "test" / "000000_img.png", np.zeros((2, 3, 3), np.uint8))
    _png(folder / "test" / "000000_normal.png", raw)
    intrins = np.array([[500.0, 0, 1.0], [0, 500.0, 0.5], [0, 0, 1]])
    np.save(folder / "test" / "000000_intrins.npy", intrins)
    split = tmp_path / "dsine_test.txt"
    split.write_bytes(b"test/000000_img.png")
    return folder, raw, intrins, split


def test_dsine_8bit_decoding_by_hand(tmp_path):
    folder, raw, _, _ = _dsine_tree(tmp_path)
    normals, valid = read_png8_normals(Source(folder), "test/000000_normal.png")
    # c / 255 * 2 - 1: 255 -> 1, 128 -> 1/255, 0 -> -1, 1 -> -253/255
    np.testing.assert_allclose(normals[0, 0], [1.0, 1 / 255, -1.0], atol=1e-7)
    np.testing.assert_allclose(normals[0, 2], [-1.0, -1.0, -253 / 255], atol=1e-7)
    assert valid.tolist() == [[True, False, True], [True, True, True]]


def test_dsine_items_are_in_the_opengl_frame(tmp_path):
    _, _, intrins, split = _dsine_tree(tmp_path)
    item = load_dataset("dsine/nyu", tmp_path / "base", split)[0]
    assert item["frame"] == "opengl" and item["id"] == "test/000000_img"
    # DSINE's axes are right, down, forward with normals pointing into the surface: only x differs
    np.testing.assert_allclose(item["normals"][0, 0], [-1.0, 1 / 255, -1.0], atol=1e-7)
    np.testing.assert_allclose(item["normals"][1, 0], [-1 / 255, 1 / 255, 1.0], atol=1e-7)  # faces the viewer
    assert item["normals"][0, 1].tolist() == [0.0, 0.0, 0.0] and not item["valid"][0, 1]
    assert item["valid"].sum() == 5 and np.array_equal(item["mask"], item["valid"])
    assert item["intrins"].dtype == np.float32 and item["intrins"].tolist() == intrins.tolist()


def test_dsine_missing_ground_truth_and_bad_inputs(tmp_path):
    folder, _, _, split = _dsine_tree(tmp_path)
    np.save(folder / "test" / "000000_intrins.npy", np.eye(4))
    with pytest.raises(SampleError, match=r"000000_intrins\.npy: intrinsics must be a 3x3 matrix"):
        load_dataset("dsine/nyu", tmp_path / "base", split)[0]
    (folder / "test" / "000000_normal.png").unlink()
    # the probe of the first sample's files fails: the root does not hold this benchmark
    with pytest.raises(BenchError, match="000000_img.png"):
        load_dataset("dsine/nyu", tmp_path / "base", split)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"test/000000.png")
    with pytest.raises(SplitNotFoundError, match="must be named <id>_img"):
        load_dataset("dsine/nyu", tmp_path / "base", bad)
    with pytest.raises(SplitNotFoundError, match="no default split"):
        load_dataset("dsine/nyu", tmp_path / "base")


def test_dsine_16bit_png_is_refused(tmp_path):
    folder, _, _, split = _dsine_tree(tmp_path)
    Image.fromarray(np.zeros((2, 3), np.uint16)).save(folder / "test" / "000000_normal.png")
    with pytest.raises(SampleError, match=r"000000_normal\.png: expected an 8-bit RGB normal map"):
        load_dataset("dsine/nyu", tmp_path / "base", split)[0]


# --- the synthetic scenes' analytic normals --------------------------------------------------------

def _finite_difference_normals(depth, intrins):
    """Normals of the depth map by central differences of back-projected points (OpenGL frame):
    a method independent of the renderer's geometry."""
    h, w = depth.shape
    f, cx, cy = float(intrins[0, 0]), float(intrins[0, 2]), float(intrins[1, 2])
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    d = depth.astype(np.float64)
    points = np.stack([(u - cx) / f * d, (v - cy) / f * d, d], -1)  # x right, y down, z forward
    du = points[1:-1, 2:] - points[1:-1, :-2]
    dv = points[2:, 1:-1] - points[:-2, 1:-1]
    n = np.cross(du, dv)
    with np.errstate(invalid="ignore"):  # sky pixels (depth 0) give 0/0; they are never compared
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
    facing = np.sign(np.einsum("...k,...k->...", n, points[1:-1, 1:-1]))
    n = -n * facing[..., None]                  # towards the camera
    n[..., 1:] *= -1                             # y down, z forward -> y up, z towards the viewer
    return n


def _planar_interior(depth, valid):
    """Pixels whose 3x3 neighbourhood lies on one plane: inverse depth is affine in the pixel
    coordinates on a plane, so its second differences vanish there (and not across an edge)."""
    inv = np.where(valid, 1.0 / np.where(valid, depth.astype(np.float64), 1.0), 0.0)
    c = inv[1:-1, 1:-1]
    tol = 1e-5 * c
    flat = np.ones_like(c, bool)
    for a, b in (((1, 0), (1, 2)), ((0, 1), (2, 1)), ((0, 0), (2, 2)), ((0, 2), (2, 0))):
        second = inv[a[0]:a[0] + c.shape[0], a[1]:a[1] + c.shape[1]] + inv[b[0]:b[0] + c.shape[0], b[1]:b[1] + c.shape[1]] - 2 * c
        flat &= np.abs(second) < tol
    around = np.ones_like(c, bool)
    for dy in range(3):
        for dx in range(3):
            around &= valid[dy:dy + c.shape[0], dx:dx + c.shape[1]]
    return flat & around


@pytest.mark.parametrize("index", [0, 1, 2, 3])  # indoor, outdoor, indoor, outdoor
def test_synthetic_normals_match_finite_differences_on_planes(index):
    depth_item = load_dataset("synthetic", split="test:4")[index]
    item = load_dataset("synthetic", split="test:4", task="normals")[index]
    assert item["id"] == depth_item["id"] and np.array_equal(item["rgb"], depth_item["rgb"])
    assert np.array_equal(item["valid"], depth_item["valid"])
    fd = _finite_difference_normals(depth_item["depth"], item["intrins"])
    planar = _planar_interior(depth_item["depth"], depth_item["valid"])
    assert planar.sum() > 1000  # most of a 72x96 frame is walls, floor and box faces
    gt = item["normals"][1:-1, 1:-1][planar].astype(np.float64)
    cos = np.clip(np.einsum("nk,nk->n", gt, fd[planar]), -1, 1)
    assert np.degrees(np.arccos(cos)).max() < 0.05


def test_synthetic_normals_are_unit_face_the_camera_and_zero_on_the_sky():
    dataset = load_dataset("synthetic", split="test:4", task="normals")
    assert dataset.protocol.name == "synthetic-normals" and dataset.protocol.frame == "opengl"
    for index in range(4):
        item = dataset[index]
        valid = item["valid"]
        length = np.linalg.norm(item["normals"].astype(np.float64), axis=-1)
        assert np.abs(length[valid] - 1).max() < 1e-6
        assert not item["normals"][~valid].any()
        # every visible surface faces the camera: n . p < 0 for the hit point p (OpenGL axes)
        f, cx, cy = item["intrins"][0, 0], item["intrins"][0, 2], item["intrins"][1, 2]
        v, u = np.mgrid[0:72, 0:96]
        rays = np.stack([(u - cx) / f, -(v - cy) / f, -np.ones((72, 96))], -1)
        assert (np.einsum("...k,...k->...", item["normals"], rays)[valid] < 0).all()
    # the outdoor scene has sky: its normals are zero there and the mask says so
    assert not dataset[1]["valid"].all()


def test_synthetic_normals_spec_is_found_by_task():
    spec = get_benchmark("synthetic", task="normals")
    assert (spec.name, spec.task, spec.frame, spec.needs_root) == ("synthetic-normals", "normals", "opengl", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset("synthetic", split="val:3", task="normals")) == 3


def test_normals_datasets_pickle_for_workers(tmp_path):
    # data-loader workers receive the dataset pickled
    synthetic = load_dataset("synthetic", split="test:2", task="normals")
    clone = pickle.loads(pickle.dumps(synthetic))
    assert np.array_equal(clone[1]["normals"], synthetic[1]["normals"])
    _, _, _, split = _dsine_tree(tmp_path)
    dsine = load_dataset("dsine/nyu", tmp_path / "base", split)
    assert np.array_equal(pickle.loads(pickle.dumps(dsine))[0]["normals"], dsine[0]["normals"])
