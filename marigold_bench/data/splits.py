"""Split files: where to find them, how to read them, and which ones are the official lists.

The official lists are not shipped with the package (they are upstream's files, pinned by
sha256): users fetch them once with
``marigold-bench data download --splits`` into a user cache, point ``$MARIGOLD_SPLITS`` at a
copy, or pass a file. Each benchmark's spec names its lists, with their sha256 and line counts
(:attr:`~marigold_bench.data.spec.BenchmarkSpec.split_files`) and where they are hosted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.errors import SplitNotFoundError

#: Marigold's official lists (prs-eth/Marigold ``data_split/``), pinned to one commit
MARIGOLD_SPLITS_URL = ("https://raw.githubusercontent.com/prs-eth/Marigold/"
                       "b1dffaaa3f7a2fe406b3bb9dd3c358b30da66060/data_split/")
DOWNLOAD_HINT = "marigold-bench data download --splits"


@dataclass(frozen=True)
class SplitFile:
    """One split file as read: its records and what identifies it in ``summary.json``."""

    path: Path
    sha256: str
    records: tuple[tuple[str, ...], ...]
    #: whether the bytes are one of the benchmark's official lists (its spec knows the sha256)
    official: bool = False


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


def resolve_split(protocol: BenchmarkSpec, split: str | os.PathLike | None = None) -> SplitFile:
    """Read the split a user asked for.

    ``None`` is the benchmark's test split, a key of ``protocol.splits`` names one of its lists,
    one of its official relative paths is looked up like a name, and anything else must be a file.
    """
    if split is None:
        if not protocol.default_split:
            raise SplitNotFoundError(f"{protocol.name} has no default split; pass --split PATH")
        return _checked(protocol, find_split(protocol.default_split))
    text = os.fspath(split)
    if text in protocol.splits:
        return _checked(protocol, find_split(protocol.splits[text]))
    if Path(text).is_file():
        return _checked(protocol, text)
    if text in protocol.split_files:
        return _checked(protocol, find_split(text))
    names = ", ".join(protocol.splits) or "none"
    raise SplitNotFoundError(
        f"split {text!r} for {protocol.name} is neither an existing file nor a known split name "
        f"(known: {names})"
    )


def _checked(protocol: BenchmarkSpec, path) -> SplitFile:
    split = read_split(path)
    return dataclasses.replace(split, official=split.sha256 in protocol.split_sha256.values())
