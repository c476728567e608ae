"""Split files: where to find them, how to read them, and which ones are the official lists.

The official lists are not part of the project (DESIGN.md): users fetch them once with
``marigold-bench data download --splits`` into a user cache, point ``$MARIGOLD_SPLITS`` at a
copy, or pass a file. The manifest of the official lists (upstream URL pinned to a commit,
sha256, number of samples) ships as package data in ``resources/splits_manifest.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from marigold_bench.data.protocol import Protocol
from marigold_bench.errors import SplitNotFoundError

MANIFEST_PATH = Path(__file__).resolve().parent.parent / "resources" / "splits_manifest.json"
DOWNLOAD_HINT = "marigold-bench data download --splits"


@dataclass(frozen=True)
class SplitFile:
    """One split file as read: its records and what identifies it in ``summary.json``."""

    path: Path
    sha256: str
    records: tuple[tuple[str, ...], ...]

    @property
    def official(self) -> bool:
        """Whether the bytes are one of the official lists (the manifest knows the sha256)."""
        return any(e["sha256"] == self.sha256 for e in load_manifest()["files"].values())


@functools.lru_cache(maxsize=1)
def load_manifest() -> dict:
    """The manifest of official split files: ``{"files": {relpath: {url, sha256, samples}}}``."""
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))


def parse_split(text: str) -> tuple[tuple[str, ...], ...]:
    """Records of a split file: one per non-empty line, fields split on any whitespace.

    The official files end without a newline and one of them has a double space, so neither a
    line count nor a single-space split would be right.
    """
    return tuple(tuple(line.split()) for line in text.splitlines() if line.strip())


def read_split(path: str | os.PathLike) -> SplitFile:
    path = Path(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SplitNotFoundError(f"cannot read split file {path}: {err}") from None
    return SplitFile(path.resolve(), hashlib.sha256(data).hexdigest(), parse_split(text))


def splits_cache_dir() -> Path:
    """Where ``data download --splits`` puts the official lists."""
    if os.environ.get("MARIGOLD_CACHE"):
        return Path(os.environ["MARIGOLD_CACHE"]).expanduser() / "splits"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "marigold_bench" / "splits"


def split_search_dirs() -> list[Path]:
    """Folders searched for official lists: ``$MARIGOLD_SPLITS`` first, then the cache."""
    env = os.environ.get("MARIGOLD_SPLITS", "")
    dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return dirs + [splits_cache_dir()]


def find_split(relpath: str) -> Path:
    """Locate an official list (e.g. ``nyu_depth/labeled/filename_list_test.txt``)."""
    dirs = split_search_dirs()
    for folder in dirs:
        if (folder / relpath).is_file():
            return folder / relpath
    looked = ", ".join(str(d) for d in dirs)
    raise SplitNotFoundError(
        f"split file {relpath} not found (looked in: {looked}). Fetch the official lists with "
        f"`{DOWNLOAD_HINT}`, set $MARIGOLD_SPLITS to a folder holding them, or pass --split PATH."
    )


def resolve_split(protocol: Protocol, split: str | os.PathLike | None = None) -> SplitFile:
    """Read the split a user asked for.

    ``None`` is the benchmark's test split, a key of ``protocol.splits`` names one of its lists,
    an official relative path is looked up like a name, and anything else must be a file.
    """
    if split is None:
        if not protocol.default_split:
            raise SplitNotFoundError(f"{protocol.name} has no default split; pass --split PATH")
        return read_split(find_split(protocol.default_split))
    text = os.fspath(split)
    if text in protocol.splits:
        return read_split(find_split(protocol.splits[text]))
    if Path(text).is_file():
        return read_split(text)
    if text in load_manifest()["files"]:
        return read_split(find_split(text))
    names = ", ".join(protocol.splits) or "none"
    raise SplitNotFoundError(
        f"split {text!r} for {protocol.name} is neither an existing file nor a known split name "
        f"(known: {names})"
    )
