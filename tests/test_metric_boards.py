"""The metric boards' benchmarks: each read from a fixture written in the layout ZoeDepth's
evaluation reads, with depth scales, validity and crops checked by hand."""

import numpy as np
import pytest
from PIL import Image

from marigold_bench.data.registry import get_benchmark
from marigold_bench.errors import BenchError, SampleError


def rgb(path, h, w, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint16)).save(path)


def mask8(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint8)).save(path)


def test_sunrgbd_depth_in_tenths_of_millimetres(tmp_path):
    root = tmp_path / "sunrgbd"
    rgb(root / "rgb" / "img-000007.jpg", 4, 5)
    depth = np.full((4, 5), 25000); depth[0, 0] = 0
    png16(root / "depth" / "7.png", depth)  # the number without its zero padding
    item = get_benchmark("sunrgbd").open(tmp_path)[0]
    assert item["id"] == "rgb/img-000007"
    assert item["depth"][1, 1] == pytest.approx(2.5)
    assert not item["mask"][0, 0] and item["mask"][1, 1]
    # NYU's fixed Eigen window (rows 45:471) leaves nothing of a 4x5 frame
    assert not item["valid"].any()


def test_sunrgbd_missing_depth_names_the_file(tmp_path):
    rgb(tmp_path / "sunrgbd" / "rgb" / "img-000003.jpg", 4, 5)
    with pytest.raises(SampleError, match="depth/3.png"):
        get_benchmark("sunrgbd").open(tmp_path)[0]


def test_ibims_official_release(tmp_path):
    root = tmp_path / "ibims"
    root.mkdir()
    (root / "imagelist.txt").write_text("corridor_01\nkitchen_02\n")
    for name in ("corridor_01", "kitchen_02"):
        rgb(root / "rgb" / f"{name}.png", 480, 640)
        depth = np.full((480, 640), 6553)  # 6553 * 50 / 65535 = 4.99977 m
        depth[100, 100] = 13107             # exactly 10 m: outside 0 < d < 10
        png16(root / "depth" / f"{name}.png", depth)
        invalid = np.ones((480, 640)); invalid[200, 200] = 0
        transp = np.ones((480, 640)); transp[300, 300] = 0
        mask8(root / "mask_invalid" / f"{name}.png", invalid)
        mask8(root / "mask_transp" / f"{name}.png", transp)
    ds = get_benchmark("ibims").open(tmp_path)
    assert ds.ids == ["rgb/corridor_01", "rgb/kitchen_02"]
    item = ds[1]
    assert item["depth"][0, 0] == pytest.approx(6553 * 50 / 65535, rel=1e-6)
    assert not item["mask"][100, 100] and not item["mask"][200, 200] and not item["mask"][300, 300]
    assert item["mask"].sum() == 480 * 640 - 3
    # Eigen window rows 45:471, cols 41:601, by hand
    assert item["valid"][45, 41] and not item["valid"][44, 41] and not item["valid"][45, 601]
    assert item["valid"].sum() == 426 * 560 - 3


def test_ibims_list_naming_a_path_is_refused(tmp_path):
    (tmp_path / "ibims").mkdir()
    (tmp_path / "ibims" / "imagelist.txt").write_text("../secret\n")
    with pytest.raises(SampleError, match="not a plain sample name"):
        get_benchmark("ibims").open(tmp_path)


def test_ddad_zoedepth_layout(tmp_path):
    root = tmp_path / "ddad"
    rgb(root / "000150_rgb.png", 20, 30)
    depth = np.full((20, 30), 40.0, np.float32); depth[15, 15] = 0; depth[16, 15] = 90.0
    root.mkdir(exist_ok=True)
    np.save(root / "000150_depth.npy", depth)
    item = get_benchmark("ddad").open(tmp_path)[0]
    assert item["id"] == "000150"
    assert not item["mask"][15, 15] and not item["mask"][16, 15] and item["mask"][0, 0]
    # Garg: rows int(0.40810811*20)=8 : int(0.99189189*20)=19, cols int(0.03594771*30)=1 : int(0.96405229*30)=28
    expected = np.zeros((20, 30), bool); expected[8:19, 1:28] = True
    assert (item["valid"] == (expected & item["mask"])).all()


def test_ddad_depth_of_another_shape(tmp_path):
    root = tmp_path / "ddad"
    rgb(root / "a_rgb.png", 4, 4)
    np.save(root / "a_depth.npy", np.ones((2, 4, 4)))
    with pytest.raises(SampleError, match="expected an HxW depth map"):
        get_benchmark("ddad").open(tmp_path)[0]


def test_diml_indoor_filled_depth(tmp_path):
    root = tmp_path / "diml_indoor"
    rgb(root / "LR" / "scene_03" / "color" / "in_0001_c.png", 6, 8)
    depth = np.full((6, 8), 3250); depth[0, 0] = 0
    png16(root / "LR" / "scene_03" / "depth_filled" / "in_0001_depth_filled.png", depth)
    item = get_benchmark("diml_indoor").open(tmp_path)[0]
    assert item["id"] == "LR/scene_03/color/in_0001_c"
    assert item["depth"][1, 1] == pytest.approx(3.25) and not item["mask"][0, 0]


