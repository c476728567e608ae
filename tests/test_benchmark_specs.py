"""Benchmark specs and their registry: the built-ins' facts, their crops, items' ``mask``, and
benchmarks added by ``--include`` spec files (listed, opened, broken ones warned).

Expected values are written by hand from datasets/*.md (and the official evaluation code they cite),
never read from the package.
"""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
from PIL import Image

import fixtures_data as fd
from marigold_bench import plugins
from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.registry import (UnknownBenchmarkError, all_benchmarks, benchmark_names,
                                          get_benchmark)
from marigold_bench.data.spec import BenchmarkSpec, UnknownCropError
from marigold_bench.errors import BenchError


@pytest.fixture(autouse=True)
def _no_includes(monkeypatch):
    # set, then delete: monkeypatch then restores the variable as it was, even though
    # plugins.include() writes os.environ itself during the test
    monkeypatch.setenv(plugins.INCLUDE_ENV, "")
    monkeypatch.delenv(plugins.INCLUDE_ENV)


# --- the built-ins' facts (datasets/*.md) -----------------------------------------------------

#: name -> (title, folder, archive, min, max, range in valid, processing res, padding,
#:          fit max resolution, test split file, its count, default crop id as recorded)
FACTS = {
    "nyu": ("NYUv2", "nyuv2", "nyu_labeled_extracted.tar", 1e-3, 10.0, True, 0, None, None,
            "nyu_depth/labeled/filename_list_test.txt", 654, "eigen"),
    "kitti": ("KITTI", "kitti", "kitti_eigen_split_test.tar", 1e-5, 80.0, True, 0, None, None,
              "kitti_depth/eigen_test_files_with_gt.txt", 652, "kitti_eigen"),
    "eth3d": ("ETH3D", "eth3d", "eth3d.tar", 1e-5, float("inf"), True, 756, "none", 1024,
              "eth3d_depth/eth3d_filename_list.txt", 454, None),
    "scannet": ("ScanNet", "scannet", "scannet_val_sampled_800_1.tar", 1e-3, 10.0, True, 0, None, None,
                "scannet_depth/scannet_val_sampled_list_800_1.txt", 800, None),
    "diode": ("DIODE", "diode", "diode_val.tar", 0.6, 350.0, False, 640, None, None,
              "diode_depth/diode_val_all_filename_list.txt", 771, None),
    "synthetic": ("Synthetic", None, None, 1e-3, 200.0, True, 0, None, None, None, None, None),
}


DEPTH = ["nyu", "kitti", "eth3d", "scannet", "diode", "synthetic", "sunrgbd", "ibims", "ddad", "diml_indoor",
         "diml_outdoor", "hypersim_test", "vkitti2"]
NORMALS = ["nyu-normals", "scannet-normals", "ibims-normals", "diode-normals", "oasis-normals",
           "synthetic-normals", "dsine/nyu", "dsine/scannet"]
#: MoGe's pack (depth), registered after the normals benchmarks
MOGE = [f"moge/{n}" for n in ("nyu", "kitti", "eth3d", "ibims", "gso", "sintel", "ddad", "diode", "spring", "hammer")]


#: then DA-2K (depth order on pairs, scored by the da2k protocol only)
PAIRS = ["da2k"]


def test_the_built_ins_in_order():
    assert benchmark_names() == DEPTH + NORMALS + MOGE + PAIRS
    assert benchmark_names(task="depth") == DEPTH + MOGE + PAIRS and benchmark_names(task="normals") == NORMALS
    assert [s.name for s in all_benchmarks()] == benchmark_names()


@pytest.mark.parametrize("name", list(FACTS))
def test_built_in_facts(name):
    (title, folder, archive, lo, hi, in_valid, res, padding, fit_max,
     test_split, count, crop) = FACTS[name]
    spec = get_benchmark(name)
    assert (spec.name, spec.title, spec.task, spec.folder, spec.archive) == (name, title, "depth", folder, archive)
    assert (spec.min_depth, spec.max_depth, spec.range_in_valid) == (lo, hi, in_valid)
    assert (spec.processing_res, spec.padding, spec.fit_max_resolution) == (res, padding, fit_max)
    assert (spec.default_split, spec.expected_count, spec.eval_mask) == (test_split, count, crop)
    assert spec.fit_space == "depth" and spec.fit_downsample == "width_only"
    assert spec.origin == "built-in" and "none" in spec.crops
    assert spec.sharp_edges is (name == "synthetic")  # only rendered depth has exact edges
    assert spec.needs_root is (name != "synthetic")


