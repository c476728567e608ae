"""The prediction cache of a run directory: ``predictions.h5``.

Layout (HDF5 via h5py):

* ``/<sample id>`` -- float32, the merged raw prediction before alignment (the contract's
  dataset). From 0.3 it is stored *compact*: at the resolution the model produced it, with
  attributes ``target_shape`` (the ground truth's ``[H, W]``) and ``resample`` (how the model
  resizes its output, one of `marigold_bench.eval.resize.RESIZE_MODES`). `prediction` applies
  that resize when reading, so every reader gets the ground-truth-size map. An ETH3D frame costs
  ~1.2 MB instead of 97 MB. Without those attributes (caches of 0.2, and predictors that state no
  resize mode) the entry is the ground-truth-size map itself. The attribute ``merge`` records how
  it was merged (``n_members``, ``ensembling``), so a rerun with another ensemble size recomputes it.
* ``/__members__/<sample id>`` -- float32 KxhxW, the raw ensemble members (before ensembling,
  at processing resolution). Evaluating N = 1..K from one run costs no further inference.
* file attribute ``settings`` -- JSON of the settings the members were made with. A run with
  other member-defining settings is refused instead of mixing predictions.
* file attribute ``samples`` (0.4) -- JSON of the benchmark and split the entries are of
  (`marigold_bench.eval.samples`): entries are keyed by sample id, and ids repeat across
  benchmarks and splits, so a run of another one is refused. Caches without it are taken over
  and given the record of the run that next writes to them.

Datasets are written with HDF5's shuffle filter and gzip level 1 (readable by any HDF5 tool):
a fifth smaller for ~50 ms a frame. Every write is flushed, so an interrupted run resumes from
the samples already written.

Verified entries (0.4). HDF5 does not report every failed chunk write (a full disk left
half-zero maps that a resumed 0.3 run scored as ``ok``), so each entry carries the attribute
``sha256`` of the values meant to be written: set to ``""`` when the entry is created, the data
written and flushed, and only then the digest. Every read checks it: an entry whose digest is
missing (``""``: killed while writing) or wrong is *damaged* -- a writer (`run`) predicts just
that entry again, a reader (``rescore``, ``evaluate --predictions``) reports the sample as
failed with `~marigold_bench.errors.DamagedEntryError`. Entries written by 0.2/0.3 have no
``sha256`` attribute at all: they are trusted as before (nothing recorded to check them with).
Before each write the free space is compared with the entry's uncompressed size, so a full disk
is a one-line `~marigold_bench.errors.DiskFullError`, not a crash inside HDF5.

Sample ids that are path prefixes of each other (``a/b`` and ``a/b/c``) cannot both be HDF5
paths (one would have to be a dataset and a group). An entry is stored under its id as above
whenever that path is free; otherwise under ``/__escaped__/merged/<id>`` (members:
``/__escaped__/members/<id>``) with the id percent-encoded into one name (``a%2Fb``). Readers
look at the plain path first, so every cache written before keeps reading as it did.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from urllib.parse import quote, unquote

import h5py
import numpy as np

from marigold_bench.errors import CacheMismatchError, DamagedEntryError, DiskFullError, OtherSamplesError
from marigold_bench.eval.resize import RESIZE_MODES, resize
from marigold_bench.eval.samples import SAMPLES_ATTR, mismatch_message, sample_differences, stored_record

MEMBERS = "__members__"

#: where entries go whose id's plain path is taken by another id's (see the module docstring)
ESCAPED = "__escaped__"
_ESCAPED_GROUP = {"merged": f"{ESCAPED}/merged", "members": f"{ESCAPED}/members"}

#: the digest attribute of a verified entry, and its value while the data is being written
CHECKSUM, PENDING = "sha256", ""

#: room kept free beside an entry's data for HDF5's own metadata (object headers, B-trees)
METADATA_MARGIN = 1 << 20

#: how predictions and members are written: byte shuffle + gzip 1 (measured on 504x756 ETH3D
#: maps of the tiny model: 1.52 MB raw, 1.08-1.20 MB so, ~60 ms to write; lzf saved less)
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}

#: attributes of a compact merged prediction (absent on full-resolution entries)
TARGET_SHAPE, RESAMPLE = "target_shape", "resample"


def text_attr(attrs, key: str) -> str | None:
    """A string attribute as ``str`` (h5py hands back ``bytes`` for some writers), or None."""
    value = attrs.get(key)
    return value.decode() if isinstance(value, bytes) else value


def digest(values: np.ndarray) -> str:
    """The sha256 of an array's dtype, shape and bytes (what an entry's ``sha256`` records)."""
    values = np.ascontiguousarray(values)
    h = hashlib.sha256(f"{values.dtype.str}{values.shape}".encode())
    h.update(values.data if values.size else b"")
    return h.hexdigest()


def read_verified(dataset: h5py.Dataset) -> np.ndarray:
    """An entry's values, checked against its ``sha256`` (entries of 0.2/0.3 have none and are
    returned as stored).

    Raises:
        DamagedEntryError: the digest is missing (a write was cut short), does not match, or the
            data cannot be decoded.
    """
    where = f"{dataset.file.filename}: {dataset.name.lstrip('/')}"
    try:
        stored = text_attr(dataset.attrs, CHECKSUM)
        data = dataset[()]
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise DamagedEntryError(f"{where}: stored prediction cannot be read ({exc})") from None
    if stored is None:
        return data
    if stored == PENDING:
        raise DamagedEntryError(f"{where}: stored prediction is incomplete (its write was cut short)")
    if stored != digest(data):
        raise DamagedEntryError(f"{where}: stored prediction fails its checksum (a write that did not "
                                "reach the disk, e.g. a full disk)")
    return data


def read_prediction(dataset: h5py.Dataset) -> np.ndarray:
    """A merged prediction from its HDF5 dataset, at ground-truth size: a compact entry is
    resized with its recorded mode to its recorded ``target_shape``, any other returned as stored.
    Verified first (see `read_verified`)."""
    data = read_verified(dataset)
    target = dataset.attrs.get(TARGET_SHAPE)
    if target is None:
        return data
    mode = text_attr(dataset.attrs, RESAMPLE)
    if mode not in RESIZE_MODES:
        raise CacheMismatchError(f"{dataset.file.filename}: {dataset.name} is stored with an unknown resize "
                                 f"mode {mode!r} (known: {', '.join(RESIZE_MODES)}); a newer marigold-bench wrote it")
    return resize(data, tuple(int(s) for s in target), mode)


# -- where an entry lives ------------------------------------------------------------------

def _plain_key(kind: str, sample_id: str) -> str:
    return sample_id if kind == "merged" else f"{MEMBERS}/{sample_id}"


def _escaped_key(kind: str, sample_id: str) -> str:
    return f"{_ESCAPED_GROUP[kind]}/{quote(sample_id, safe='')}"


def _node(file: h5py.File, key: str):
    # None where the path does not exist, also when one of its parents is a dataset
    try:
        return file.get(key)
    except (KeyError, TypeError, ValueError):
        return None


def _inside_own_groups(sample_id: str) -> bool:
    return sample_id.split("/", 1)[0] in (MEMBERS, ESCAPED)


def _locations(kind: str, sample_id: str) -> tuple[str, ...]:
    # where an entry may be, in the order readers look; an id inside the cache's own groups is
    # always stored escaped (its plain path belongs to the cache)
    escaped = _escaped_key(kind, sample_id)
    if kind == "merged" and _inside_own_groups(sample_id):
        return (escaped,)
    return _plain_key(kind, sample_id), escaped


def find_entry(file: h5py.File, sample_id: str, kind: str = "merged") -> h5py.Dataset | None:
    """The dataset holding a sample's merged prediction (``kind="merged"``) or members
    (``"members"``): at its plain path or, where that is taken, escaped; None if absent."""
    for key in _locations(kind, sample_id):
        node = _node(file, key)
        if isinstance(node, h5py.Dataset):
            return node
    return None


def _plain_path_free(file: h5py.File, key: str) -> bool:
    # free: nothing there (or our own dataset), and no parent of it is a dataset
    node = _node(file, key)
    if node is not None:
        return isinstance(node, h5py.Dataset)
    parts = key.split("/")
    for i in range(1, len(parts)):
        parent = _node(file, "/".join(parts[:i]))
        if parent is None:
            return True
        if isinstance(parent, h5py.Dataset):
            return False
    return True


def _write_key(file: h5py.File, sample_id: str, kind: str) -> str:
    plain = _plain_key(kind, sample_id)
    if kind == "merged" and _inside_own_groups(sample_id):
        return _escaped_key(kind, sample_id)   # never inside the cache's own groups
    return plain if _plain_path_free(file, plain) else _escaped_key(kind, sample_id)


def entry_ids(file: h5py.File, kind: str = "merged") -> list[str]:
    """The sample ids with a ``kind`` entry (``"merged"`` or ``"members"``), plain and escaped."""
    found = []
    inner = (MEMBERS + "/") if kind == "members" else None

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or name.startswith(ESCAPED + "/"):
            return
        if inner is None and not name.startswith(MEMBERS + "/"):
            found.append(name)
        elif inner is not None and name.startswith(inner):
            found.append(name[len(inner):])
    file.visititems(visit)
    escaped = _node(file, _ESCAPED_GROUP[kind])
    if isinstance(escaped, h5py.Group):
        found.extend(unquote(name) for name, obj in escaped.items() if isinstance(obj, h5py.Dataset))
    return found


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OSError (also one h5py raises for HDF5) says the disk or the quota is full."""
    text = str(exc)
    return (getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            or "No space left" in text or f"errno = {errno.ENOSPC}," in text or "Disk quota" in text)


