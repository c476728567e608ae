"""Where a benchmark's files come from: an extracted folder or the official ``.tar`` itself.

Reading straight from the archive saves users an extraction of tens of gigabytes. The archive's
member index is built once per file (headers only, data is skipped) and each read opens the file
anew, so a dataset can be shared with forked data-loader workers without a shared file offset.
"""

from __future__ import annotations

import functools
import os
import posixpath
import tarfile
from pathlib import Path

from marigold_bench.data.checksum import check_recorded_sha256
from marigold_bench.errors import ArchiveChecksumError, DataRootError, SampleError



def archive_relpath(spec) -> str:
    """The official archive's path relative to a base data root, e.g.
    ``nyuv2/nyu_labeled_extracted.tar`` (``spec``: a :class:`~marigold_bench.data.spec.BenchmarkSpec`)."""
    return f"{spec.folder}/{spec.archive}"


def leaves_root(rel: str) -> bool:
    """Whether a split file's relative path points outside the folder it is relative to: an
    absolute path (``/x``, ``\\x``, ``C:x``) or one with a ``..`` part."""
    parts = rel.replace("\\", "/").split("/")
    return rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[0].isalpha() and rel[1] == ":") or ".." in parts


class Source:
    """Read-only access to files named by split-file relative paths."""

    kind = "folder"

    def __init__(self, path: Path):
        self.path = Path(path)

    def exists(self, rel: str) -> bool:
        return not leaves_root(rel) and (self.path / rel).is_file()

    def where(self, rel: str) -> str:
        """How to name a file in a message."""
        return str(self.path / rel)

    def read(self, rel: str) -> bytes:
        if leaves_root(rel):
            raise SampleError(f"{rel} is outside the data root {self.path}; not read", path=rel)
        try:
            return (self.path / rel).read_bytes()
        except FileNotFoundError:
            raise SampleError(f"missing file {self.where(rel)}", path=self.where(rel)) from None
        except OSError as err:
            raise _unreadable(self, rel, err) from None


class TarSource(Source):
    """Files inside an uncompressed tar archive; member names may or may not start with ``./``."""

    kind = "archive"

    def __init__(self, path: Path):
        super().__init__(path)
        # an archive downloaded by `data download` has its sha256 beside it: a changed one stops
        # here, before any sample is read from it (cheap unless it was modified since)
        self.recorded_sha256 = check_recorded_sha256(path)
        self.members = _tar_index(str(Path(path).resolve()), *_stamp(path))

    def exists(self, rel: str) -> bool:
        return _normalise(rel) in self.members

    def where(self, rel: str) -> str:
        return f"./{_normalise(rel)} in archive {self.path}"

    def read(self, rel: str) -> bytes:
        member = self.members.get(_normalise(rel))
        if member is None:
            raise SampleError(f"missing file {self.where(rel)}", path=self.where(rel))
        member = _resolve_link(self.members, member, self.where(rel))
        try:
            if member.issparse():  # rare: tarfile knows the layout
                with tarfile.open(self.path, "r:") as tar:
                    return tar.extractfile(member).read()
            with open(self.path, "rb") as f:
                f.seek(member.offset_data)
                data = f.read(member.size)
        except (OSError, tarfile.TarError, AttributeError) as err:
            raise _unreadable(self, rel, err) from None
        if len(data) != member.size:
            raise SampleError(f"truncated file {self.where(rel)} (archive cut short?)",
                              path=self.where(rel))
        return data


#: links followed at most, so that a long chain ends like a loop does
MAX_LINK_HOPS = 16