def test_split_names_and_line_counts():
    # the official lists by name, and how many lines each file has
    want = {
        "nyu": {"test": ("nyu_depth/labeled/filename_list_test.txt", 654),
                "train": ("nyu_depth/labeled/filename_list_train.txt", 795),
                "train_small_100": ("nyu_depth/labeled/filename_list_train_small_100.txt", 100)},
        "kitti": {"test": ("kitti_depth/eigen_test_files_with_gt.txt", 697),
                  "val_800": ("kitti_depth/eigen_val_from_train_800.txt", 800),
                  "val_100": ("kitti_depth/eigen_val_from_train_sub_100.txt", 100)},
        "eth3d": {"test": ("eth3d_depth/eth3d_filename_list.txt", 454)},
        "scannet": {"test": ("scannet_depth/scannet_val_sampled_list_800_1.txt", 800)},
        "diode": {"test": ("diode_depth/diode_val_all_filename_list.txt", 771),
                  "all": ("diode_depth/diode_val_all_filename_list.txt", 771),
                  "indoor": ("diode_depth/diode_val_indoor_filename_list.txt", 325),
                  "outdoor": ("diode_depth/diode_val_outdoor_filename_list.txt", 446)},
        "synthetic": {},
    }
    for name, splits in want.items():
        spec = get_benchmark(name)
        got = {split: (rel, spec.split_files[rel].lines) for split, rel in spec.splits.items()}
        assert got == splits, name
        assert all(len(sha) == 64 for sha in spec.split_sha256.values())
    assert get_benchmark("kitti").extra_archives == ("kitti_sampled_val_800.tar",)


def test_recorded_protocol_keeps_the_keys_summaries_have():
    # summary.json["protocol"] (and the CI baseline's sample set) has recorded these since 0.2
    assert get_benchmark("nyu").to_dict() == {
        "name": "nyu", "min_depth": 1e-3, "max_depth": 10.0, "eval_mask": "eigen", "range_in_valid": True,
        "fit_space": "depth", "fit_max_resolution": None, "fit_downsample": "width_only", "processing_res": 0,
        "default_split": "nyu_depth/labeled/filename_list_test.txt", "expected_count": 654,
        "splits": {"test": "nyu_depth/labeled/filename_list_test.txt",
                   "train": "nyu_depth/labeled/filename_list_train.txt",
                   "train_small_100": "nyu_depth/labeled/filename_list_train_small_100.txt"},
        "padding": None}
    assert get_benchmark("synthetic").to_dict()["splits"] == {}
    assert get_benchmark("synthetic").to_dict()["eval_mask"] is None
    assert json.loads(json.dumps(get_benchmark("diode").to_dict()))["range_in_valid"] is False


# --- crops --------------------------------------------------------------------------------------

def _box(shape, rows, cols):
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


def test_crops_are_the_published_windows():
    nyu, kitti = get_benchmark("nyu"), get_benchmark("kitti")
    assert sorted(nyu.crops) == ["eigen", "none"] and nyu.default_crop == "eigen"
    assert sorted(kitti.crops) == ["eigen", "garg", "none"] and kitti.default_crop == "eigen"
    assert np.array_equal(nyu.crop_mask(None, (480, 640)), _box((480, 640), (45, 471), (41, 601)))
    # on the 352x1216 benchmark crop; bounds worked out by hand: int(0.3324324*352) = 117, ...
    assert np.array_equal(kitti.crop_mask("eigen", (352, 1216)), _box((352, 1216), (117, 321), (43, 1172)))
    assert np.array_equal(kitti.crop_mask("garg", (352, 1216)), _box((352, 1216), (143, 349), (43, 1172)))
    for name in FACTS:
        assert get_benchmark(name).crop_mask("none", (5, 7)).all()
    for name in ("eth3d", "scannet", "diode", "synthetic"):
        assert get_benchmark(name).crop_mask(None, (5, 7)).all()


def test_unknown_crop_lists_the_offered_ones():
    with pytest.raises(BenchError, match="nyu has no crop 'garg'.*eigen, none"):
        get_benchmark("nyu").crop_mask("garg", (480, 640))


def test_eval_mask_names_of_0_3_still_pick_a_crop():
    kitti = get_benchmark("kitti")
    garg = kitti.replace(eval_mask="kitti_garg")
    assert garg.default_crop == "garg" and garg.eval_mask == "kitti_garg"
    assert kitti.replace(eval_mask=None).default_crop == "none"
    assert kitti.default_crop == "eigen"  # the registry's spec is unchanged
    with pytest.raises(UnknownCropError, match="does not offer crop 'eigen'"):
        get_benchmark("scannet").replace(eval_mask="eigen")


# --- items: valid = mask & default crop --------------------------------------------------------

