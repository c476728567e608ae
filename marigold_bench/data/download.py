"""Fetching the official evaluation archives and split files (standard library only).

Archives are tens of gigabytes, so a download writes to ``<name>.part``, resumes it with an HTTP
Range request when rerun, and only renames it into place once complete (and, when a sha256 is
known, verified). Its sha256 is then recorded beside it (``<archive>.sha256``, see
:mod:`marigold_bench.data.checksum`) and checked whenever the archive is downloaded, verified or
read again. Both base URLs can be overridden through the environment, for mirrors and for tests
that serve fixtures from a local server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from marigold_bench.data.checksum import check_recorded_sha256, record_sha256, sha256_file
from marigold_bench.data.registry import get_benchmark, official_split_files
from marigold_bench.data.source import archive_relpath
from marigold_bench.data.splits import splits_cache_dir
from marigold_bench.errors import BenchError, DownloadError

DATA_URL = "https://share.phys.ethz.ch/~pf/bingkedata/marigold/evaluation_dataset/"
TIMEOUT_S = 60
CHUNK = 1 << 20


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def archive_url(name: str) -> str:
    """Where benchmark ``name``'s archive lives (``$MARIGOLD_DATA_URL`` overrides the host)."""
    return _with_slash(os.environ.get("MARIGOLD_DATA_URL") or DATA_URL) + archive_relpath(get_benchmark(name))


def split_url(relpath: str) -> str:
    """Upstream URL of an official split file (``$MARIGOLD_SPLITS_URL`` overrides the base)."""
    base = os.environ.get("MARIGOLD_SPLITS_URL") or official_split_files()[relpath][0].splits_url
    return _with_slash(base) + relpath


def download_file(url: str, dest, sha256: str | None = None, quiet: bool = False) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` if an earlier try left one."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not _fetch(url, part, quiet):
        part.unlink()  # the server disowned our partial copy: start over once
        _fetch(url, part, quiet)
    if sha256:
        got = sha256_file(part)
        if got != sha256.lower():
            part.unlink()
            raise DownloadError(f"sha256 mismatch for {url}: expected {sha256}, got {got}; "
                                f"the partial file was removed, rerun to download it again")
    os.replace(part, dest)
    return dest


def _record(dest: Path, sha256: str | None = None) -> Path:
    """Record the archive's sha256 beside it (hashing it unless given) and return ``dest``."""
    record_sha256(dest, sha256)
    return dest


def _fetch(url: str, part: Path, quiet: bool) -> bool:
    """Append the rest of ``url`` to ``part``; False when ``part`` cannot be resumed."""
    have = part.stat().st_size if part.exists() else 0
    request = Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urlopen(request, timeout=TIMEOUT_S)
    except HTTPError as err:
        if err.code == 416 and have:  # nothing past our bytes: complete if sizes agree
            return err.headers.get("Content-Range", "").endswith(f"/{have}")
        raise DownloadError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (URLError, OSError) as err:
        raise DownloadError(f"cannot download {url}: {getattr(err, 'reason', err)}") from None
    with response:
        resumed = have and response.status == 206
        if have and resumed and not response.headers.get("Content-Range", "").startswith(
                f"bytes {have}-"):
            return False
        if not resumed:
            have = 0  # a plain 200 means the server ignored the Range header
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, file=sys.stderr,
                   desc=part.name[:-5], disable=quiet or None)
        try:
            with open(part, "ab" if have else "wb") as f, bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    bar.update(len(block))
        except OSError as err:
            raise DownloadError(f"download of {url} interrupted ({err}); rerun the same command "
                                f"to resume from {part}") from None
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"download of {url} stopped at {part.stat().st_size} of {total} "
                            f"bytes; rerun the same command to resume from {part}")
    return True


def archive_dest(name: str, data_root) -> Path:
    """Where benchmark ``name``'s archive goes: ``<root>/<folder>/<archive>`` under ``data_root``
    (None: ``$MARIGOLD_DATA``), where the loaders look for it."""
    data_root = data_root or os.environ.get("MARIGOLD_DATA")
    if not data_root:
        raise BenchError("no data root given: pass --data-root DIR or set $MARIGOLD_DATA")
    spec = get_benchmark(name)
    if not spec.archive:
        raise BenchError(f"{name} has no archive to download")
    return Path(data_root).expanduser() / archive_relpath(spec)


def download_archive(name: str, data_root, sha256: str | None = None, force: bool = False,
                     quiet: bool = False) -> Path:
    """Put benchmark ``name``'s archive where the loaders look (`archive_dest`)."""
    dest = archive_dest(name, data_root)
    if dest.exists() and not force:
        # already here: the sha256 recorded at download must still hold (in full: this command
        # is where a user expects the archive to be checked), and so must a given one
        recorded = check_recorded_sha256(dest, full=True)
        got = recorded or (sha256_file(dest) if sha256 else None)
        if sha256 and got != sha256.lower():
            raise DownloadError(f"{dest} exists but its sha256 is not {sha256}; "
                                f"rerun with --force to download it again")
        return dest if recorded else _record(dest, got)
    if force:
        dest.with_name(dest.name + ".part").unlink(missing_ok=True)
    download_file(archive_url(name), dest, sha256, quiet)
    return _record(dest, sha256)


def download_splits(dest=None, force: bool = False, quiet: bool = False) -> list[Path]:
    """Fetch every official split file into ``dest`` (the user cache), each sha256-checked."""
    dest = Path(dest) if dest else splits_cache_dir()
    paths = []
    for relpath, (spec, facts) in official_split_files().items():
        if not spec.splits_url and not os.environ.get("MARIGOLD_SPLITS_URL"):
            continue  # a plugin's list that is not hosted anywhere
        target = dest / relpath
        if force or not target.is_file() or sha256_file(target) != facts.sha256:
            target.unlink(missing_ok=True)
            download_file(split_url(relpath), target, facts.sha256, quiet=True)
        paths.append(target)
        if not quiet:
            print(f"ok  {target}", file=sys.stderr)
    return paths