def test_diml_outdoor_range_starts_at_2m(tmp_path):
    root = tmp_path / "diml_outdoor"
    rgb(root / "outleft" / "o_1.png", 6, 8)
    depth = np.full((6, 8), 12000); depth[2, 2] = 1500; depth[3, 3] = 2000
    png16(root / "depthmap" / "o_1.png", depth)
    item = get_benchmark("diml_outdoor").open(tmp_path)[0]
    assert item["mask"][0, 0] and not item["mask"][2, 2] and not item["mask"][3, 3]  # 1.5 m, 2 m: not > 2


def test_no_samples_is_a_clear_error(tmp_path):
    (tmp_path / "diml_outdoor" / "outleft").mkdir(parents=True)
    with pytest.raises(BenchError, match="no samples found"):
        get_benchmark("diml_outdoor").open(tmp_path)


def test_layout_not_found_names_both_places(tmp_path):
    with pytest.raises(BenchError, match="SUN RGB-D data not found: rgb is in none of: .*sunrgbd, "):
        get_benchmark("sunrgbd").open(tmp_path)


def test_vkitti2_and_hypersim_test_reuse_the_training_loaders(tmp_path):
    # Virtual KITTI 2: a 375x1242 frame, KB-cropped to 352x1216, depth in cm
    line = "Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg Scene01/clone/frames/depth/Camera_0/depth_00000.png"
    root = tmp_path / "vkitti"
    rgb(root / line.split()[0], 375, 1242)
    depth = np.full((375, 1242), 1000); depth[-1, 13] = 9000  # 90 m: out of range
    png16(root / line.split()[1], depth)
    split = tmp_path / "vk_val.txt"
    split.write_text(line + "\n")
    item = get_benchmark("vkitti2").open(tmp_path, split=str(split))[0]
    assert item["depth"].shape == (352, 1216) and item["depth"][0, 0] == pytest.approx(10.0)
    assert not item["mask"][-1, 0]  # column 13 of the frame is column 0 after the crop (left margin 13)
    # Hypersim: planar depth in mm, 480x640
    line = "ai_001_010/rgb_cam_00_fr0000.png ai_001_010/depth_plane_cam_00_fr0000.png"
    root = tmp_path / "hypersim" / "test"
    rgb(root / line.split()[0], 480, 640)
    png16(root / line.split()[1], np.full((480, 640), 2500))
    split = tmp_path / "hs_test.txt"
    split.write_text(line + "\n")
    item = get_benchmark("hypersim_test").open(tmp_path / "hypersim", split=str(split))[0]
    assert item["depth"][0, 0] == pytest.approx(2.5) and item["valid"].sum() == 426 * 560


@pytest.mark.parametrize("name, crop, lo, hi", [
    ("sunrgbd", "eigen", 0.0, 8.0), ("ibims", "eigen", 0.0, 10.0), ("diml_indoor", "eigen", 0.0, 10.0),
    ("hypersim_test", "eigen", 1e-3, 80.0), ("ddad", "garg", 1e-3, 80.0), ("vkitti2", "garg", 1e-3, 80.0),
    ("diml_outdoor", "garg", 2.0, 80.0)])
def test_each_spec_lists_zoedepths_row(name, crop, lo, hi):
    # config.py's DATASETS_CONFIG, read by hand
    spec = get_benchmark(name)
    assert (spec.default_crop, spec.min_depth, spec.max_depth) == (crop, lo, hi)


def test_metric_boards_group():
    from marigold_bench.data.registry import GROUPS, expand_groups
    # ZoeDepth's ALL_INDOOR + ALL_OUTDOOR (config.py), DIODE's two rows as one benchmark
    assert expand_groups(["metric-boards"]) == ["nyu", "ibims", "sunrgbd", "diode", "hypersim_test", "kitti",
                                                 "diml_outdoor", "vkitti2", "ddad"]
    assert all(get_benchmark(n).task == "depth" for n in GROUPS["metric-boards"])


def test_listed_datasets_pickle_for_workers(tmp_path):
    import pickle
    root = tmp_path / "diml_outdoor"
    rgb(root / "outleft" / "o_1.png", 6, 8)
    png16(root / "depthmap" / "o_1.png", np.full((6, 8), 12000))
    ds = pickle.loads(pickle.dumps(get_benchmark("diml_outdoor").open(tmp_path)))
    assert ds[0]["depth"][0, 0] == pytest.approx(12.0)


def test_a_listed_benchmark_records_a_hash_of_its_listing(tmp_path):
    """No split file pins these samples, so the listing is what the protocol hash covers: a
    partial extraction is told apart from the full release."""
    import hashlib

    root = tmp_path / "sunrgbd"
    for number in (7, 8):
        rgb(root / "rgb" / f"img-00000{number}.jpg", 4, 5)
        png16(root / "depth" / f"{number}.png", np.full((4, 5), 25000))
    full = get_benchmark("sunrgbd").open(tmp_path).describe()
    expected = hashlib.sha256(b"rgb/img-000007\nrgb/img-000008").hexdigest()  # the sorted ids, one per line
    assert full["split_sha256"] == expected
    (root / "rgb" / "img-000008.jpg").unlink()
    assert get_benchmark("sunrgbd").open(tmp_path).describe()["split_sha256"] != expected