@pytest.mark.parametrize("name", ["nyu", "kitti", "eth3d", "scannet", "diode"])
def test_mask_and_default_crop_is_valid(tmp_path, name):
    fx = fd.build(name, tmp_path)
    dataset = load_dataset(name, tmp_path, fx.split)
    for index, expected in enumerate(fx.samples):
        item = dataset[index]
        assert np.array_equal(item["valid"], expected.valid)
        crop = dataset.protocol.crop_mask(None, item["depth"].shape)
        assert np.array_equal(item["mask"] & crop, item["valid"])
        assert not (item["valid"] & ~item["mask"]).any()


def test_mask_keeps_pixels_outside_the_crop(tmp_path):
    nyu = load_dataset("nyu", tmp_path, fd.build("nyu", tmp_path).split)[1]  # 2.5 m with marks
    assert nyu["mask"][1, 1] and not nyu["valid"][1, 1]  # outside the Eigen crop
    assert not nyu["mask"][0, 0] and not nyu["mask"][10, 10]  # 0 m and 65.535 m: out of range
    assert nyu["mask"].sum() == 480 * 640 - 5 and nyu["valid"].sum() == 426 * 560 - 3
    kitti = load_dataset("kitti", tmp_path, fd.build("kitti", tmp_path).split)[0]
    assert kitti["depth"][0, 0] == 5.0 and kitti["mask"][0, 0] and not kitti["valid"][0, 0]


def test_synthetic_items_have_a_mask_and_datasets_pickle():
    dataset = load_dataset("synthetic", split="test:2")
    item = dataset[1]
    assert np.array_equal(item["mask"], item["valid"])  # no crop
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.protocol == dataset.protocol and np.array_equal(clone[1]["depth"], item["depth"])


# --- registry lookups --------------------------------------------------------------------------

def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownBenchmarkError, match="unknown dataset .nyu2.; known datasets: da2k, ddad, diml_indoor, "
                                                    "diml_outdoor, diode, eth3d, hypersim_test, ibims, kitti, "
                                                    "moge/ddad, .*, moge/spring, nyu, scannet, sunrgbd, synthetic, "
                                                    "vkitti2; for task normals: "
                                                    "diode, dsine/nyu, dsine/scannet, ibims, nyu, oasis, scannet, synthetic "):
        get_benchmark("nyu2")
    assert issubclass(UnknownBenchmarkError, BenchError) and issubclass(UnknownBenchmarkError, ValueError)


def test_subsets_titles_and_padding_come_from_the_spec():
    from marigold_bench.commands.common import default_padding
    from marigold_bench.eval.evaluator import subset_of
    from marigold_bench.report.tables import column_title

    assert subset_of("diode", "indoors/scene_00021/scan_00189/x") == "indoor"
    assert subset_of("diode", "val/outdoor/scene_00019/scan_00189/x") == "outdoor"
    assert subset_of("nyu", "indoors/scene_00021/x") is None
    assert column_title("diode-indoor") == "DIODE indoor" and column_title("eth3d") == "ETH3D"
    assert column_title("mystery") == "mystery"

    class Args:
        protocol = "marigold"
        dataset = "eth3d"
    assert default_padding(Args) == "none"
    Args.dataset = "nyu"
    assert default_padding(Args) is None


# --- plugins: a benchmark added by an --include spec file ---------------------------------------

TINY_SPEC = '''
import numpy as np

from marigold_bench.data.crops import Crop
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import Benchmark, read_npy, read_rgb


def _left_half(h, w):
    return 0, h, 0, w // 2


def decode(source, record):
    # depth in centimetres as int16, its own validity: negative values
    raw = read_npy(source, record[1])
    return read_rgb(source, record[0]), raw / 100.0, raw >= 0


SPEC = BenchmarkSpec(
    name="tinyroom", title="Tiny Room", folder="tinyroom",
    min_depth=0.5, max_depth=3.0,
    crops={"left": Crop("tiny_left", _left_half)}, default_crop="left",
    default_split="tinyroom/test.txt", expected_count=1, splits={"test": "tinyroom/test.txt"},
    loader=Benchmark("tinyroom", file_columns=(0, 1), decode=decode),
)
'''


