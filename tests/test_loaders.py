"""Benchmark loaders against fixtures written in the official on-disk formats."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

import fixtures_data as fd
from marigold_bench.data import load_dataset
from marigold_bench.data.protocol import get_protocol
from marigold_bench.data.registry import official_split_files
from marigold_bench.data.splits import parse_split, resolve_split
from marigold_bench.errors import DataRootError, SampleError, SplitNotFoundError

NAMES = tuple(fd.BUILDERS)
LAYOUTS = ("folder", "tar", "base_folder", "base_tar", "tar_no_prefix")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Every benchmark once, in every accepted layout: name -> (fixture, {layout: root})."""
    out = {}
    for name in NAMES:
        base = tmp_path_factory.mktemp(name)
        fx = fd.build(name, base)  # base/<folder>/... is the base-root layout, extracted
        folder, archive = fd.ARCHIVES[name]
        tar = fd.make_tar(fx.folder, base / "archived" / folder / archive)
        bare = fd.make_tar(fx.folder, base / "bare" / archive, prefix="")
        out[name] = (fx, {"folder": fx.folder, "tar": tar, "base_folder": base,
                          "base_tar": base / "archived", "tar_no_prefix": bare})
    return out


def _expected_rgb(sample: fd.Expected) -> np.ndarray:
    return np.asarray(Image.open(sample.rgb_file).convert("RGB"))[sample.rgb_crop]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", NAMES)
