"""What an installed wheel carries: the files the suite reads at run time, and no split files."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    # build from a copy, so the checkout gets no build/ folder from the test
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "marigold_bench"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                        if (ROOT / name).is_dir() else {}))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{done.stderr[-2000:]}")
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_wheel_has_the_runtime_data(wheel_names):
    for needed in ("marigold_bench/resources/reference.csv",      # table --reference
                   "marigold_bench/resources/models.csv",          # the model registry, `models`
                   "marigold_bench/checkpoints/tiny/model_index.json",
                   "marigold_bench/checkpoints/tiny/unet/config.json"):
        assert needed in wheel_names, needed


def test_wheel_has_no_split_files(wheel_names):
    # the official split lists are downloaded by users, never shipped (upstream's files, see marigold_bench/data/splits.py)
    assert not [n for n in wheel_names if n.endswith(".txt") and "filename_list" in n]
