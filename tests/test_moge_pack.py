"""MoGe's evaluation pack: the sample-folder format, the warp, the ten specs, and point metrics.

Fixtures are written here from the format's definition (datasets/moge.md: log-encoded 16-bit depth
with ``near``/``far`` text chunks, normalised intrinsics in meta.json, segment ids with a
``labels`` chunk); expected values are worked out by hand or by a second formula, never read
back from the package.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.moge_format import (DepthRangeMissingError, MetaError, SegmentLabelsMissingError,
                                             decode_depth_codes, read_depth_png)
from marigold_bench.data.moge_pack import SPECS, MogeSpec
from marigold_bench.data.moge_resample import masked_nearest_resize, remap_linear_u8, remap_nearest, resize_nearest
from marigold_bench.data.moge_warp import select_segments, warp_sample
from marigold_bench.data.registry import GROUPS, MOGE_ALL, benchmark_names, expand_groups, get_benchmark
from marigold_bench.errors import BenchError, DataRootError, SplitNotFoundError
from marigold_bench.eval.moge import moge_align, moge_metrics
from marigold_bench.eval.points import (MissingIntrinsicsError, align_points_scale, align_points_scale_xyz_shift,
                                        align_points_xyz_shift, aligned_spaces, delta1_point, depth_to_points,
                                        fov_x_error, lift_depth_prediction, local_point_metrics, mean_of_scores,
                                        moge_point_scores, point_metrics, rel_point)
from marigold_bench.output_spaces import ALL_OUTPUT_SPACES, OUTPUT_SPACES, POINT_OUTPUT_SPACES, is_point_map

# --- a writer of the format, from its definition ---------------------------------------------


def encode_depth(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Codes of datasets/moge.md: 0 unknown (NaN), 65535 +inf, else 1 + round(65533 v) with v the
    position of log d between log near and log far."""
    codes = np.zeros(depth.shape, np.uint16)
    finite = np.isfinite(depth)
    v = (np.log(depth[finite]) - math.log(near)) / (math.log(far) - math.log(near))
    codes[finite] = 1 + np.round(np.clip(v, 0, 1) * 65533).astype(np.uint16)
    codes[np.isposinf(depth)] = 65535
    return codes


def png16(codes: np.ndarray, **text) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, str(value))
    buf = io.BytesIO()
    Image.fromarray(codes.astype(np.uint16)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_sample(folder: Path, rgb: np.ndarray, depth: np.ndarray, intrinsics=None, segmentation=None,
                 labels=None, near=None, far=None, range_chunks=True, meta=None):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / "image.jpg", quality=100)
    finite = depth[np.isfinite(depth)]
    near = float(finite.min()) if near is None else near
    far = float(finite.max()) if far is None else far
    text = {"near": repr(near), "far": repr(far)} if range_chunks else {}
    (folder / "depth.png").write_bytes(png16(encode_depth(depth, near, far), **text))
    if meta is None:
        meta = {"intrinsics": intrinsics}
    (folder / "meta.json").write_text(json.dumps(meta))
    if segmentation is not None:
        text = {} if labels is None else {"labels": json.dumps(labels)}
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        Image.fromarray(segmentation.astype(np.uint8)).save(folder / "segmentation.png", pnginfo=info)