def _resolve_link(members: dict, member: tarfile.TarInfo, where: str) -> tarfile.TarInfo:
    """The regular member a (chain of) link member(s) names, looked up in the archive's index.

    A hard link names another member by its path in the archive, a symbolic link relative to
    its own folder. Both are followed only inside the archive (tarfile's own resolution raised
    KeyError for a target outside it and RecursionError for a loop); a target that leaves the
    archive, is not in it, loops or is not a regular file is a :class:`SampleError` naming the
    member.
    """
    seen = []
    while not member.isreg():
        name = _normalise(member.name)
        if not (member.issym() or member.islnk()):
            raise SampleError(f"{where}: member {name} is not a regular file", path=where)
        target = member.linkname
        if member.issym():
            target = posixpath.join(posixpath.dirname(name), target)
        kind = "symbolic" if member.issym() else "hard"
        if member.linkname.startswith("/") or leaves_root(posixpath.normpath(target)):
            raise SampleError(f"{where}: member {name} is a {kind} link to {member.linkname}, outside the "
                              "archive; not followed", path=where)
        target = _normalise(posixpath.normpath(target))
        if target in seen or name in seen or len(seen) >= MAX_LINK_HOPS:
            raise SampleError(f"{where}: member {name} is a {kind} link in a loop "
                              f"({' -> '.join(seen + [name, target])})", path=where)
        seen.append(name)
        member = members.get(target)
        if member is None:
            raise SampleError(f"{where}: member {name} is a {kind} link to {target}, which is not in the "
                              "archive", path=where)
    return member


def _unreadable(source: Source, rel: str, err) -> SampleError:
    return SampleError(f"cannot read {source.where(rel)}: {err}", path=source.where(rel))


def _normalise(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _stamp(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _tar_index(path: str, size: int, mtime_ns: int) -> dict:
    # size and mtime are part of the key so that a re-downloaded archive is indexed again.
    try:
        with tarfile.open(path, "r:") as tar:
            return {_normalise(m.name): m for m in tar if not m.isdir()}
    except (tarfile.TarError, OSError) as err:
        if "unexpected end of data" in str(err):
            raise DataRootError(f"{path} (archive cut short: an interrupted download?)") from None
        raise DataRootError(f"{path} (not a readable uncompressed tar archive: {err})") from None


def open_source(spec, root, probe: list[str], split_path=None) -> Source:
    """Find the files of the benchmark ``spec`` describes under ``root`` (or ``$MARIGOLD_DATA``).

    ``probe`` lists the files of the split's first sample; a candidate location is accepted when
    it holds all of them. Candidates, in order: the base-root layout (``<root>/<spec.folder>/``
    extracted, then ``<root>/<spec.folder>/<spec.archive>`` and its ``extra_archives``), the
    benchmark's own folder (extracted, then holding the archives), or the archive itself.
    """
    given = root if root is not None else os.environ.get("MARIGOLD_DATA") or None
    if given is None:
        raise DataRootError(_layout_message(spec, probe, split_path,
                                            "no data root given (--data-root or $MARIGOLD_DATA)"))
    root = Path(given).expanduser()
    if not root.exists():
        raise DataRootError(_layout_message(spec, probe, split_path, f"{root} does not exist"))
    folder = spec.folder or spec.name
    archives = tuple(a for a in (spec.archive, *spec.extra_archives) if a)
    if root.is_file():
        candidates = [root]
    else:
        candidates = [root / folder, *(root / folder / a for a in archives), root, *(root / a for a in archives)]
    tried = []
    for cand in candidates:
        try:
            if cand.is_dir():
                source = Source(cand)
            elif cand.is_file() and (cand.suffix == ".tar" or cand == root):
                source = TarSource(cand)
            else:
                continue
        except ArchiveChecksumError:
            raise  # the right archive, with the wrong content: say so, do not look further
        except DataRootError as err:  # e.g. a cut-off or compressed archive
            tried.append(str(err))
            continue
        if all(source.exists(rel) for rel in probe):
            return source
        tried.append(str(cand))
    reason = (f"{probe[0]} is in none of: " + ", ".join(tried)
              if tried else f"nothing usable in {root}")
    raise DataRootError(_layout_message(spec, probe, split_path, reason))


def _layout_message(spec, probe: list[str], split_path, reason: str) -> str:
    folder = spec.folder or spec.name
    first = f"the first sample of {split_path}" if split_path else "the first sample of the split"
    held = f"{folder}/{spec.archive} (the official archive) or an extracted {folder}/" if spec.archive \
        else f"an extracted {folder}/"
    own = "the benchmark's own folder, or the .tar itself" if spec.archive else "or the benchmark's own folder"
    download = (f"\nDownload it with: marigold-bench data download --dataset {spec.name} --data-root DIR"
                if spec.archive else "")
    return (
        f"{spec.title} data not found: {reason}.\n"
        f"Expected layout: --data-root (or $MARIGOLD_DATA) is a base folder holding "
        f"{held} (e.g. {folder}/{probe[0]}, {first}), {own}.{download}"
    )