def test_loader_reads_every_layout(trees, name, layout):
    fx, roots = trees[name]
    ds = load_dataset(name, roots[layout], split=str(fx.split))
    assert len(ds) == len(fx.samples)
    assert ds.ids == [s.id for s in fx.samples]
    for i, want in enumerate(fx.samples):
        item = ds[i]
        assert item["id"] == want.id
        assert item["rgb"].dtype == np.uint8 and item["depth"].dtype == np.float32
        assert item["valid"].dtype == bool
        np.testing.assert_array_equal(item["rgb"], _expected_rgb(want))
        np.testing.assert_allclose(item["depth"], want.depth, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(item["valid"], want.valid)
    info = ds.describe()
    assert info["source_type"] == ("folder" if "folder" in layout else "archive")
    assert info["split_sha256"] == hashlib.sha256(fx.split.read_bytes()).hexdigest()
    assert info["count"] == len(fx.samples) and info["split_official"] is False


def test_fixture_archives_use_dot_slash_names(trees):
    fx, roots = trees["nyu"]
    with tarfile.open(roots["tar"]) as tar:
        names = tar.getnames()
    assert "./test/kitchen_0004/rgb_0001.png" in names


def test_nyu_range_and_eigen_crop_by_hand(trees):
    fx, roots = trees["nyu"]
    item = load_dataset("nyu", roots["tar"], split=str(fx.split))[1]
    # 426 x 560 crop pixels minus the three excluded ones placed inside it
    assert item["valid"].sum() == 426 * 560 - 3
    assert item["depth"][10, 10] == pytest.approx(65.535)  # all 16 bits came through
    assert item["valid"][470, 600] and not item["valid"][471, 600]
    assert not item["valid"][44, 300] and not item["valid"][300, 40]


def test_kitti_crop_and_masks_by_hand(trees):
    fx, roots = trees["kitti"]
    ds = load_dataset("kitti", roots["folder"], split=str(fx.split))
    assert len(ds) == 2  # the None line is not a sample
    item = ds[0]
    assert item["rgb"].shape == (352, 1216, 3) and item["depth"].shape == (352, 1216)
    assert item["depth"][0, 0] == 5.0  # the crop starts at row H-352, column (W-1216)//2
    assert not np.any(item["depth"] == 7.0)  # the row above the crop is gone
    # Eigen mask on 352x1216: rows 117:321, columns 43:1172, minus three bad pixels inside
    assert item["valid"].sum() == 204 * 1129 - 3
    assert item["valid"][117, 43] and not item["valid"][116, 43] and not item["valid"][321, 43]
    garg = load_dataset("kitti", roots["folder"], split=str(fx.split),
                        protocol=get_protocol("kitti").replace(eval_mask="kitti_garg"))
    # Garg: rows 143:349, same columns
    assert garg[0]["valid"].sum() == 206 * 1129 - 3


def test_eth3d_inf_is_no_measurement(trees):
    fx, roots = trees["eth3d"]
    item = load_dataset("eth3d", roots["base_tar"], split=str(fx.split))[0]
    assert item["depth"][0, 0] == 0.0 and np.isfinite(item["depth"]).all()
    assert item["valid"].sum() == 40 * 60 - 5 - 1 - 1 - 1  # 6 inf, one 0, one 1e-6


def test_scannet_range_by_hand(trees):
    fx, roots = trees["scannet"]
    item = load_dataset("scannet", roots["tar"], split=str(fx.split))[1]
    assert item["valid"].sum() == 48 * 64 - 3
    assert item["depth"][3, 3] == pytest.approx(9.999)


def test_diode_mask_is_the_whole_validity(trees):
    fx, roots = trees["diode"]
    ds = load_dataset("diode", roots["tar"], split=str(fx.split))
    assert [i.split("/")[0] for i in ds.ids] == ["indoors", "outdoor"]
    item = ds[0]
    assert item["valid"].sum() == 48 * 64 - 32
    # no range test: depths outside 0.6-350 stay valid where the mask says so
    outside = (item["depth"] < 0.6) | (item["depth"] > 350)
    in_masked_block = outside[:4, :8].sum()
    assert outside.any() and item["valid"][outside].sum() == outside.sum() - in_masked_block
    indoor = load_dataset("diode", roots["tar"], split=str(fx.extra_splits["indoor"]))
    assert indoor.ids == [ds.ids[0]]


def test_dataset_pickles_for_worker_processes(trees):
    fx, roots = trees["kitti"]
    ds = pickle.loads(pickle.dumps(load_dataset("kitti", roots["tar"], split=str(fx.split))))
    assert ds[1]["depth"].shape == (352, 1216)


def test_marigold_data_env_is_the_default_root(trees, monkeypatch):
    fx, roots = trees["scannet"]
    monkeypatch.setenv("MARIGOLD_DATA", str(roots["base_tar"]))
    assert len(load_dataset("scannet", None, split=str(fx.split))) == 2


# --- official split files -------------------------------------------------------------------

@pytest.mark.parametrize("name, split, count, first_id", [
    ("nyu", None, 654, "test/kitchen_0004/rgb_0001"),
    ("nyu", "train", 795, None),
    ("kitti", None, 652, "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069"),
    ("kitti", "val_800", 800, None),
    ("eth3d", None, 454, "rgb/office/images/dslr_images/DSC_0219"),
    ("scannet", None, 800, "scene0406_02/color/000300"),
    ("diode", None, 771, None),
    ("diode", "all", 771, None),
    ("diode", "indoor", 325, None),
    ("diode", "outdoor", 446, None),
])
def test_official_splits_resolve(splits_dir, name, split, count, first_id):
    from marigold_bench.commands.data import get_benchmark

    split_file = resolve_split(get_protocol(name), split)
    assert split_file.path.is_relative_to(splits_dir.resolve())
    assert split_file.official
    records = get_benchmark(name).records(split_file)
    assert len(records) == count
    if first_id:
        assert records[0][0].rsplit(".", 1)[0] == first_id
    if name == "kitti" and split is None:
        assert len(split_file.records) == 697


def test_specs_split_files_match_the_official_files(splits_dir):
    from marigold_bench.data.download import split_url

    files = official_split_files()
    assert len(files) == 18 + 5  # depth and training lists, and the five normals test lists
    for relpath, (_, facts) in files.items():
        data = (splits_dir / relpath).read_bytes()
        assert hashlib.sha256(data).hexdigest() == facts.sha256, relpath
        assert len(parse_split(data.decode())) == facts.lines, relpath
        assert split_url(relpath).endswith("/data_split/" + relpath)


def test_parse_split_handles_the_official_quirks():
    assert parse_split("a b c\nd  e  (val)\n\ne f") == (("a", "b", "c"), ("d", "e", "(val)"),
                                                      ("e", "f"))


def test_missing_split_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MARIGOLD_SPLITS", str(tmp_path / "none"))
    monkeypatch.setenv("MARIGOLD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SplitNotFoundError, match="marigold-bench data download --splits"):
        resolve_split(get_protocol("nyu"), None)
    with pytest.raises(SplitNotFoundError, match="known: test, train"):
        resolve_split(get_protocol("nyu"), "no_such_split")


# --- errors -----------------------------------------------------------------------------------

def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="nyu.*scannet"):
        load_dataset("nyu2", "/tmp")


@pytest.mark.parametrize("how", ["none", "absent", "empty", "wrong_tar", "not_a_tar"])
def test_bad_root_explains_layout(trees, tmp_path, monkeypatch, how):
    fx, _ = trees["nyu"]
    monkeypatch.delenv("MARIGOLD_DATA", raising=False)
    (tmp_path / "notes.txt").write_text("not an archive")
    roots = {"none": None, "absent": tmp_path / "nowhere", "empty": tmp_path,
             "wrong_tar": trees["scannet"][1]["tar"], "not_a_tar": tmp_path / "notes.txt"}
    with pytest.raises(DataRootError) as err:
        load_dataset("nyu", roots[how], split=str(fx.split))
    message = str(err.value)
    assert "nyuv2/nyu_labeled_extracted.tar" in message
    assert "test/kitchen_0004/rgb_0001.png" in message  # an example path from the split
    assert "marigold-bench data download --dataset nyu --data-root DIR" in message


def test_missing_sample_file_is_named(trees, tmp_path):
    fx, _ = trees["nyu"]
    copy = shutil.copytree(fx.folder, tmp_path / "nyuv2")
    (copy / "test/office_0005/depth_0002.png").unlink()
    ds = load_dataset("nyu", copy, split=str(fx.split))  # the first sample is intact
    with pytest.raises(SampleError, match="test/office_0005/depth_0002.png"):
        ds[1]
    tar = fd.make_tar(copy, tmp_path / "nyu.tar")
    with pytest.raises(SampleError, match=r"depth_0002.png in archive .*nyu.tar"):
        load_dataset("nyu", tar, split=str(fx.split))[1]


def test_archive_cut_short_is_named(trees, tmp_path):
    fx, roots = trees["kitti"]
    data = roots["tar"].read_bytes()
    member = tarfile.open(roots["tar"]).getmember(
        "./2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000070.png")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: member.offset_data + member.size // 2])  # an interrupted download
    with pytest.raises(DataRootError, match=r"cut.tar \(archive cut short.*\n.*\n"
                                            r"Download it with: marigold-bench data download"):
        load_dataset("kitti", cut, split=str(fx.split))


@pytest.mark.parametrize("name, column", [("nyu", 1), ("kitti", 1), ("scannet", 0),
                                          ("diode", 2), ("eth3d", 1)])
def test_corrupt_sample_file_is_named(trees, tmp_path, name, column):
    fx, _ = trees[name]
    copy = shutil.copytree(fx.folder, tmp_path / fx.folder.name)
    rel = fd_records(fx)[-1][column]
    data = (copy / rel).read_bytes()
    (copy / rel).write_bytes(data[: len(data) // 2])  # truncated, as by an interrupted copy
    ds = load_dataset(name, fd.make_tar(copy, tmp_path / "x.tar"), split=str(fx.split))
    with pytest.raises(SampleError, match=rel.replace(".", r"\.")):
        ds[len(ds) - 1]


def test_eth3d_wrong_byte_size_is_named(trees, tmp_path):
    fx, _ = trees["eth3d"]
    copy = shutil.copytree(fx.folder, tmp_path / "eth3d")
    rel = fd_records(fx)[0][1]
    (copy / rel).write_bytes(b"\0" * (4 * 40 * 60 + 4))
    with pytest.raises(SampleError, match=rf"{rel}.*9604 bytes, expected 9600"):
        load_dataset("eth3d", copy, split=str(fx.split))[0]


def test_depth_png_must_be_16_bit(trees, tmp_path):
    fx, _ = trees["scannet"]
    copy = shutil.copytree(fx.folder, tmp_path / "scannet")
    rel = fd_records(fx)[0][1]
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(copy / rel)
    with pytest.raises(SampleError, match="16-bit"):
        load_dataset("scannet", copy, split=str(fx.split))[0]


def fd_records(fx):
    return [r for r in parse_split(fx.split.read_text()) if r[1] != "None"]
