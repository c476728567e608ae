"""The prediction cache of a run directory: ``predictions.h5``.

Layout (HDF5 via h5py):

* ``/<sample id>`` -- float32 HxW, the merged affine-invariant prediction at ground-truth
  resolution, before alignment (the contract's dataset). Its attributes record how it was
  merged (``n_members``, ``merge``), so a rerun with another ensemble size recomputes it.
* ``/__members__/<sample id>`` -- float32 KxhxW, the raw ensemble members (before ensembling,
  at processing resolution). Evaluating N = 1..K from one run costs no further inference.
* file attribute ``settings`` -- JSON of the settings the members were made with. A run with
  other member-defining settings is refused instead of mixing predictions.

Every write is flushed, so an interrupted run resumes from the samples already written.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from marigold_bench.errors import CacheMismatchError

MEMBERS = "__members__"


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
        self.file.create_dataset(key, data=np.asarray(members, dtype=np.float32))
        self.file.flush()

    # -- merged predictions ---------------------------------------------------------------
    def prediction(self, sample_id: str, merge: dict | None = None) -> np.ndarray | None:
        """The merged prediction, or None if absent or merged with other ``merge`` settings."""
        if sample_id not in self.file or not isinstance(self.file[sample_id], h5py.Dataset):
            return None
        ds = self.file[sample_id]
        if merge is not None and json.loads(ds.attrs.get("merge", "null")) != json.loads(json.dumps(merge)):
            return None
        return ds[()]

    def put_prediction(self, sample_id: str, depth: np.ndarray, merge: dict | None = None) -> None:
        if sample_id in self.file:
            del self.file[sample_id]
        ds = self.file.create_dataset(sample_id, data=np.asarray(depth, dtype=np.float32))
        ds.attrs["merge"] = json.dumps(merge)
        self.file.flush()

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
