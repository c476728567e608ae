"""``marigold-bench data verify`` and ``data download`` against fixtures and a local server."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import fixtures_data as fd
from marigold_bench.commands import data as data_cmd
from marigold_bench.data import load_dataset
from marigold_bench.data.download import DownloadError
from marigold_bench.data.protocol import get_protocol
from marigold_bench.data.registry import official_split_files
from marigold_bench.data.splits import resolve_split
from marigold_bench.errors import BenchError


def run_data(*argv) -> int:
    parser = argparse.ArgumentParser(prog="marigold-bench")
    data_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *map(str, argv)])
    return args.func(args)


class Server:
    """Serves ``files`` (URL path -> bytes) with optional HTTP Range support; logs Range headers."""

    def __init__(self):
        self.files, self.ranges, self.honour_range = {}, [], True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                wanted = self.headers.get("Range")
                server.ranges.append(wanted)
                start = int(wanted[6:].split("-")[0]) if wanted and server.honour_range else 0
                if start >= len(data) and start:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def nyu(tmp_path):
    fx = fd.build("nyu", tmp_path / "src")
    tar = fd.make_tar(fx.folder, tmp_path / "src" / "nyu_labeled_extracted.tar")
    return fx, tar.read_bytes()


@pytest.fixture
def archive_server(server, nyu, monkeypatch):
    monkeypatch.setenv("MARIGOLD_DATA_URL", server.url + "/evaluation_dataset")
    server.files["/evaluation_dataset/nyuv2/nyu_labeled_extracted.tar"] = nyu[1]
    return server


def test_download_resumes_a_partial_archive(archive_server, nyu, tmp_path):
    fx, data = nyu
    dest = tmp_path / "data" / "nyuv2" / "nyu_labeled_extracted.tar"
    dest.parent.mkdir(parents=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data[:10000])
    sha = hashlib.sha256(data).hexdigest()
    assert run_data("download", "--dataset", "nyu", "--data-root", tmp_path / "data",
                    "--sha256", sha) == 0
    assert archive_server.ranges == ["bytes=10000-"]
    assert dest.read_bytes() == data and not part.exists()
    # the downloaded base root is directly usable
    assert len(load_dataset("nyu", tmp_path / "data", split=str(fx.split))) == 2


def test_download_restarts_when_server_ignores_range(archive_server, nyu, tmp_path):
    archive_server.honour_range = False
    dest = tmp_path / "nyuv2" / "nyu_labeled_extracted.tar"
    dest.parent.mkdir()
    dest.with_name(dest.name + ".part").write_bytes(b"garbage that must not survive")
    assert run_data("download", "--dataset", "nyu", "--data-root", tmp_path) == 0
    assert dest.read_bytes() == nyu[1]


def test_download_of_a_complete_part_file(archive_server, nyu, tmp_path):
    dest = tmp_path / "nyuv2" / "nyu_labeled_extracted.tar"
    dest.parent.mkdir()
    dest.with_name(dest.name + ".part").write_bytes(nyu[1])
    assert run_data("download", "--dataset", "nyu", "--data-root", tmp_path) == 0
    assert dest.read_bytes() == nyu[1]


def test_download_rejects_a_sha256_mismatch(archive_server, tmp_path):
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        run_data("download", "--dataset", "nyu", "--data-root", tmp_path, "--sha256", "0" * 64)
    assert not list((tmp_path / "nyuv2").iterdir())  # neither the archive nor a .part


def test_download_missing_file_is_a_clear_error(server, monkeypatch, tmp_path):
    monkeypatch.setenv("MARIGOLD_DATA_URL", server.url)
    with pytest.raises(DownloadError, match="HTTP 404"):
        run_data("download", "--dataset", "kitti", "--data-root", tmp_path)


def test_download_needs_something_to_fetch():
    with pytest.raises(BenchError, match="--dataset NAME and/or --splits"):
        run_data("download")


@pytest.fixture
def splits_server(server, splits_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MARIGOLD_SPLITS_URL", server.url + "/data_split/")
    monkeypatch.setenv("MARIGOLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MARIGOLD_SPLITS", raising=False)
    for relpath in official_split_files():
        server.files["/data_split/" + relpath] = (splits_dir / relpath).read_bytes()
    return server


def test_download_splits_into_the_cache(splits_server, tmp_path):
    with pytest.raises(BenchError):  # nothing in the cache yet
        resolve_split(get_protocol("nyu"))
    assert run_data("download", "--splits") == 0
    split = resolve_split(get_protocol("nyu"))
    assert split.path.is_relative_to(tmp_path / "cache" / "splits")
    assert len(split.records) == 654 and split.official
    assert len(resolve_split(get_protocol("diode"), "outdoor").records) == 446
    served = len(splits_server.ranges)
    assert run_data("download", "--splits") == 0  # present and intact: nothing fetched again
    assert len(splits_server.ranges) == served


def test_download_splits_rejects_a_tampered_list(splits_server, tmp_path):
    path = "/data_split/eth3d_depth/eth3d_filename_list.txt"
    splits_server.files[path] = splits_server.files[path] + b"\nextra.JPG extra.JPG"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        run_data("download", "--splits")
    assert not (tmp_path / "cache" / "splits" / "eth3d_depth" / "eth3d_filename_list.txt").exists()


# --- verify -----------------------------------------------------------------------------------

def test_verify_good_roots(tmp_path, capsys):
    fx = fd.build("kitti", tmp_path)
    assert run_data("verify", "--dataset", "kitti", "--data-root", tmp_path,
                    "--split", fx.split) == 0
    tar = fd.make_tar(fx.folder, tmp_path / "k.tar")
    assert run_data("verify", "--dataset", "kitti", "--data-root", tar, "--split", fx.split) == 0
    out = capsys.readouterr().out
    assert "samples: 2" in out and "missing files: 0" in out and out.rstrip().endswith("OK")


def test_verify_reports_missing_and_corrupt_files(tmp_path, capsys):
    fx = fd.build("nyu", tmp_path)
    (fx.folder / "test/office_0005/filled_0002.png").unlink()  # listed, though never scored
    assert run_data("verify", "--dataset", "nyu", "--data-root", tmp_path,
                    "--split", fx.split) == 1
    out = capsys.readouterr().out
    assert "missing files: 1" in out and "test/office_0005/filled_0002.png" in out
    assert out.rstrip().endswith("FAILED")
    (fx.folder / "test/office_0005/filled_0002.png").write_bytes(b"\x89PNG not really")
    assert run_data("verify", "--dataset", "nyu", "--data-root", tmp_path,
                    "--split", fx.split) == 1
    out = capsys.readouterr().out
    assert "unreadable files: 1" in out and "filled_0002.png" in out
    assert run_data("verify", "--dataset", "nyu", "--data-root", tmp_path,
                    "--split", fx.split, "--quick") == 0


def test_verify_bad_root(tmp_path, capsys):
    fx = fd.build("diode", tmp_path / "src")
    assert run_data("verify", "--dataset", "diode", "--data-root", tmp_path / "empty",
                    "--split", fx.split) == 1
    out = capsys.readouterr().out
    assert "diode/diode_val.tar" in out and "marigold-bench data download --dataset diode" in out


def test_verify_counts_against_the_official_test_split(tmp_path, capsys, splits_dir):
    # A tree holding only the first official NYU sample: recognised, but 653 files short.
    first = resolve_split(get_protocol("nyu")).records[0]
    fx = fd.build("nyu", tmp_path / "src")
    for src, dst in zip(fd_files(fx)[0], first):
        (tmp_path / "nyuv2" / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fx.folder / src, tmp_path / "nyuv2" / dst)
    assert run_data("verify", "--dataset", "nyu", "--data-root", tmp_path, "--quick") == 1
    out = capsys.readouterr().out
    assert "samples: 654 (expected 654)" in out and "official list" in out
    assert "missing files: 1959" in out and "... and 1939 more" in out


def fd_files(fx):
    return [line.split() for line in fx.split.read_text().split("\n")]


@pytest.mark.skipif(importlib.util.find_spec("marigold_bench.cli") is None,
                    reason="marigold_bench.cli not written yet")
def test_cli_data_verify(tmp_path, capsys):
    from marigold_bench.cli import main

    fx = fd.build("scannet", tmp_path)
    assert main(["data", "verify", "--dataset", "scannet", "--data-root", str(tmp_path),
                 "--split", str(fx.split)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
    (fx.folder / fd_files(fx)[1][1]).unlink()
    assert main(["data", "verify", "--dataset", "scannet", "--data-root", str(tmp_path),
                 "--split", str(fx.split)]) == 1
    assert fd_files(fx)[1][1] in capsys.readouterr().out
    assert main(["data", "download"]) == 2  # a user error: one line, no traceback
    assert "--dataset NAME and/or --splits" in capsys.readouterr().err
