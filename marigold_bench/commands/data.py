"""``marigold-bench data {verify,download}``: check a data root, fetch archives and split files.

``verify`` answers "will a run on this root work and score every sample?" before a long run
starts: it resolves the root and split like ``run`` does, hashes an archive that has a recorded
sha256 beside it, checks that every listed file exists and (unless ``--quick``) decodes every
sample. Exit 0 when all is well, 1 otherwise (a sample count other than the official one too).

``download`` records each archive's sha256 beside it (``<archive>.sha256``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from tqdm import tqdm

from marigold_bench.data.checksum import check_recorded_sha256
from marigold_bench.data.download import archive_dest, download_archive, download_splits
from marigold_bench.data.registry import BenchmarkNames
from marigold_bench.data.registry import get_benchmark as get_spec
from marigold_bench.data.split_dataset import Benchmark
from marigold_bench.data.splits import splits_cache_dir
from marigold_bench.errors import BenchError, DataRootError, SampleError


def _has_files(spec) -> bool:
    return isinstance(spec.loader, Benchmark)


def _has_archive(spec) -> bool:
    return spec.archive is not None


#: the benchmarks read from split files (synthetic needs no data), and those with an archive
VERIFIABLE = BenchmarkNames(where=_has_files)
BENCHMARKS = BenchmarkNames(where=_has_archive)
SHOW = 20  # problems listed one by one before the rest are only counted


def get_benchmark(name: str) -> Benchmark:
    """The split-file reader of benchmark ``name`` (an unknown name lists the known ones)."""
    spec = get_spec(name)
    if not _has_files(spec):
        raise ValueError(f"{name!r} has no data to verify; choose one of {', '.join(VERIFIABLE)}")
    return spec.loader


@dataclass
class VerifyReport:
    dataset: str
    count: int = 0
    expected: int | None = None
    source: str = ""
    split_file: str = ""
    split_sha256: str = ""
    split_official: bool = False
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    no_valid_pixels: list[str] = field(default_factory=list)
    root_error: str | None = None

    @property
    def ok(self) -> bool:
        return (self.root_error is None and not self.missing and not self.unreadable
                and (self.expected is None or self.count == self.expected))

    def lines(self) -> list[str]:
        if self.root_error:
            return [self.root_error, "FAILED"]
        out = [f"{self.dataset}: {self.source}",
               f"split: {self.split_file}",
               f"  sha256 {self.split_sha256} "
               f"({'official list' if self.split_official else 'not an official list'})"]
        expect = "" if self.expected is None else f" (expected {self.expected})"
        out.append(f"samples: {self.count}{expect}")
        for title, items in (("missing files", self.missing), ("unreadable files", self.unreadable),
                             ("warning: samples without valid pixels", self.no_valid_pixels)):
            out.append(f"{title}: {len(items)}")
            out += [f"  {item}" for item in items[:SHOW]]
            if len(items) > SHOW:
                out.append(f"  ... and {len(items) - SHOW} more")
        out.append("OK" if self.ok else "FAILED")
        return out


def verify_root(name: str, root=None, split=None, quick: bool = False) -> VerifyReport:
    """Check a data root against a split file; see the module docstring."""
    benchmark, protocol = get_benchmark(name), get_spec(name)
    report = VerifyReport(name)
    try:
        dataset = benchmark.open(root, split, protocol)
        if dataset.source.kind == "archive":  # verify hashes in full what a run only stats
            check_recorded_sha256(dataset.source.path, full=True)
    except DataRootError as err:  # ArchiveChecksumError included
        report.root_error = str(err)
        return report
    info = dataset.describe()
    report.count, report.source = info["count"], f"{info['source']} ({info['source_type']})"
    report.split_file, report.split_sha256 = info["split_file"], info["split_sha256"]
    report.split_official = info["split_official"]
    report.expected = info["expected_count"]  # the official count of the split asked for
    source = dataset.source
    for index, record in enumerate(tqdm(dataset.records, desc=f"verify {name}", file=sys.stderr,
                                        disable=None)):
        missing = [source.where(f) for f in benchmark.files(record) if not source.exists(f)]
        report.missing += missing
        if missing or quick:
            continue
        try:
            if not dataset.load(index)["valid"].any():
                report.no_valid_pixels.append(dataset.ids[index])
            if benchmark.check:
                benchmark.check(source, record)
        except SampleError as err:
            report.unreadable.append(str(err))
    return report


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "data", help="check a data root or download benchmark data and split files",
        description="Check a benchmark's data root, or download the official archives and "
                    "split files.")
    sub = parser.add_subparsers(dest="data_command", metavar="{verify,download}")
    sub.required = True
    verify = sub.add_parser("verify", help="check a data root against a split file",
                            description="Check that every sample of a split is present and "
                                        "decodes; exit 0 when all is well, 1 otherwise.")
    verify.add_argument("--dataset", required=True, choices=VERIFIABLE,
                        help="a benchmark read from official split files (those listed); the others are "
                             "checked by running them")
    verify.add_argument("--data-root", help="base data folder, benchmark folder or .tar "
                                            "(default: $MARIGOLD_DATA)")
    verify.add_argument("--split", help="split name or split file (default: the test split)")
    verify.add_argument("--quick", action="store_true",
                        help="only check that files exist, do not decode them")
    download = sub.add_parser(
        "download", help="download an official archive and/or the split files",
        description="Download a benchmark's official archive to <data-root>/<folder>/<archive> "
                    "(resuming a partial download), and/or the official split files into the "
                    "user cache.")
    download.add_argument("--dataset", choices=BenchmarkNames(where=_has_archive, extra=("all",)),
                          help="a benchmark with an official archive (those listed); the others' layouts are "
                               "in datasets/")
    download.add_argument("--data-root", help="base data folder (default: $MARIGOLD_DATA)")
    download.add_argument("--splits", action="store_true",
                          help="download the official split files (sha256-checked)")
    download.add_argument("--sha256", help="expected sha256 of the archive")
    download.add_argument("--force", action="store_true", help="download again even if present")
    parser.set_defaults(func=run)
    return parser


def check_archive_folders(names, data_root) -> None:
    """Refuse, before the first byte is fetched, a data root whose archive folders cannot be
    made or written (a file, a path under a file, read-only): archives are tens of gigabytes."""
    from marigold_bench.eval.outdir import check_writable

    what = "--data-root" if data_root else "$MARIGOLD_DATA"
    for name in names:
        folder = archive_dest(name, data_root).parent
        check_writable(str(folder), f"{what} {data_root or os.environ.get('MARIGOLD_DATA')}: archive folder")


def run(args) -> int:
    if args.data_command == "verify":
        report = verify_root(args.dataset, args.data_root, args.split, args.quick)
        print("\n".join(report.lines()))
        return 0 if report.ok else 1
    if not (args.splits or args.dataset):
        raise BenchError("data download needs --dataset NAME and/or --splits")
    if args.splits:
        paths = download_splits(force=args.force)
        print(f"{len(paths)} official split files in {splits_cache_dir()}")
    if args.dataset:
        names = BENCHMARKS if args.dataset == "all" else (args.dataset,)
        if args.sha256 and len(names) > 1:
            raise BenchError("--sha256 checks one archive; use it with a single --dataset")
        check_archive_folders(names, args.data_root)
        for name in names:
            print(f"{name}: {download_archive(name, args.data_root, args.sha256, args.force)}")
    return 0