def check_free_space(folder: str, needed: int) -> None:
    """Refuse, in one line, to start a write of ``needed`` bytes into ``folder`` that cannot fit."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # nothing to measure with: the write itself will say
    if free < needed + METADATA_MARGIN:
        raise DiskFullError(f"disk full: {folder} has {free / 1e6:.1f} MB free and the next cache entry "
                            f"needs up to {(needed + METADATA_MARGIN) / 1e6:.1f} MB; free some space and "
                            "rerun the same command (it resumes from the cache)")


def _fault_point(stage: str) -> None:
    """Called between the write stages of an entry (``created``, ``data``, ``checksum``); the
    fault-injection tests (tests/test_faults.py) stop a process here."""


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: cached {old.get(k)!r} vs now {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


class PredictionCache:
    """Read/write access to ``predictions.h5``.

    Args:
        path: the file; created with its parent folder when missing.
        settings: JSON-serialisable settings that define the members (model, steps, noise,
            seed, ...). ``None`` opens the file for reading whatever made it.
        legacy: the same identity as versions before 0.2 wrote it (the model's path instead of
            its ``weights_sha256``); a cache stored so is taken over and its identity rewritten.
        recompute_damaged: what a damaged entry (see the module docstring) reads as: None with a
            warning, so that it is predicted again (default when writing), or a
            `DamagedEntryError` (default when reading: the caller reports the sample).
        samples: when writing, the benchmark and split the run is of
            (`marigold_bench.eval.samples.samples_of`): a cache recording others is refused
            (`OtherSamplesError`), one recording none is given it. None checks nothing.
    """

    def __init__(self, path: str | os.PathLike, settings: dict | None = None, legacy: dict | None = None,
                 recompute_damaged: bool | None = None, samples: dict | None = None):
        self.path = os.fspath(path)
        self.recompute_damaged = settings is not None if recompute_damaged is None else recompute_damaged
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            self.file = h5py.File(self.path, "a" if settings is not None else "r")
            stored = self.file.attrs.get("settings")
        except OSError as exc:
            self.file = None
            raise CacheMismatchError(open_error(self.path, exc, settings is not None)) from None
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            self.close()
            raise CacheMismatchError(open_error(self.path, exc, settings is not None)) from None
        if settings is not None:
            settings = json.loads(json.dumps(settings))  # normalise tuples etc.
            legacy = None if legacy is None else json.loads(json.dumps(legacy))
            if stored is not None and legacy is not None and json.loads(stored) == legacy:
                stored = None  # same model at the same path: the old identity, upgraded in place
            if stored is None:
                self._guard(lambda: self.file.attrs.__setitem__("settings", json.dumps(settings, sort_keys=True)))
                self._guard(self.file.flush)
            elif json.loads(stored) != settings:
                differences = "\n  ".join(_diff(json.loads(stored), settings))
                self.close()
                raise CacheMismatchError(
                    f"{self.path} was made with other settings:\n  {differences}\n"
                    "Use another --out directory (or delete the old run) to compare settings.")
        self.settings = settings
        self.legacy = legacy
        self.samples = None
        if settings is not None and samples is not None:
            self._claim_samples(json.loads(json.dumps(samples)))

    def _claim_samples(self, samples: dict) -> None:
        # the record of whose samples the entries are: checked like the settings, and written
        # where absent (a new cache, or one of 0.3 taken over after `run` compared its summary)
        stored = stored_record(self.file)
        if stored is None:
            self._guard(lambda: self.file.attrs.__setitem__(SAMPLES_ATTR, json.dumps(samples, sort_keys=True)))
            self._guard(self.file.flush)
        elif sample_differences(stored, samples):
            self.close()
            raise OtherSamplesError(mismatch_message(os.path.dirname(self.path) or ".", self.path, stored, samples))
        self.samples = samples

    # -- reading, verified -------------------------------------------------------------------
    def _read(self, dataset: h5py.Dataset, read):
        try:
            return read(dataset)
        except DamagedEntryError as exc:
            if not self.recompute_damaged:
                raise
            warnings.warn(f"{exc}; predicting it again")
            return None

    def _find(self, sample_id: str, kind: str) -> h5py.Dataset | None:
        try:
            return find_entry(self.file, sample_id, kind)
        except (OSError, RuntimeError) as exc:  # the file's own index is broken, not one entry
            raise CacheMismatchError(open_error(self.path, exc, self.settings is not None)) from None

    # -- members ---------------------------------------------------------------------------
    def members(self, sample_id: str) -> np.ndarray | None:
        """The cached raw members of a sample (KxhxW) or None (also when damaged and
        ``recompute_damaged``)."""
        ds = self._find(sample_id, "members")
        return None if ds is None else self._read(ds, read_verified)

    def put_members(self, sample_id: str, members: np.ndarray) -> None:
        """Store a sample's raw members (replacing any stored ones), verified (see the module)."""
        self._store("members", sample_id, members, {})

    # -- merged predictions ---------------------------------------------------------------
    def _merged(self, sample_id: str, merge: dict | None) -> h5py.Dataset | None:
        ds = self._find(sample_id, "merged")
        if ds is None:
            return None
        if merge is not None and json.loads(ds.attrs.get("merge", "null")) != json.loads(json.dumps(merge)):
            return None
        return ds

    def prediction(self, sample_id: str, merge: dict | None = None) -> np.ndarray | None:
        """The merged prediction at ground-truth size (a compact entry resized as recorded), or
        None if absent or merged with other ``merge`` settings (or damaged, when
        ``recompute_damaged``; else `DamagedEntryError`)."""
        ds = self._merged(sample_id, merge)
        return None if ds is None else self._read(ds, read_prediction)

    def stored_prediction(self, sample_id: str, merge: dict | None = None) -> tuple[np.ndarray, dict] | None:
        """The merged prediction as stored (compact or not) and its attributes, or None."""
        ds = self._merged(sample_id, merge)
        if ds is None:
            return None
        data = self._read(ds, read_verified)
        return None if data is None else (data, dict(ds.attrs))

    def put_prediction(self, sample_id: str, depth: np.ndarray, merge: dict | None = None,
                       target_shape: tuple[int, int] | None = None, resample: str | None = None) -> None:
        """Store a merged prediction; with ``target_shape`` and ``resample`` (one of
        `RESIZE_MODES`) it is compact: resized to ``target_shape`` when read."""
        depth = np.asarray(depth, dtype=np.float32)
        compact = target_shape is not None and tuple(depth.shape[-2:]) != tuple(target_shape)  # HxW or CxHxW
        if compact and resample not in RESIZE_MODES:
            raise ValueError(f"a prediction of shape {depth.shape} for {tuple(target_shape)} needs a resize mode "
                             f"({', '.join(RESIZE_MODES)}), got {resample!r}")
        attrs = {"merge": json.dumps(merge)}
        if compact:
            attrs[TARGET_SHAPE] = np.asarray(target_shape, dtype=np.int64)
            attrs[RESAMPLE] = resample
        self._store("merged", sample_id, depth, attrs)

    def _store(self, kind: str, sample_id: str, values: np.ndarray, attrs: dict) -> None:
        # the order is what makes an entry verifiable: created marked incomplete, data written
        # and flushed, and only then its digest (of the values we meant to write)
        values = np.ascontiguousarray(values, dtype=np.float32)
        check_free_space(os.path.dirname(os.path.abspath(self.path)), values.nbytes)

        def write():
            key = _write_key(self.file, sample_id, kind)
            for old in _locations(kind, sample_id):
                if isinstance(_node(self.file, old), h5py.Dataset):  # never a group of other ids
                    del self.file[old]
            ds = self.file.create_dataset(key, shape=values.shape, dtype=np.float32, **COMPRESSION)
            ds.attrs[CHECKSUM] = PENDING
            for name, value in attrs.items():
                ds.attrs[name] = value
            self.file.flush()
            _fault_point("created")
            ds[...] = values
            self.file.flush()
            _fault_point("data")
            ds.attrs[CHECKSUM] = digest(values)
            self.file.flush()
            _fault_point("checksum")
        self._guard(write)

    def _guard(self, action):
        # HDF5 reports a full disk as an OSError somewhere inside h5py: say it in one line
        try:
            return action()
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(f"disk full while writing {self.path}; free some space and rerun the "
                                    "same command (it resumes from the cache, checking every entry)") from None
            raise

    def put_merged(self, sample_id: str, predictor, members: np.ndarray, target_shape: tuple[int, int],
                   merge: dict | None = None) -> np.ndarray:
        """Merge ``members`` with ``predictor`` and store the result compact; returns the
        ground-truth-size map, exactly as `prediction` will read it back.

        A predictor that states its resize (``settings["resample_output"]`` in `RESIZE_MODES`)
        is asked for the merge at its own resolution (``merge(members, None)``); any other is
        asked for ``target_shape`` and stored at whatever shape it returns.
        """
        resample = predictor.settings.get("resample_output")
        if resample in RESIZE_MODES:
            depth, _ = predictor.merge(members, None)
        else:
            depth, _ = predictor.merge(members, tuple(target_shape))
            resample = None
        depth = np.asarray(depth, dtype=np.float32)
        if resample is None or tuple(depth.shape[-2:]) == tuple(target_shape):
            self.put_prediction(sample_id, depth, merge)
            return depth
        self.put_prediction(sample_id, depth, merge, target_shape, resample)
        return resize(depth, tuple(target_shape), resample)

    def ids(self) -> list[str]:
        """Ids of all merged predictions in the file."""
        return entry_ids(self.file, "merged")

    def member_ids(self) -> list[str]:
        """Ids of all samples with stored members."""
        return entry_ids(self.file, "members")

    def take_entries(self, part: "PredictionCache") -> int:
        """Copy every verified entry of ``part`` (a rank's cache) into this cache; a damaged one
        is left out with a warning (it is predicted again). Returns the merged entries copied."""
        copied = 0
        for sample_id in part.member_ids():
            ds = find_entry(part.file, sample_id, "members")
            values = part._read(ds, read_verified)
            if values is not None:
                self.put_members(sample_id, values)
        for sample_id in part.ids():
            ds = find_entry(part.file, sample_id, "merged")
            values = part._read(ds, read_verified)
            if values is None:
                continue
            target = ds.attrs.get(TARGET_SHAPE)   # a compact entry keeps its target size and mode
            self.put_prediction(sample_id, values, json.loads(ds.attrs.get("merge", "null")),
                                None if target is None else tuple(int(v) for v in target),
                                text_attr(ds.attrs, RESAMPLE))
            copied += 1
        return copied

    def close(self) -> None:
        if getattr(self, "file", None) is not None and self.file.id.valid:
            self._guard(self.file.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_error(path: str, exc: BaseException, writing: bool) -> str:
    """One line on why ``path`` cannot be opened as a prediction cache, and what to do."""
    text = str(exc)
    if "unable to lock file" in text.lower() or getattr(exc, "errno", None) == errno.EAGAIN:
        return (f"the prediction cache {path} is open in another process (HDF5 file lock: a run or a reader "
                "is using it); wait for that process to finish, then rerun")
    if isinstance(exc, (IsADirectoryError, PermissionError)) or getattr(exc, "errno", None) in (
            errno.EISDIR, errno.EACCES, errno.EROFS):
        return f"cannot open the prediction cache {path}: {exc.__class__.__name__}: {text}"
    if is_disk_full(exc):
        return f"disk full: cannot open the prediction cache {path}; free some space and rerun"
    fix = ("move it away (e.g. to predictions.h5.damaged) to predict everything afresh, or choose "
           "another --out" if writing else "it cannot be scored: rerun the run that made it")
    return f"{path} is damaged (its HDF5 metadata cannot be read: {text.splitlines()[0] if text else exc!r}); {fix}"


# --- the cache's identity: which settings make the members, which only merge or describe them ---

#: settings that change how members are merged or scheduled, but not the members themselves
#: (beyond float round-off)
MERGE_ONLY_SETTINGS = ("ensemble", "ensembling", "batch_size", "device", "compile")


#: where the model was found: recorded, but left out of the cache's identity when the weights'
#: fingerprint is known, so that a run directory resumes with the checkpoint at another path
#: (another node, a moved folder, a hub id instead of its snapshot folder)
LOCATION_SETTINGS = ("model", "model_path", "model_source")


#: what the numbers are declared to mean (0.3): recorded, but not the members' identity -- the
#: same members read under another --output-space need no new prediction, and run directories
#: of 0.2, which did not record them, keep resuming
DESCRIPTIVE_SETTINGS = ("family", "output_space", "declared_output_space")


def split_settings(settings: dict) -> tuple[dict, dict]:
    """Split inference settings into those that define the raw members (the cache's identity)
    and the merge key of the merged prediction (ensemble size and ensembling)."""
    # the tiny VAE's path: the decoder's hash names it
    ignored = set(MERGE_ONLY_SETTINGS) | set(DESCRIPTIVE_SETTINGS) | {"tiny_vae_path"}
    if settings.get("weights_sha256"):
        ignored |= set(LOCATION_SETTINGS)
    members = {k: v for k, v in settings.items() if k not in ignored}
    merge = {"n_members": int(settings.get("ensemble", 1)), "ensembling": settings.get("ensembling")}
    return members, merge


def legacy_member_settings(settings: dict) -> dict | None:
    """The cache identity as marigold-bench 0.1 wrote it (the model's path, no fingerprint), so
    that run directories made then keep resuming; None when there is no fingerprint."""
    if not settings.get("weights_sha256"):
        return None
    return {k: v for k, v in settings.items()
            if k not in MERGE_ONLY_SETTINGS and k not in DESCRIPTIVE_SETTINGS and k != "weights_sha256"}
