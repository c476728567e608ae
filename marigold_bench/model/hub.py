"""The local Hugging Face cache, read only: where a hub id's files are, if they are here.

The suite never downloads a model. A hub id (``depth-anything/Depth-Anything-V2-Small-hf``)
resolves to the snapshot folder that ``hf download`` (huggingface_hub's CLI) left in the cache; a missing
one gets a message with that command.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder, by huggingface_hub's rules, read from the environment
    at call time (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``), so
    that a changed environment counts even after huggingface_hub was imported."""
    env = os.environ
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return os.path.expanduser(env[name])
    if env.get("HF_HOME"):
        return os.path.join(os.path.expanduser(env["HF_HOME"]), "hub")
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "huggingface", "hub")


def download_command(repo_id: str) -> str:
    """The shell command that puts ``repo_id`` into the local cache (for messages)."""
    return f"hf download {repo_id}"


def how_to_fetch(repo_id: str) -> str:
    """The end of every "not in the cache" message: how to fill the cache."""
    return (f"this suite never downloads models. On a machine with internet run `{download_command(repo_id)}` "
            "(then copy its cache here, or set HF_HOME/HF_HUB_CACHE)")


@contextlib.contextmanager
def no_loading_bar():
    """transformers' progress bars off inside (it draws "Loading weights" on every model load), and
    back as they were after: the user's own setting is theirs."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of ``repo_id`` (its ``main`` revision) in the hub cache, or
    None; never downloads."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=hf_cache_dir()))
    except Exception:  # LocalEntryNotFoundError, validation errors, ...: all mean "not here"
        return None


__all__ = ["hf_cache_dir", "download_command", "how_to_fetch", "cached_snapshot", "no_loading_bar"]
