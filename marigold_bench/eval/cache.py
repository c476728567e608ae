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

Datasets are written with HDF5's shuffle filter and gzip level 1 (readable by any HDF5 tool):
a fifth smaller for ~50 ms a frame. Every write is flushed, so an interrupted run resumes from
the samples already written.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from marigold_bench.errors import CacheMismatchError
from marigold_bench.eval.resize import RESIZE_MODES, resize

MEMBERS = "__members__"

#: how predictions and members are written: byte shuffle + gzip 1 (measured on 504x756 ETH3D
#: maps of the tiny model: 1.52 MB raw, 1.08-1.20 MB so, ~60 ms to write; lzf saved less)
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}

#: attributes of a compact merged prediction (absent on full-resolution entries)
TARGET_SHAPE, RESAMPLE = "target_shape", "resample"


def text_attr(attrs, key: str) -> str | None:
    """A string attribute as ``str`` (h5py hands back ``bytes`` for some writers), or None."""
    value = attrs.get(key)
    return value.decode() if isinstance(value, bytes) else value


def read_prediction(dataset: h5py.Dataset) -> np.ndarray:
    """A merged prediction from its HDF5 dataset, at ground-truth size: a compact entry is
    resized with its recorded mode to its recorded ``target_shape``, any other returned as stored."""
    data = dataset[()]
    target = dataset.attrs.get(TARGET_SHAPE)
    if target is None:
        return data
    mode = text_attr(dataset.attrs, RESAMPLE)
    if mode not in RESIZE_MODES:
        raise CacheMismatchError(f"{dataset.file.filename}: {dataset.name} is stored with an unknown resize "
                                 f"mode {mode!r} (known: {', '.join(RESIZE_MODES)}); a newer marigold-bench wrote it")
    return resize(data, tuple(int(s) for s in target), mode)


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
    """

    def __init__(self, path: str | os.PathLike, settings: dict | None = None, legacy: dict | None = None):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            self.file = h5py.File(self.path, "a" if settings is not None else "r")
        except OSError as exc:
            raise CacheMismatchError(
                f"cannot open the prediction cache {self.path} ({exc}); it may be damaged: "
                "move it away to start afresh, or choose another --out") from None
        if settings is not None:
            settings = json.loads(json.dumps(settings))  # normalise tuples etc.
            legacy = None if legacy is None else json.loads(json.dumps(legacy))
            stored = self.file.attrs.get("settings")
            if stored is not None and legacy is not None and json.loads(stored) == legacy:
                stored = None  # same model at the same path: the old identity, upgraded in place
            if stored is None:
                self.file.attrs["settings"] = json.dumps(settings, sort_keys=True)
                self.file.flush()
            elif json.loads(stored) != settings:
                differences = "\n  ".join(_diff(json.loads(stored), settings))
                self.close()
                raise CacheMismatchError(
                    f"{self.path} was made with other settings:\n  {differences}\n"
                    "Use another --out directory (or delete the old run) to compare settings.")
        self.settings = settings
        self.legacy = legacy

    # -- members ---------------------------------------------------------------------------
    def members(self, sample_id: str) -> np.ndarray | None:
        """The cached raw members of a sample (KxhxW) or None."""
        key = f"{MEMBERS}/{sample_id}"
        return self.file[key][()] if key in self.file else None

    def put_members(self, sample_id: str, members: np.ndarray) -> None:
        key = f"{MEMBERS}/{sample_id}"
        if key in self.file:
            del self.file[key]
        self.file.create_dataset(key, data=np.asarray(members, dtype=np.float32), **COMPRESSION)
        self.file.flush()

    # -- merged predictions ---------------------------------------------------------------
    def _merged(self, sample_id: str, merge: dict | None) -> h5py.Dataset | None:
        if sample_id not in self.file or not isinstance(self.file[sample_id], h5py.Dataset):
            return None
        ds = self.file[sample_id]
        if merge is not None and json.loads(ds.attrs.get("merge", "null")) != json.loads(json.dumps(merge)):
            return None
        return ds

    def prediction(self, sample_id: str, merge: dict | None = None) -> np.ndarray | None:
        """The merged prediction at ground-truth size (a compact entry resized as recorded), or
        None if absent or merged with other ``merge`` settings."""
        ds = self._merged(sample_id, merge)
        return None if ds is None else read_prediction(ds)

    def stored_prediction(self, sample_id: str, merge: dict | None = None) -> tuple[np.ndarray, dict] | None:
        """The merged prediction as stored (compact or not) and its attributes, or None."""
        ds = self._merged(sample_id, merge)
        return None if ds is None else (ds[()], dict(ds.attrs))

    def put_prediction(self, sample_id: str, depth: np.ndarray, merge: dict | None = None,
                       target_shape: tuple[int, int] | None = None, resample: str | None = None) -> None:
        """Store a merged prediction; with ``target_shape`` and ``resample`` (one of
        `RESIZE_MODES`) it is compact: resized to ``target_shape`` when read."""
        depth = np.asarray(depth, dtype=np.float32)
        compact = target_shape is not None and tuple(depth.shape) != tuple(target_shape)
        if compact and resample not in RESIZE_MODES:
            raise ValueError(f"a prediction of shape {depth.shape} for {tuple(target_shape)} needs a resize mode "
                             f"({', '.join(RESIZE_MODES)}), got {resample!r}")
        if sample_id in self.file:
            del self.file[sample_id]
        ds = self.file.create_dataset(sample_id, data=depth, **COMPRESSION)
        ds.attrs["merge"] = json.dumps(merge)
        if compact:
            ds.attrs[TARGET_SHAPE] = np.asarray(target_shape, dtype=np.int64)
            ds.attrs[RESAMPLE] = resample
        self.file.flush()

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
        if resample is None or tuple(depth.shape) == tuple(target_shape):
            self.put_prediction(sample_id, depth, merge)
            return depth
        self.put_prediction(sample_id, depth, merge, target_shape, resample)
        return resize(depth, tuple(target_shape), resample)

    def ids(self) -> list[str]:
        """Ids of all merged predictions in the file."""
        found = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith(MEMBERS + "/"):
                found.append(name)
        self.file.visititems(visit)
        return found

    def close(self) -> None:
        if getattr(self, "file", None) is not None and self.file.id.valid:
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
