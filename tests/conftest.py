"""Shared test set-up.

The official split files are not part of the project (users download them). Tests and CI use
the copies in ``../shared/datasets/splits`` when that folder exists beside the checkout.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SPLITS = REPO.parent / "shared" / "datasets" / "splits"

if "MARIGOLD_SPLITS" not in os.environ and SHARED_SPLITS.is_dir():
    os.environ["MARIGOLD_SPLITS"] = str(SHARED_SPLITS)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def splits_dir() -> Path:
    """The official split files, or skip where they are not available."""
    path = Path(os.environ.get("MARIGOLD_SPLITS", SHARED_SPLITS))
    if not path.is_dir():
        pytest.skip("official split files not available (set MARIGOLD_SPLITS)")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The tiny random-initialised Marigold model saved in diffusers format, once per session."""
    from marigold_bench.model.tiny import build_tiny_pipeline

    path = tmp_path_factory.mktemp("tiny_marigold")
    build_tiny_pipeline(seed=0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def one_thread():
    """The tiny model is too small to gain from threads; on a shared machine they cost 10-30x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
