"""Every command that writes refuses an output path it cannot write to, in one line, before any
work: a file where a folder is meant, a folder where a file is meant, a path under a file, a
read-only place. Nothing is created or changed (`marigold_bench.eval.outdir`'s one guard).

These paths once ended in IsADirectoryError, FileExistsError, NotADirectoryError or
PermissionError tracebacks, some of them after the whole inference had run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_bench.cli import main

RAMP = "baseline:ramp"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run (outside each test's folder, whose contents are compared)."""
    run = tmp_path_factory.mktemp("source") / "run"
    assert main(["run", "--dataset", "synthetic", "--model", RAMP, "--max-samples", "2", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "photo.png"
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(path)
    return path


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """Work starting fails the test: every refusal must come first."""
    import importlib

    import marigold_bench.data.download as download

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")
    for command in ("common", "predict", "run", "leaderboard", "ablate"):  # each holds its own name for it
        monkeypatch.setattr(importlib.import_module(f"marigold_bench.commands.{command}"), "build_predictor", refuse)
    monkeypatch.setattr(download, "download_file", refuse)


#: command -> (kind of path it writes, argv with OUT where the path goes)
def commands(run_dir, image) -> dict[str, tuple[str, list[str]]]:
    return {
        "table": ("file", ["table", str(run_dir), "--out", "OUT"]),
        "gallery": ("file", ["gallery", str(run_dir), "--out", "OUT"]),
        "regress": ("file", ["regress", "--baseline", "OUT", str(run_dir), "--update"]),
        "predict": ("folder", ["predict", "--model", RAMP, "--input", str(image), "--out", "OUT"]),
        "leaderboard": ("folder", ["leaderboard", "--models", RAMP, "--datasets", "synthetic", "--max-samples", "2",
                                   "--out", "OUT"]),
        "export": ("folder", ["export", str(run_dir), "--out", "OUT"]),
        "ablate": ("folder", ["ablate", "--study", "ensemble", "--values", "1", "--seeds", "1", "--model", RAMP,
                              "--max-samples", "2", "--out", "OUT"]),
        "reproduce": ("folder", ["reproduce", "--cells", "tiny*", "--out", "OUT"]),
        "data": ("folder", ["data", "download", "--dataset", "nyu", "--data-root", "OUT"]),
    }


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content's hash ("dir" for folders)."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def refused(argv, where: Path, capsys, *needles) -> str:
    """Run ``argv``; exit 2, one ``marigold-bench <cmd>: error:`` line holding ``needles``, and
    nothing under ``where`` created or changed."""
    before = snapshot(where)
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"marigold-bench {argv[0]}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert snapshot(where) == before
    return lines[0]


def _with(argv: list[str], path) -> list[str]:
    return [str(path) if a == "OUT" else a for a in argv]


NAMES = ["table", "gallery", "regress", "predict", "leaderboard", "export", "ablate", "reproduce", "data"]


@pytest.mark.parametrize("name", NAMES)
def test_a_path_under_a_file_is_refused(run_dir, image, tmp_path, capsys, name):
    kind, argv = commands(run_dir, image)[name]
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    target = blocker / ("x.md" if kind == "file" else "x")
    refused(_with(argv, target), tmp_path, capsys, str(target), f"cannot be made: {blocker} is a file, not a folder")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("table", "gallery", "regress")])
def test_a_file_where_a_folder_goes_is_refused(run_dir, image, tmp_path, capsys, name):
    _, argv = commands(run_dir, image)[name]
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    if name == "data":  # the data root may be a folder; the archive's folder under it is the file
        (tmp_path / "root").mkdir()
        afile = tmp_path / "root" / "nyuv2"
        afile.write_text("keep me")
        refused(_with(argv, tmp_path / "root"), tmp_path, capsys, str(afile), "is a file, not a folder")
        return
    refused(_with(argv, afile), tmp_path, capsys, f"--out {afile} is a file, not a folder")


@pytest.mark.parametrize("name, flag", [("table", "--out"), ("gallery", "--out"), ("regress", "--baseline")])
def test_a_folder_where_a_file_goes_is_refused(run_dir, image, tmp_path, capsys, name, flag):
    _, argv = commands(run_dir, image)[name]
    folder = tmp_path / "dir.png"
    (folder / "inside").mkdir(parents=True)
    refused(_with(argv, folder), tmp_path, capsys, f"{flag} {folder} is a folder, not a file")


@pytest.fixture
def read_only(monkeypatch, tmp_path):
    """A folder that `os.access` says cannot be written (what a read-only mount, an immutable
    folder or a missing permission says; chmod alone does not stop root, who runs the CI)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access

    def access(path, mode, *args, **kwargs):
        inside = os.path.abspath(path) == str(locked) or os.path.abspath(path).startswith(f"{locked}{os.sep}")
        return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)
    monkeypatch.setattr(os, "access", access)
    return locked


@pytest.mark.parametrize("name", NAMES)
def test_a_read_only_place_is_refused(run_dir, image, tmp_path, capsys, read_only, name):
    kind, argv = commands(run_dir, image)[name]
    target = read_only / ("new" if kind == "folder" else "new.md")
    refused(_with(argv, target), tmp_path, capsys, str(target),
            f"is not writable ({read_only}: no write permission, or a read-only file system)")


def test_gallery_in_a_read_only_run_directory_says_so(run_dir, tmp_path, capsys, monkeypatch):
    """Without --out the figure goes into the run directory: a read-only one is said, naming the
    default, and --out elsewhere works."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if os.path.abspath(path) == str(run_dir)
                        and mode & os.W_OK else real(path, mode, *a, **k))
    line = refused(["gallery", str(run_dir)], run_dir, capsys, f"the default --out {run_dir / 'gallery.png'}")
    assert "not writable" in line


def test_a_table_goes_into_a_folder_it_makes(run_dir, tmp_path):
    # a missing parent is made, as gallery and regress --update make theirs (was FileNotFoundError)
    out = tmp_path / "new" / "deeper" / "table.md"
    assert main(["table", str(run_dir), "--out", str(out)]) == 0
    assert out.read_text().startswith("| ")


def test_a_read_only_file_is_not_replaced(run_dir, tmp_path, capsys, monkeypatch):
    table = tmp_path / "table.md"
    table.write_text("an earlier table")
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if os.path.abspath(path) == str(table)
                        and mode & os.W_OK else real(path, mode, *a, **k))
    refused(["table", str(run_dir), "--out", str(table)], tmp_path, capsys, f"--out {table} is not writable")
