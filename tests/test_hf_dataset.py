"""``marigold_bench.data.to_hf_dataset``: a benchmark as a Hugging Face ``datasets.Dataset``."""

from pathlib import Path

import numpy as np
import pytest

import fixtures_data as fd
from marigold_bench.data import load_dataset, to_hf_dataset

REPO = Path(__file__).resolve().parents[1]


def shadowed_by_checkout(module_file: str | None, repo: Path) -> bool:
    """Whether ``import datasets`` found the checkout's own ``datasets/`` notes folder. Only that
    folder counts: a virtual environment inside the checkout (``.venv/``, ``venv/``, any name)
    holds the real package under the checkout too, and that is fine."""
    return module_file is None or Path(module_file).resolve().is_relative_to((repo / "datasets").resolve())


def test_import_datasets_is_the_hugging_face_package():
    # the repository's datasets/ folder (notes, no __init__.py) must not shadow it from the root
    import datasets

    assert not (REPO / "datasets" / "__init__.py").exists()
    assert not shadowed_by_checkout(datasets.__file__, REPO)
    assert hasattr(datasets, "Dataset") and hasattr(datasets, "load_from_disk")


@pytest.mark.parametrize("venv", [".venv", "venv", "env-3.12"])
def test_a_venv_inside_the_checkout_is_not_shadowing(tmp_path, venv):
    # the README's test command with the venv inside the checkout: the package lies under the repo
    repo = tmp_path / "checkout"
    installed = repo / venv / "lib" / "python3.12" / "site-packages" / "datasets" / "__init__.py"
    installed.parent.mkdir(parents=True)
    installed.touch()
    (repo / "datasets").mkdir()
    assert not shadowed_by_checkout(str(installed), repo)
    assert shadowed_by_checkout(str(repo / "datasets" / "__init__.py"), repo)
    assert shadowed_by_checkout(None, repo)  # a namespace package: the notes folder itself


def assert_rows_equal_items(hf, items):
    assert len(hf) == len(items)
    for row, item in zip(hf, items):
        assert row["id"] == item["id"]
        image = np.asarray(row["image"].convert("RGB"))
        assert image.dtype == np.uint8 and np.array_equal(image, item["rgb"])  # PNG: lossless
        depth = np.asarray(row["depth"], dtype=np.float64)
        assert depth.shape == item["depth"].shape
        assert np.array_equal(depth, item["depth"].astype(np.float64))  # float32 kept exactly
        assert np.array_equal(np.asarray(row["valid"], dtype=bool), item["valid"])


def test_synthetic_rows_equal_the_suites_items_and_survive_save_and_load(tmp_path):
    import datasets

    hf = to_hf_dataset("synthetic", split="val", max_samples=3, cache_dir=tmp_path / "cache")
    assert isinstance(hf, datasets.Dataset)
    assert set(hf.column_names) == {"id", "image", "depth", "valid"}
    assert isinstance(hf.features["image"], datasets.Image)
    assert hf.features["depth"].dtype == "float32" and hf.features["valid"].dtype == "bool"
    reference = load_dataset("synthetic", split="val")
    items = [reference[i] for i in range(3)]
    assert not items[1]["valid"].all()  # a mask with holes is among them, so it is really compared
    assert_rows_equal_items(hf, items)
    hf.save_to_disk(str(tmp_path / "saved"))
    back = datasets.load_from_disk(str(tmp_path / "saved"))
    assert back.features == hf.features
    assert_rows_equal_items(back, items)
    # numpy format, as a user maps it
    arrays = hf.with_format("numpy")[:2]
    assert arrays["depth"].shape == (2, *items[0]["depth"].shape) and arrays["depth"].dtype == np.float32


def test_a_benchmark_in_its_official_layout(tmp_path):
    fx = fd.build_nyu(tmp_path)
    hf = to_hf_dataset("nyu", root=tmp_path, split=str(fx.split), cache_dir=tmp_path / "cache")
    assert hf["id"] == [s.id for s in fx.samples]
    # the mask is the protocol's (Eigen crop, 1 mm < d < 10 m), worked out by the fixture itself
    for row, expected in zip(hf, fx.samples):
        assert np.array_equal(np.asarray(row["valid"], dtype=bool), expected.valid)
        assert np.array_equal(np.asarray(row["depth"], dtype=np.float32), expected.depth)


def test_a_changed_split_is_not_served_from_the_cache(tmp_path):
    fx = fd.build_nyu(tmp_path)
    first = to_hf_dataset("nyu", root=tmp_path, split=str(fx.split), cache_dir=tmp_path / "cache")
    fx.split.write_bytes(fx.split.read_bytes().split(b"\n")[0])  # keep only the first sample
    second = to_hf_dataset("nyu", root=tmp_path, split=str(fx.split), cache_dir=tmp_path / "cache")
    assert len(first) == 2 and len(second) == 1