def decoded_jpeg(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


H, W = 48, 64
CENTRED = [[1.0, 0.0, 0.5], [0.0, 1.0 * W / H, 0.5], [0.0, 0.0, 1.0]]


def smooth_depth(h=H, w=W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (2.0 + xx / w + yy / h).astype(np.float32)


def rgb(h=H, w=W, seed=0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 4 % 256, yy * 5 % 256, (xx + yy) % 256], -1).astype(np.uint8)


def pack_root(tmp_path: Path, folder="NYUv2", index=("a",), test=None, under="moge") -> Path:
    bench = tmp_path / under / folder if under else tmp_path / folder
    bench.mkdir(parents=True, exist_ok=True)
    (bench / ".index.txt").write_text("\n".join(index))
    if test is not None:
        (bench / ".test.txt").write_text("\n".join(test))
    return bench


# --- decoding --------------------------------------------------------------------------------


def test_codes_decode_to_the_log_range_by_hand():
    codes = np.array([[0, 1, 65534, 65535, 32767]], np.uint16)
    depth = decode_depth_codes(codes, 1.0, 100.0)
    v = (32767 - 1) / 65533
    assert math.isnan(depth[0, 0]) and depth[0, 3] == np.inf
    assert depth[0, 1] == pytest.approx(1.0, rel=1e-6) and depth[0, 2] == pytest.approx(100.0, rel=1e-6)
    # a second formula: log-space interpolation, exp(log near + v (log far - log near))
    assert depth[0, 4] == pytest.approx(math.exp(v * math.log(100.0)), rel=1e-6)
    assert depth.dtype == np.float32


def test_unit_chunk_scales_the_depth():
    codes = np.array([[1, 65534]], np.uint16)
    assert read_depth_png(png16(codes, near=2.0, far=8.0, unit=0.5), "d.png")[0].tolist() == \
        pytest.approx([1.0, 4.0], rel=1e-6)


def test_depth_png_without_near_far_is_a_clear_error():
    codes = np.array([[1, 2]], np.uint16)
    with pytest.raises(DepthRangeMissingError, match=r"d\.png: no 'near' text chunk"):
        read_depth_png(png16(codes), "d.png")
    with pytest.raises(DepthRangeMissingError, match="'far'"):
        read_depth_png(png16(codes, near=1.0), "d.png")
    assert issubclass(DepthRangeMissingError, BenchError)


def test_sample_without_near_far_fails_naming_its_file(tmp_path):
    pack_root(tmp_path)
    write_sample(tmp_path / "moge" / "NYUv2" / "a", rgb(), smooth_depth(), CENTRED, range_chunks=False)
    ds = load_dataset("moge/nyu", root=tmp_path)
    with pytest.raises(DepthRangeMissingError) as err:
        ds[0]
    assert "a/depth.png" in str(err.value) and "\n" not in str(err.value)


def test_segmentation_without_labels_chunk_is_a_clear_error(tmp_path):
    pack_root(tmp_path, "iBims-1")
    seg = np.zeros((H, W), np.uint8)
    write_sample(tmp_path / "moge" / "iBims-1" / "a", rgb(), smooth_depth(), CENTRED, segmentation=seg, labels=None)
    with pytest.raises(SegmentLabelsMissingError, match=r"a/segmentation\.png: no 'labels' text chunk"):
        load_dataset("moge/ibims", root=tmp_path)[0]


def test_bad_intrinsics_are_a_clear_error(tmp_path):
    pack_root(tmp_path)
    write_sample(tmp_path / "moge" / "NYUv2" / "a", rgb(), smooth_depth(), [[1, 0], [0, 1]])
    with pytest.raises(MetaError, match="3x3"):
        load_dataset("moge/nyu", root=tmp_path)[0]


# --- resampling primitives (OpenCV's and utils3d's rules, checked by hand) --------------------


def test_nearest_remap_rounds_half_to_even_and_reads_zero_outside():
    src = np.arange(1, 11, dtype=np.float32)[None]  # 1..10
    xs = np.array([[0.5, 1.5, 2.5, 3.49, -0.5, -0.51, 9.5, 9.49, np.nan]], np.float32)
    out = remap_nearest(src, xs, np.zeros_like(xs))
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.49 -> 3, -0.5 -> 0, -0.51 -> -1 (outside), 9.5 -> 10 (outside)
    assert out.tolist() == [[1, 3, 3, 4, 1, 0, 0, 10, 0]]


def test_linear_remap_uses_opencv4_fixed_point():
    src = np.array([[0, 25, 50]], np.uint8)
    xs = np.array([[1.02, 0.3, 2.5]], np.float32)
    out = remap_linear_u8(src, xs, np.zeros_like(xs))
    # 1.02 -> 33/32: (25 * 31 + 50 * 1) / 32 = 25.78 -> 26; 0.3 -> 10/32: 25 * 10 / 32 = 7.81 -> 8;
    # 2.5 -> half of 50 and half of the zero border: 25
    assert out.tolist() == [[26, 8, 25]]


def test_nearest_resize_takes_floor_of_the_scaled_index():
    row = np.arange(7)[None]
    assert resize_nearest(row, (1, 3)).tolist() == [[0, 2, 4]]  # floor(i * 7 / 3)
    assert resize_nearest(row, (1, 10)).tolist() == [[0, 0, 1, 2, 2, 3, 4, 4, 5, 6]]  # floor(0.7 i)


def test_masked_nearest_resize_takes_the_first_nearest_valid_pixel():
    values = np.arange(16, dtype=np.float32).reshape(4, 4)
    mask = np.ones((4, 4), bool)
    mask[0, 0] = False          # the first of four equidistant pixels of cell (0, 0)
    mask[2:, 2:] = False        # cell (1, 1) has no valid pixel
    out, valid = masked_nearest_resize(values, mask, (2, 2))
    # each 2x2 cell's centre is equidistant from its four pixels: the first valid in row order
    assert valid.tolist() == [[True, True], [True, False]]
    assert out[valid].tolist() == [1.0, 2.0, 8.0]


# --- the warp --------------------------------------------------------------------------------


def test_centred_intrinsics_at_the_source_size_warp_to_the_identity(tmp_path):
    bench = pack_root(tmp_path, "GSO")
    depth = smooth_depth(H, W)
    depth[10:14, 20:30] = np.nan  # a hole
    write_sample(bench / "a", rgb(), depth, CENTRED)
    spec = get_benchmark("moge/gso").replace(target_size=(H, W))
    item = spec.open(tmp_path)[0]
    assert item["rgb"].tolist() == decoded_jpeg(bench / "a" / "image.jpg").tolist()
    assert item["mask"].tolist() == np.isfinite(depth).tolist()
    # the stored codes quantise log-depth to 1/65533 of the log range: relative error <= 1e-5
    np.testing.assert_allclose(item["depth"][item["mask"]], depth[np.isfinite(depth)], rtol=1e-5)
    np.testing.assert_allclose(item["intrinsics"], np.array(CENTRED, np.float32), rtol=1e-6)
    assert item["valid"].tolist() == item["mask"].tolist()


def test_warp_keeps_the_wider_axis_of_another_aspect():
    # a 64x48 view, fx = 1 (horizontal fov: width / focal = 1), warped to a square frame: the
    # square's field of view is the raw vertical one, 1 / fy = 0.75
    depth = smooth_depth()
    out = warp_sample(rgb(), depth, np.array(CENTRED, np.float32), (32, 32))
    assert out.intrinsics[0, 0] == pytest.approx(1 / 0.75, rel=1e-6)
    assert out.intrinsics[1, 1] == pytest.approx(1 / 0.75, rel=1e-6)
    assert out.intrinsics[0, 2] == 0.5 and out.intrinsics[1, 2] == 0.5
    assert out.image.shape == (32, 32, 3) and out.depth.shape == (32, 32)


def test_far_outliers_beyond_1000_times_the_first_percentile_are_dropped():
    depth = np.full((H, W), 2.0, np.float32)
    depth[0, :5] = 5000.0  # > 1000 x 2 m
    depth[1, :5] = 1500.0  # < 2000 m: kept
    out = warp_sample(rgb(), depth, np.array(CENTRED, np.float32), (H, W))
    assert not out.mask[0, :5].any() and out.mask[1, :5].all()
    assert out.mask.sum() == H * W - 5


def test_a_sample_with_no_valid_pixel_is_all_valid_at_depth_one_as_moge_keeps_it():
    depth = np.full((H, W), np.nan, np.float32)
    depth[0, 0] = np.inf
    out = warp_sample(rgb(), depth, np.array(CENTRED, np.float32), (H, W))
    assert out.empty and out.mask.all() and (out.depth == 1).all()


def test_segments_are_chosen_as_moge_chooses_them():
    seg = np.zeros((100, 100), np.uint8)
    seg[:50] = 1            # 5000 px
    seg[50:70] = 2          # 2000 px
    seg[70:75] = 3          # 500 px: below 1000
    seg[75:] = 4            # 2500 px but named "sky"
    labels = {"background": 0, "wall": 1, "table": 2, "cup": 3, "sky": 4, "ghost": 9}
    assert select_segments(seg, labels) == {"wall": 1, "table": 2}
    assert list(select_segments(seg, labels)) == ["wall", "table"]  # most pixels first
    assert select_segments(seg, labels, max_segments=1) == {"wall": 1}


# --- specs, layout, splits -------------------------------------------------------------------

#: datasets/moge.md's table: name -> (title folder, target W, H, metric, sharp boundary, segmentation)
TABLE = {
    "nyu": ("NYUv2", 640, 480, True, False, False), "kitti": ("KITTI", 750, 375, True, False, False),
    "eth3d": ("ETH3D", 2048, 1365, True, False, True), "ibims": ("iBims-1", 640, 480, True, True, True),
    "gso": ("GSO", 512, 512, False, False, False), "sintel": ("Sintel", 872, 436, False, True, True),
    "ddad": ("DDAD", 1400, 700, True, False, True), "diode": ("DIODE", 1024, 768, True, False, True),
    "spring": ("Spring", 1920, 1080, False, True, False), "hammer": ("HAMMER", 1664, 832, True, True, False),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_the_ten_specs_state_moges_table(name):
    folder, w, h, metric, sharp, seg = TABLE[name]
    spec = get_benchmark(f"moge/{name}")
    assert isinstance(spec, MogeSpec)
    assert (spec.folder, spec.target_size, spec.metric, spec.sharp_edges, spec.segmentation) == \
        (f"moge/{folder}", (h, w), metric, sharp, seg)
    assert spec.default_split == ".index.txt"
    assert spec.splits == ({"index": ".index.txt", "test": ".test.txt"} if name in ("nyu", "spring")
                           else {"index": ".index.txt"})
    facts = spec.to_dict()
    assert facts["target_size"] == [h, w] and facts["metric"] is metric and facts["name"] == f"moge/{name}"


def test_moge_all_is_the_ten_in_moges_order_and_registered():
    assert MOGE_ALL == tuple(f"moge/{n}" for n in TABLE) == tuple(SPECS)
    assert GROUPS["moge-all"] == MOGE_ALL
    assert set(MOGE_ALL) <= set(benchmark_names())
    assert expand_groups(["nyu", "moge-all", "moge/nyu"]) == ["nyu", *MOGE_ALL]


def test_benchmarks_lists_the_pack(capsys):
    assert main(["benchmarks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["moge/sintel"]["title"] == "Sintel (MoGe)" and rows["moge/sintel"]["sharp_edges"] is True
    assert rows["moge/spring"]["splits"]["test"]["file"] == ".test.txt"


def _one_sample_pack(tmp_path, under="moge"):
    bench = pack_root(tmp_path, "NYUv2", index=("s/1", "s/2"), test=("s/2",), under=under)
    for sid, base in (("s/1", 2.0), ("s/2", 3.0)):
        write_sample(bench / sid, rgb(), smooth_depth() + base, CENTRED)
    return bench


@pytest.mark.parametrize("layout", ["base", "moge-eval", "own", "tar"])
def test_the_pack_opens_from_each_layout(tmp_path, layout):
    bench = _one_sample_pack(tmp_path / "data", under="moge" if layout != "moge-eval" else None)
    root = {"base": tmp_path / "data", "moge-eval": tmp_path / "data", "own": bench}.get(layout)
    if layout == "tar":
        root = tmp_path / "nyu.tar"
        with tarfile.open(root, "w") as tar:
            tar.add(bench, arcname=".")
    ds = load_dataset("moge/nyu", root=root)
    assert ds.ids == ["s/1", "s/2"]
    item = ds[1]
    assert sorted(item) == ["depth", "id", "intrinsics", "mask", "rgb", "valid"]
    assert item["id"] == "s/2" and item["depth"].shape == (480, 640) and item["intrinsics"].shape == (3, 3)
    assert ds.describe()["count"] == 2


def test_a_pack_dataset_pickles_for_workers(tmp_path):
    import pickle

    _one_sample_pack(tmp_path)
    ds = load_dataset("moge/nyu", root=tmp_path)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.protocol == ds.protocol and np.array_equal(clone[0]["depth"], ds[0]["depth"])


def test_named_and_own_split_files(tmp_path):
    _one_sample_pack(tmp_path)
    assert load_dataset("moge/nyu", root=tmp_path, split="test").ids == ["s/2"]
    own = tmp_path / "mine.txt"
    own.write_text("s/1\n\n")
    assert load_dataset("moge/nyu", root=tmp_path, split=own).ids == ["s/1"]
    with pytest.raises(SplitNotFoundError, match="index, test"):
        load_dataset("moge/nyu", root=tmp_path, split="val")


def test_a_missing_pack_names_the_layout(tmp_path):
    with pytest.raises(DataRootError, match=r"moge/NYUv2"):
        load_dataset("moge/nyu", root=tmp_path)


def test_segmentation_items_carry_ids_and_kept_labels(tmp_path):
    bench = pack_root(tmp_path, "iBims-1")
    seg = np.zeros((H, W), np.uint8)
    seg[:, : W // 2] = 3
    write_sample(bench / "a", rgb(), smooth_depth(), CENTRED, segmentation=seg, labels={"chair": 3, "sky": 0})
    spec = get_benchmark("moge/ibims").replace(target_size=(H, W), min_seg_area=10)
    item = spec.open(tmp_path)[0]
    assert item["labels"] == {"chair": 3}
    assert item["segmentation"].tolist() == seg.tolist()


def test_meta_without_intrinsics_scores_depth_but_refuses_points(tmp_path):
    bench = pack_root(tmp_path)
    depth = smooth_depth()
    write_sample(bench / "a", rgb(), depth, meta={"note": "no camera"})
    item = load_dataset("moge/nyu", root=tmp_path)[0]
    assert item["intrinsics"] is None and item["depth"].shape == (H, W)  # not warped
    aligned, _, _ = moge_align(item["depth"] * 2.0, item["depth"], item["mask"], "depth_scale_invariant")
    assert moge_metrics(aligned, item["depth"], item["mask"])["abs_rel"] == pytest.approx(0, abs=1e-6)
    with pytest.raises(MissingIntrinsicsError, match="a: no intrinsics"):
        moge_point_scores(np.zeros((H, W, 3)), item["depth"], item["mask"], item["intrinsics"],
                          "points_scale_invariant", True, sample_id=item["id"])
    assert issubclass(MissingIntrinsicsError, BenchError)


# --- point maps ------------------------------------------------------------------------------


def test_output_space_words():
    assert POINT_OUTPUT_SPACES == ("points_metric", "points_scale_invariant", "points_affine_invariant")
    assert OUTPUT_SPACES == ("depth_affine_invariant", "disparity_affine_invariant", "depth_scale_invariant",
                             "depth_metric")
    assert ALL_OUTPUT_SPACES == OUTPUT_SPACES + POINT_OUTPUT_SPACES
    assert is_point_map("points_metric") and not is_point_map("depth_metric")
    with pytest.raises(ValueError, match="unknown output space"):
        is_point_map("normals")


def test_depth_lifts_through_normalised_intrinsics_by_hand():
    depth = np.array([[2.0, 4.0]])  # 1x2: pixel centres at u = 0.25, 0.75; v = 0.5
    k = [[0.5, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]]
    pts = depth_to_points(depth, k)
    # x = (u - cx) / fx * d, y = (v - cy) / fy * d, z = d
    assert pts[0].tolist() == [pytest.approx([-1.0, 0.0, 2.0]), pytest.approx([2.0, 0.0, 4.0])]
    with pytest.raises(MissingIntrinsicsError):
        depth_to_points(depth, None)


def test_a_depth_prediction_lifts_with_the_true_intrinsics():
    k = [[0.5, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]]
    pts, space = lift_depth_prediction(np.array([[2.0, 4.0]]), k, "depth_affine_invariant")
    assert space == "points_affine_invariant" and pts[0, 0].tolist() == pytest.approx([-1.0, 0.0, 2.0])
    assert lift_depth_prediction(np.ones((1, 1)), k, "depth_metric")[1] == "points_metric"
    with pytest.raises(ValueError, match="disparity_affine_invariant"):
        lift_depth_prediction(np.ones((1, 1)), k, "disparity_affine_invariant")
    with pytest.raises(MissingIntrinsicsError):
        lift_depth_prediction(np.ones((1, 1)), None, "depth_metric")


def test_scale_fit_is_the_weighted_median_of_coordinate_ratios():
    p = np.ones((3, 3))
    g = np.array([[2.0] * 3, [2.0] * 3, [9.0] * 3])
    assert align_points_scale(p, g, np.ones(3)) == pytest.approx(2.0)  # ratios 2 x6, 9 x3
    # weight the outlier up to more than half of the total: its ratio wins
    assert align_points_scale(p, g, np.array([1.0, 1.0, 3.0])) == pytest.approx(9.0)


def test_shift_fit_is_the_weighted_median_per_axis():
    p = np.zeros((3, 3))
    g = np.array([[1.0, 5.0, 0.0], [2.0, 6.0, 0.0], [10.0, 7.0, 0.0]])
    assert align_points_xyz_shift(p, g, np.ones(3)).tolist() == pytest.approx([2.0, 6.0, 0.0])


def test_scale_and_shift_fit_recovers_an_exact_similarity():
    rng = np.random.default_rng(0)
    p = rng.random((7, 3)) + 1
    g = 3.0 * p + np.array([1.0, -2.0, 0.5])
    scale, shift = align_points_scale_xyz_shift(p, g, 1 / np.linalg.norm(g, axis=1))
    assert scale == pytest.approx(3.0) and shift.tolist() == pytest.approx([1.0, -2.0, 0.5])


def test_scale_and_shift_fit_passes_through_an_anchor_and_ignores_one_outlier():
    p = np.array([[0.0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1], [0.5, 0.5, 1]])
    g = 2 * p
    g[4] = [40.0, -7.0, 3.0]  # an outlier
    scale, shift = align_points_scale_xyz_shift(p, g, np.ones(5))
    assert scale == pytest.approx(2.0) and shift.tolist() == pytest.approx([0.0, 0.0, 0.0])


def test_rel_and_delta1_point_by_hand():
    g = np.array([[2.0, 0, 0], [2.0, 0, 0]])
    p = np.array([[1.0, 0, 0], [2.1, 0, 0]])
    # errors 1 and 0.1 over |g| = 2 (+1e-6)
    assert rel_point(p, g) == pytest.approx((0.5 + 0.05) / 2, rel=1e-5)
    # 1 < 0.25 * min(2, 1)? no; 0.1 < 0.25 * min(2, 2.1) = 0.5? yes
    assert delta1_point(p, g) == 0.5


def test_alignment_chain_follows_moge():
    assert aligned_spaces("points_metric", True) == POINT_OUTPUT_SPACES
    assert aligned_spaces("points_metric", False) == ("points_scale_invariant", "points_affine_invariant")
    assert aligned_spaces("points_scale_invariant", True) == ("points_scale_invariant", "points_affine_invariant")
    assert aligned_spaces("points_affine_invariant", True) == ("points_affine_invariant",)
    with pytest.raises(ValueError):
        aligned_spaces("depth_metric", True)


def _small_scene(n=12):
    # a 32x32 map whose valid pixels are a 12x12 block: the 64x64 subsample then has 24x24
    # cells on it, so the anchor search stays small
    depth = np.full((32, 32), 3.0)
    depth[:, 16:] = 6.0
    mask = np.zeros((32, 32), bool)
    mask[6:6 + n, 10:10 + n] = True
    k = [[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]
    return depth_to_points(depth, k), mask


def test_point_metrics_of_exact_predictions_are_perfect():
    gt, mask = _small_scene()
    for space, pred in (("points_scale_invariant", gt * 0.5), ("points_affine_invariant", gt * 0.5 + 1.0),
                        ("points_metric", gt + np.array([0.1, -0.2, 0.3]))):
        scores = point_metrics(pred, gt, mask, space, is_metric=True)
        assert set(scores) == set(aligned_spaces(space, True))
        assert scores[space]["rel"] == pytest.approx(0.0, abs=1e-9) and scores[space]["delta1"] == 1.0


def test_a_scaled_prediction_fails_the_metric_alignment_by_its_scale():
    gt, mask = _small_scene()
    scores = point_metrics(gt * 2.0, gt, mask, "points_metric", is_metric=True)
    # a shift cannot undo a doubling: the shift that best fits is a weighted median of g - 2g =
    # -g per axis, so the error cannot vanish; after the scale fit it does
    assert scores["points_metric"]["rel"] > 0.2
    assert scores["points_scale_invariant"]["rel"] == pytest.approx(0.0, abs=1e-9)


def test_local_points_fit_each_segment_on_its_own():
    gt, mask = _small_scene()
    seg = np.zeros((32, 32), np.int64)
    seg[:, 16:] = 1
    pred = gt.copy()
    pred[:, 16:] = gt[:, 16:] * 3.0 + 2.0  # segment 1 off by its own similarity
    local = local_point_metrics(pred, gt, mask, seg, {"left": 0, "right": 1})
    assert local["rel"] == pytest.approx(0.0, abs=1e-9) and local["delta1"] == 1.0
    # one similarity for the whole map cannot fit both halves
    whole = point_metrics(pred, gt, mask, "points_affine_invariant", True)["points_affine_invariant"]
    assert whole["rel"] > 0.05
    # a segment with fewer than 10 subsample cells is not scored: none qualifies -> {}
    tiny = np.full((32, 32), 5)
    tiny[6, 10] = 7  # one valid pixel: 4 cells
    assert local_point_metrics(pred, gt, mask, tiny, {"speck": 7}) == {}


def test_local_points_relative_to_the_segment_diameter_by_hand():
    gt, mask = _small_scene()
    seg = np.zeros((32, 32), np.int64)
    pred = gt.copy()
    # one valid pixel off by 0.5 along z: the fit (anchored on exact pixels) stays the identity
    pred[10, 10, 2] += 0.5
    local = local_point_metrics(pred, gt, mask, seg, {"all": 0})
    g = gt[mask]
    diameter = (g.max(axis=0) - g.min(axis=0)).max()
    assert local["rel"] == pytest.approx(0.5 / diameter / mask.sum())
    assert local["delta1"] == (1.0 if 0.5 < 0.25 * diameter else 1 - 1 / mask.sum())


def test_fov_x_error_in_degrees_by_hand():
    pred = [[0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1]]  # 2 atan(1) = 90 degrees
    gt = [[0.5 / math.tan(math.radians(30)), 0, 0.5], [0, 1, 0.5], [0, 0, 1]]  # 60 degrees
    err = fov_x_error(pred, gt)
    assert err["mae"] == pytest.approx(30.0) and err["deviation"] == pytest.approx(30.0)
    assert fov_x_error(gt, pred)["deviation"] == pytest.approx(-30.0)


def test_moge_average_skips_missing_and_nan():
    records = [{"points_scale_invariant": {"rel": 0.1}, "local_points": {"rel": 0.4}},
               {"points_scale_invariant": {"rel": 0.3}, "local_points": {}},
               {"points_scale_invariant": {"rel": float("nan")}}]
    assert mean_of_scores(records) == {"points_scale_invariant": {"rel": pytest.approx(0.2)},
                                       "local_points": {"rel": pytest.approx(0.4)}}


def test_scores_of_a_warped_item_with_segments(tmp_path):
    bench = pack_root(tmp_path, "iBims-1")
    k16 = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]]
    depth = np.full((16, 16), np.nan, np.float32)
    depth[4:9] = smooth_depth(5, 16)  # few valid pixels keep the anchor searches small
    seg = np.zeros((16, 16), np.uint8)
    seg[:, 8:] = 1
    write_sample(bench / "a", rgb(16, 16), depth, k16, segmentation=seg, labels={"l": 0, "r": 1})
    spec = get_benchmark("moge/ibims").replace(target_size=(16, 16), min_seg_area=10)
    item = spec.open(tmp_path)[0]
    assert item["mask"].sum() == 80 and item["labels"] == {"l": 0, "r": 1}
    gt = depth_to_points(item["depth"], item["intrinsics"])
    scores = moge_point_scores(gt * 4.0, item["depth"], item["mask"], item["intrinsics"], "points_scale_invariant",
                               spec.metric, item["segmentation"], item["labels"], pred_intrinsics=item["intrinsics"])
    assert set(scores) == {"points_scale_invariant", "points_affine_invariant", "local_points", "fov_x"}
    assert scores["points_scale_invariant"]["rel"] == pytest.approx(0, abs=1e-9)
    assert scores["local_points"]["rel"] == pytest.approx(0, abs=1e-9)
    assert scores["fov_x"] == {"mae": 0.0, "deviation": 0.0}


def test_leaderboard_expands_the_moge_all_group(tmp_path, monkeypatch, capsys):
    from marigold_bench.cli import main

    monkeypatch.delenv("MARIGOLD_DATA", raising=False)
    # no data here: the launch stops before any model runs, naming the pack's first benchmark
    assert main(["leaderboard", "--models", "baseline:ramp", "--datasets", "moge-all", "--out", str(tmp_path)]) == 2
    assert "NYUv2 (MoGe) data not found" in capsys.readouterr().err
