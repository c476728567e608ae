"""The sha256 of a downloaded archive, recorded beside it and checked when it is used again.

``data download`` writes ``<archive>.sha256`` next to every archive it fetches, in the format of
``sha256sum`` (``<hex>  <file name>``, so ``sha256sum -c`` checks it too). Later:

* ``data download`` and ``data verify`` hash the archive in full and compare;
* every run that opens the archive compares cheaply: an archive not modified since its sidecar
  was written is taken as unchanged (hashing tens of gigabytes per run would cost minutes);
  one modified later is hashed, and a different sha256 stops the run with
  :class:`~marigold_bench.errors.ArchiveChecksumError` naming the file. A newer archive with the
  recorded sha256 (copied, touched) is fine, and its sidecar is touched so the next run is cheap.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from marigold_bench.errors import ArchiveChecksumError

SUFFIX = ".sha256"
CHUNK = 1 << 20


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(archive) -> Path:
    archive = Path(archive)
    return archive.with_name(archive.name + SUFFIX)


def record_sha256(archive, sha256: str | None = None) -> Path:
    """Write ``<archive>.sha256`` (hashing the archive unless ``sha256`` is given); returns its path."""
    archive = Path(archive)
    sha256 = (sha256 or sha256_file(archive)).lower()
    path = sidecar_path(archive)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{sha256}  {archive.name}\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def recorded_sha256(archive) -> str | None:
    """The sha256 recorded beside ``archive``, or None when there is no (readable) sidecar."""
    try:
        text = sidecar_path(archive).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or len(text[0]) != 64 or any(c not in "0123456789abcdef" for c in text[0].lower()):
        return None
    return text[0].lower()


def check_recorded_sha256(archive, full: bool = False) -> str | None:
    """Compare ``archive`` with the sha256 recorded beside it; returns the recorded value (None:
    nothing recorded, nothing checked).

    Args:
        archive: the archive's path.
        full: hash it even when it was not modified after the sidecar was written.

    Raises:
        ArchiveChecksumError: the archive's content is not what was recorded; the message names
            the archive and its sidecar and says how to get a good copy.
    """
    archive = Path(archive)
    want = recorded_sha256(archive)
    if want is None:
        return None
    sidecar = sidecar_path(archive)
    if not full and archive.stat().st_mtime_ns <= sidecar.stat().st_mtime_ns:
        return want
    got = sha256_file(archive)
    if got != want:
        raise ArchiveChecksumError(
            f"{archive} has changed since it was downloaded: its sha256 is {got}, but {sidecar} "
            f"recorded {want}. Download it again with `marigold-bench data download --force` "
            f"(or delete {sidecar.name} if you replaced the archive on purpose)")
    # same content, newer file: date the sidecar at least as late, so the next run need not hash
    stamp = max(time.time_ns(), archive.stat().st_mtime_ns)
    os.utime(sidecar, ns=(stamp, stamp))
    return want


__all__ = ["SUFFIX", "sha256_file", "sidecar_path", "record_sha256", "recorded_sha256", "check_recorded_sha256"]
