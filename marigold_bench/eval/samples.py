"""Which samples a run directory's predictions are of: the benchmark and its split.

The prediction cache keys every entry by sample id only, and ids repeat across benchmarks and
splits (two plugins both calling their images ``flight_0``, the same scene names in two split
files). So a run directory records whose samples it holds: the benchmark's name and what pins
its split (the split file's sha256; the procedural set: its split name, seed and resolution),
never how many of them were run, so that a larger or smaller ``--max-samples`` of the same split
keeps resuming. ``predictions.h5`` carries it as the file attribute ``samples`` (written by
`marigold_bench.eval.cache.PredictionCache`), and ``summary.json`` has always recorded the same
facts (``dataset`` and ``protocol``).

A run of another benchmark or split into that folder is refused (`OtherSamplesError`) before
anything is predicted or written: it would score one set's cached predictions against another
set's ground truth and replace the folder's results. Records written before 0.4 hold fewer
keys (no cache record at all, summaries without a listing's sha256): only what both records
state is compared, so such folders keep resuming as before when the benchmark matches.
"""

from __future__ import annotations

import json
import os

from marigold_bench.errors import OtherSamplesError

#: ``dataset.describe()`` keys that pin which images a split holds whatever its length
#: (``count``, ``max_samples``) and wherever its files lie (``root``, ``split_file``)
SPLIT_KEYS = ("split_sha256", "split", "first_seed", "resolution")

#: the file attribute of ``predictions.h5`` holding its record
SAMPLES_ATTR = "samples"


def samples_of(dataset) -> dict:
    """The record of a dataset's samples: ``{"dataset": <benchmark name>, <split keys>...}``."""
    described = dataset.describe()
    return {"dataset": dataset.protocol.name,
            **{key: described[key] for key in SPLIT_KEYS if described.get(key) is not None}}


def recorded_samples(summary) -> dict | None:
    """The same record as `samples_of`, read from a run's ``summary.json`` (None: not a run's)."""
    if not isinstance(summary, dict) or not summary.get("dataset"):
        return None
    protocol = summary.get("protocol") if isinstance(summary.get("protocol"), dict) else {}
    return {"dataset": summary["dataset"],
            **{key: protocol[key] for key in SPLIT_KEYS if protocol.get(key) is not None}}


def sample_differences(old: dict, new: dict) -> list[str]:
    """The keys both records state and disagree on (an older record that lacks a key says
    nothing about it, so it never counts as a difference)."""
    return [key for key in ("dataset", *SPLIT_KEYS) if key in old and key in new and old[key] != new[key]]


def first_other(found, new: dict) -> tuple[str, dict] | None:
    """The first ``(where, record)`` of ``found`` whose record names other samples than ``new``
    (records that are None, or state nothing that differs, pass); None when none does. The one
    comparison of every check: `run`'s folder, `rescore`'s reload, `evaluate`'s cache."""
    return next(((where, old) for where, old in found if old is not None and sample_differences(old, new)), None)


def describe(record: dict) -> str:
    """``synthetic (split synthetic:val)``, ``nyu (split sha256 1a2b3c4d5e6f)``: for messages."""
    if record.get("split"):
        return f"{record['dataset']} (split {record['split']})"
    if record.get("split_sha256"):
        return f"{record['dataset']} (split sha256 {str(record['split_sha256'])[:12]})"
    return str(record["dataset"])


def _suggested_out(out: str, old: dict, new: dict) -> str:
    # named after what differs: the benchmark, else the split
    if old["dataset"] != new["dataset"]:
        tag = new["dataset"]
    elif new.get("split"):
        tag = str(new["split"]).rsplit(":", 1)[-1]
    else:
        tag = str(new.get("split_sha256", "other-split"))[:8]
    return f"{out.rstrip('/') or '.'}-{str(tag).replace('/', '-')}"


def mismatch_message(out: str, where: str, old: dict, new: dict) -> str:
    """One line: whose samples run directory ``out`` holds (as its file ``where`` records), what
    this run is, and the ``--out`` to use instead."""
    keys = sample_differences(old, new)
    theirs, ours = describe(old), describe(new)
    if theirs == ours:  # differing only in what the label leaves out (seed, resolution)
        theirs += " " + ", ".join(f"{k}={old[k]!r}" for k in keys)
        ours += " " + ", ".join(f"{k}={new[k]!r}" for k in keys)
    return (f"{os.path.join(out, os.path.basename(where))} records a run of {theirs}, but this run is of {ours}: "
            "that folder's cached predictions cannot serve it and its results would be replaced; give this run "
            f"its own --out (e.g. --out {_suggested_out(out, old, new)})")


def stored_record(file) -> dict | None:
    """The record an open ``predictions.h5`` (an ``h5py.File``) holds, or None when it has none
    (caches written before 0.4) or it cannot be read or decoded."""
    try:
        value = file.attrs.get(SAMPLES_ATTR)
    except (OSError, RuntimeError, KeyError, ValueError):
        return None  # damaged metadata: the readers of the entries report it, in their words
    try:
        record = json.loads(value.decode() if isinstance(value, bytes) else (value or "null"))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("dataset") else None


def stored_samples(path: str) -> dict | None:
    """The record of the cache at ``path``, read without taking HDF5's file lock (a check before
    a run must never block, nor be blocked by, a launch using the file); None when there is no
    file, no record, or nothing readable (the writer checks again when it opens the cache)."""
    if not os.path.isfile(path):
        return None
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as file:
            return stored_record(file)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError):
        return None


def check_same_samples(out_dir: str, dataset) -> None:
    """Refuse a run of ``dataset`` into ``out_dir`` when the run there (its ``summary.json``, or
    its cache's record) is of another benchmark or split. A folder with neither, or with a
    record of the same samples, passes.

    Raises:
        OtherSamplesError: naming both sample sets and the ``--out`` to use instead.
    """
    new = samples_of(dataset)
    summary_path = os.path.join(out_dir, "summary.json")
    try:
        with open(summary_path) as f:
            recorded = recorded_samples(json.load(f))
    except (OSError, ValueError):
        recorded = None  # nothing finished there (or nothing readable to protect)
    found = [(summary_path, recorded), (os.path.join(out_dir, "predictions.h5"),
                                        stored_samples(os.path.join(out_dir, "predictions.h5")))]
    other = first_other(found, new)
    if other is not None:
        raise OtherSamplesError(mismatch_message(out_dir, *other, new))
