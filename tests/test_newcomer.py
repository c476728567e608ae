"""A newcomer's first hour (issue 18): the commands the README gives work as written."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from marigold_bench.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]


def test_download_command_is_a_script_that_huggingface_hub_installs():
    from marigold_bench.model.hub import download_command

    command = download_command("depth-anything/Depth-Anything-V2-Small-hf")
    assert command == "hf download depth-anything/Depth-Anything-V2-Small-hf"
    # the program named must be one that the installed huggingface_hub really ships
    shipped = {e.name for e in entry_points(group="console_scripts") if e.value.startswith("huggingface_hub")}
    assert command.split()[0] in shipped


def test_base_checkpoint_message_names_hf_download(monkeypatch, tmp_path):
    from marigold_bench.model.convert import load_sd2_components

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"`hf download someone/absent-model`"):
        load_sd2_components("someone/absent-model")


def test_no_doc_or_message_says_huggingface_cli():
    files = [REPO / "README.md", *sorted((REPO / "marigold_bench").rglob("*.py"))]
    stale = [str(f.relative_to(REPO)) for f in files if "huggingface-cli download" in f.read_text(encoding="utf-8")]
    assert not stale
