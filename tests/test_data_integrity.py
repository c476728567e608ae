"""Loud data problems: a split with another sample count than the official one, and an archive
whose content changed under the sha256 recorded at download."""

import hashlib
import json
import os
import shutil
import warnings

import pytest

import fixtures_data as fd
from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.checksum import check_recorded_sha256, record_sha256, sidecar_path
from marigold_bench.data.split_dataset import SplitCountWarning
from marigold_bench.errors import ArchiveChecksumError
from test_data_commands import archive_server, nyu, run_data, server  # noqa: F401 (fixtures)


@pytest.fixture
def short_official_split(tmp_path, monkeypatch):
    """NYU's official test list replaced by the fixture's 2 lines, where the suite looks for it."""
    fx = fd.build_nyu(tmp_path / "data")
    splits = tmp_path / "splits"
    for relpath in ("nyu_depth/labeled/filename_list_test.txt", "nyu_depth/labeled/filename_list_train.txt"):
        (splits / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fx.split, splits / relpath)
    monkeypatch.setenv("MARIGOLD_SPLITS", str(splits))
    monkeypatch.setenv("MARIGOLD_CACHE", str(tmp_path / "cache"))
    return fx


def test_a_split_with_the_wrong_count_warns_records_and_runs_on(tmp_path, short_official_split):
    fx = short_official_split
    out = tmp_path / "run"
    with pytest.warns(SplitCountWarning) as caught:
        code = main(["run", "--dataset", "nyu", "--model", "baseline:ramp", "--data-root", str(tmp_path / "data"),
                     "--out", str(out)])
    assert code == 0  # the run continues
    message = str(caught[0].message)
    assert "filename_list_test.txt yields 2 nyu samples but the official split has 654" in message
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 2
    assert summary["protocol"]["split_count"] == 2 and summary["protocol"]["expected_count"] == 654
    # another official list is held to its own count (NYU train: 795 in the manifest)
    with pytest.warns(SplitCountWarning, match="official split has 795"):
        train = load_dataset("nyu", tmp_path / "data", split="train")
    assert train.describe()["expected_count"] == 795


def test_a_users_own_split_file_has_no_official_count(tmp_path, short_official_split):
    fx = short_official_split
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitCountWarning)
        dataset = load_dataset("nyu", tmp_path / "data", split=str(fx.split))
    info = dataset.describe()
    assert info["split_count"] == 2 and info["expected_count"] is None


def test_the_official_split_at_its_official_count_is_quiet(tmp_path, splits_dir):
    # the real list: 654 lines, 654 samples -- only the first sample's files need to exist
    from marigold_bench.data.protocol import get_protocol
    from marigold_bench.data.splits import resolve_split

    first = resolve_split(get_protocol("nyu")).records[0]
    fx = fd.build_nyu(tmp_path / "src")
    for src, dst in zip(fx.split.read_text().split("\n")[0].split(), first):
        (tmp_path / "nyuv2" / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fx.folder / src, tmp_path / "nyuv2" / dst)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitCountWarning)
        info = load_dataset("nyu", tmp_path).describe()
    assert info["split_count"] == info["expected_count"] == 654


def test_download_records_the_sha256_beside_the_archive(archive_server, nyu, tmp_path):  # noqa: F811
    assert run_data("download", "--dataset", "nyu", "--data-root", tmp_path) == 0
    archive = tmp_path / "nyuv2" / "nyu_labeled_extracted.tar"
    sidecar = sidecar_path(archive)
    assert sidecar.name == "nyu_labeled_extracted.tar.sha256"
    # sha256sum's format, with the hash worked out here from the served bytes
    assert sidecar.read_text() == f"{hashlib.sha256(nyu[1]).hexdigest()}  nyu_labeled_extracted.tar\n"
    assert run_data("download", "--dataset", "nyu", "--data-root", tmp_path) == 0  # unchanged: fine


def change_in_place(archive, offset=600):
    """Flip one byte inside the archive and make it look modified after its sidecar."""
    data = bytearray(archive.read_bytes())
    data[offset] ^= 0xFF
    archive.write_bytes(bytes(data))
    later = sidecar_path(archive).stat().st_mtime_ns + 10**9
    os.utime(archive, ns=(later, later))


def test_a_changed_archive_is_a_clear_error_naming_it(archive_server, nyu, tmp_path, capsys):  # noqa: F811
    fx, _ = nyu
    assert run_data("download", "--dataset", "nyu", "--data-root", tmp_path) == 0
    archive = tmp_path / "nyuv2" / "nyu_labeled_extracted.tar"
    assert len(load_dataset("nyu", tmp_path, split=str(fx.split))) == 2  # good before the change
    change_in_place(archive)
    # a run that reads the archive
    code = main(["run", "--dataset", "nyu", "--split", str(fx.split), "--model", "baseline:ramp",
                 "--data-root", str(tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert str(archive) in err and "has changed since it was downloaded" in err
    assert "nyu_labeled_extracted.tar.sha256" in err and "--force" in err
    assert not (tmp_path / "run" / "summary.json").exists()
    # the download command and verify say the same
    with pytest.raises(ArchiveChecksumError, match="nyu_labeled_extracted.tar has changed"):
        run_data("download", "--dataset", "nyu", "--data-root", tmp_path)
    assert run_data("verify", "--dataset", "nyu", "--data-root", tmp_path, "--split", fx.split) == 1
    assert "has changed since it was downloaded" in capsys.readouterr().out
    # --force fetches a good copy and records it again
    assert run_data("download", "--dataset", "nyu", "--data-root", tmp_path, "--force") == 0
    assert len(load_dataset("nyu", tmp_path, split=str(fx.split))) == 2


def test_an_unmodified_archive_is_not_rehashed_and_a_touched_one_is(tmp_path, monkeypatch):
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"x" * 2048)
    want = record_sha256(archive)
    assert want.read_text().startswith(hashlib.sha256(b"x" * 2048).hexdigest())
    calls = []
    import marigold_bench.data.checksum as checksum

    real = checksum.sha256_file
    monkeypatch.setattr(checksum, "sha256_file", lambda p: calls.append(p) or real(p))
    os.utime(archive, ns=(1, 1))  # older than its sidecar: trusted without hashing
    assert check_recorded_sha256(archive) is not None and calls == []
    later = sidecar_path(archive).stat().st_mtime_ns + 10**9
    os.utime(archive, ns=(later, later))  # touched, same bytes: hashed once, then trusted again
    check_recorded_sha256(archive)
    check_recorded_sha256(archive)
    assert len(calls) == 1
    assert check_recorded_sha256(tmp_path / "nothing-recorded.tar") is None