@pytest.fixture
def tinyroom(tmp_path, monkeypatch):
    """A spec folder with the tiny benchmark, its data under <data>/tinyroom and its split."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tinyroom.py").write_text(TINY_SPEC)
    folder = tmp_path / "data" / "tinyroom"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((2, 4, 3), 200, np.uint8)).save(folder / "a.png")
    # row 0: 0.4 m (out of range), 1 m, 2 m (right half), -1 (invalid); row 1: 3 m (excluded), 2.5 m x3
    np.save(folder / "a.npy", np.array([[40, 100, 200, -1], [300, 250, 250, 250]], np.int16))
    splits = tmp_path / "splits" / "tinyroom"
    splits.mkdir(parents=True)
    (splits / "test.txt").write_text("a.png a.npy")
    monkeypatch.setenv("MARIGOLD_SPLITS", str(tmp_path / "splits"))
    monkeypatch.setenv(plugins.INCLUDE_ENV, str(specs))
    return tmp_path


def test_an_included_benchmark_opens_like_a_built_in(tinyroom):
    assert benchmark_names()[-1] == "tinyroom"
    spec = get_benchmark("tinyroom")
    assert spec.origin == f"include {tinyroom / 'specs' / 'tinyroom.py'}"
    item = load_dataset("tinyroom", tinyroom / "data")[0]
    assert item["id"] == "a" and item["depth"][1, 1] == 2.5
    assert item["mask"].tolist() == [[False, True, True, False], [False, True, True, True]]
    assert item["valid"].tolist() == [[False, True, False, False], [False, True, False, False]]
    assert spec.eval_mask == "tiny_left"


def test_benchmarks_lists_builtins_and_the_included_one(tinyroom, capsys):
    assert main(["benchmarks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == [*DEPTH, *NORMALS, *MOGE, *PAIRS, "tinyroom"]
    assert rows["nyu-normals"]["task"] == "normals" and rows["nyu"]["task"] == "depth"
    tiny = rows["tinyroom"]
    assert (tiny["title"], tiny["task"], tiny["source"], tiny["default_crop"]) == ("Tiny Room", "depth", "folder", "left")
    assert tiny["origin"].startswith("include ") and tiny["origin"].endswith("tinyroom.py")
    assert rows["kitti"]["splits"]["test"]["samples"] == 652 and rows["kitti"]["source"] == "archive"
    assert rows["eth3d"]["depth_range"] == [1e-5, "inf"]
    assert rows["nyu"]["origin"] == "built-in"
    assert main(["benchmarks"]) == 0
    text = capsys.readouterr().out
    assert "Tiny Room" in text and "test (654)" in text and "nyuv2/nyu_labeled_extracted.tar" in text


def test_run_accepts_an_included_benchmark_name(tinyroom):
    from marigold_bench.cli import build_parser

    args = build_parser().parse_args(["run", "--dataset", "tinyroom", "--model", "baseline:ramp"])
    assert args.dataset == "tinyroom"


def test_a_broken_spec_file_warns_and_the_rest_works(tinyroom, capsys):
    specs = tinyroom / "specs"
    (specs / "broken.py").write_text("import no_such_module_anywhere\n")
    (specs / "notaspec.py").write_text("SPEC = {'name': 'dict'}\n")
    (specs / "clash.py").write_text(TINY_SPEC.replace('name="tinyroom"', 'name="nyu"'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["benchmarks", "--json"]) == 0
    messages = [str(w.message) for w in caught if issubclass(w.category, plugins.PluginWarning)]
    assert any("broken.py failed to import" in m for m in messages), messages
    assert any("notaspec.py" in m and "not a BenchmarkSpec" in m for m in messages), messages
    assert any("clash.py" in m and "'nyu' is already built in" in m for m in messages), messages
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert names == [*DEPTH, *NORMALS, *MOGE, *PAIRS, "tinyroom"]
    assert get_benchmark("nyu").origin == "built-in" and get_benchmark("nyu").title == "NYUv2"


def test_a_spec_always_offers_no_crop_and_checks_its_default():
    spec = BenchmarkSpec(name="bare", min_depth=0.0, max_depth=1.0)
    assert list(spec.crops) == ["none"] and spec.title == "bare" and spec.eval_mask is None
    with pytest.raises(UnknownCropError, match="default crop 'eigen'"):
        BenchmarkSpec(name="bad", min_depth=0.0, max_depth=1.0, default_crop="eigen")


def test_an_entry_point_benchmark_is_found_and_listed(tmp_path, monkeypatch):
    from importlib import metadata

    (tmp_path / "tinyroom_plugin.py").write_text(TINY_SPEC.replace('"tinyroom"', '"tinyroom_ep"'))
    monkeypatch.syspath_prepend(str(tmp_path))
    point = metadata.EntryPoint(name="tinyroom_ep", value="tinyroom_plugin:SPEC", group="marigold_bench.benchmarks")
    monkeypatch.setattr(plugins.metadata, "entry_points",
                        lambda group: [point] if group == "marigold_bench.benchmarks" else [])
    # the registry caches what it found per --include set; an entry point needs a fresh look
    from marigold_bench.data import registry
    registry._plugins.cache_clear()
    try:
        assert benchmark_names()[-1] == "tinyroom_ep"
        assert get_benchmark("tinyroom_ep").origin == "plugin ? (tinyroom_ep = tinyroom_plugin:SPEC)"
    finally:
        registry._plugins.cache_clear()
