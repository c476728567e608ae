"""Resume state of a training run, written and read without pickle: safetensors and JSON only.

accelerate's ``save_state``/``load_state`` keep the optimiser, the registered objects (LR
schedule, EMA) and the RNG states as pickles and read them back with ``torch.load(...,
weights_only=False)``: a crafted file in a checkpoint folder runs code on ``train --resume``.
Here every tensor goes to a ``.safetensors`` file and everything else (hyper-parameters, counters,
RNG words) to JSON, so reading a checkpoint can only ever yield numbers. A checkpoint folder that
holds any other file is refused before anything in it is read (:func:`check_checkpoint_files`).

Layout of ``<checkpoint>/state/``:

* ``model.safetensors``: the trained module's ``state_dict`` (as accelerate names it);
* ``training.json`` + ``training.safetensors``: the optimiser, the LR scheduler, EMA and the
  gradient scaler (whichever the run has), accelerate's step counter and the process count;
* ``rng_<rank>.json`` + ``rng_<rank>.safetensors``: each process's Python, NumPy, torch CPU and
  CUDA random states.

Nested state (dicts with int keys, tuples such as Adam's ``betas``) is stored in a small tagged
JSON form (:func:`pack` / :func:`unpack`) that gives back the same Python types, so a resumed run
continues bit for bit where an uninterrupted one would be.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import torch

from marigold_bench.errors import TrainingError

FORMAT = 1
MODEL_FILE, TRAINING_JSON, TRAINING_TENSORS = "model.safetensors", "training.json", "training.safetensors"
#: what a checkpoint folder may hold besides ``state/`` (the trainer writes both)
CHECKPOINT_FILES = ("trainer_state.json", "vae.safetensors")
_RNG_FILE = re.compile(r"rng_\d+\.(json|safetensors)")


# --- tagged JSON for nested state ----------------------------------------------------------------

def pack(obj, tensors: dict[str, torch.Tensor], prefix: str):
    """``obj`` as JSON-ready data; its tensors are moved into ``tensors`` under new keys.

    JSON objects appear only as tags, so plain data can never be mistaken for one: ``{"tensor":
    key}``, ``{"tuple": [...]}``, ``{"map": [[key, value], ...]}`` (any hashable plain key, int
    keys stay ints) and ``{"ndarray": [...], "dtype": ...}`` (small NumPy arrays: RNG words).
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}/{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"tensor": key}
    if isinstance(obj, np.ndarray):
        return {"ndarray": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, tuple):
        return {"tuple": [pack(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [pack(v, tensors, prefix) for v in obj]
    if isinstance(obj, dict):
        return {"map": [[pack(k, tensors, prefix), pack(v, tensors, prefix)] for k, v in obj.items()]}
    raise TypeError(f"resume state cannot hold a {type(obj).__name__} (at {prefix})")


def unpack(data, tensors: dict[str, torch.Tensor]):
    """The inverse of :func:`pack`; an unknown tag or a missing tensor is a :class:`ValueError`."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [unpack(v, tensors) for v in data]
    if isinstance(data, dict) and len(data) == 1:
        (tag, value), = data.items()
        if tag == "tensor":
            if value not in tensors:
                raise ValueError(f"tensor {value!r} is missing")
            return tensors[value]
        if tag == "tuple":
            return tuple(unpack(v, tensors) for v in value)
        if tag == "map":
            return {_hashable(unpack(k, tensors)): unpack(v, tensors) for k, v in value}
    if isinstance(data, dict) and set(data) == {"ndarray", "dtype"}:
        return np.asarray(data["ndarray"], dtype=np.dtype(data["dtype"]))
    raise ValueError(f"unknown entry {str(data)[:80]!r}")


def _hashable(key):
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


# --- files -----------------------------------------------------------------------------------------

def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    seen, out = set(), {}
    for key, tensor in tensors.items():
        if tensor.numel() and tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.clone()  # safetensors refuses two names for one storage
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    save_file(out, str(path))


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")


def rng_state() -> dict:
    """This process's random states (Python, NumPy, torch CPU, CUDA where present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(folder, *, model: torch.nn.Module, parts: dict, rank: int = 0, world: int = 1,
                        main: bool = True, step: int = 0) -> None:
    """Write the resume state into ``folder`` (created).

    Args:
        folder: the checkpoint's ``state`` folder.
        model: the trained module (unwrapped).
        parts: name -> object with ``state_dict()`` / ``load_state_dict()`` (optimizer, LR
            scheduler, EMA, gradient scaler).
        rank, world, main: this process, the process count, whether this is the main process
            (it alone writes the shared parts; every process writes its own RNG state).
        step: accelerate's step counter.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if main:
        _save_tensors(dict(model.state_dict()), folder / MODEL_FILE)
        tensors: dict[str, torch.Tensor] = {}
        packed = {name: pack(obj.state_dict(), tensors, name) for name, obj in parts.items()}
        _save_tensors(tensors, folder / TRAINING_TENSORS)
        _write_json(folder / TRAINING_JSON, {"format": FORMAT, "world": world, "step": step, "parts": packed})
    tensors = {}
    packed = pack(rng_state(), tensors, "rng")
    _save_tensors(tensors, folder / f"rng_{rank}.safetensors")
    _write_json(folder / f"rng_{rank}.json", packed)


def check_checkpoint_files(checkpoint) -> None:
    """Refuse a checkpoint folder holding anything but the files the trainer writes.

    Nothing is opened: this runs before any file of the folder is read, so a pickle placed there
    (``custom_checkpoint_0.pkl``, ``optimizer.bin``, ``*.pt``, also a 0.3 checkpoint's own) is
    never loaded. Raises :class:`TrainingError` naming the first unexpected file, or a missing one.
    """
    checkpoint = Path(checkpoint)
    state = checkpoint / "state"
    found = [p for p in sorted(checkpoint.iterdir()) if p.name != "state"]
    found += sorted(state.iterdir()) if state.is_dir() else []
    for path in found:
        inside_state = path.parent == state
        allowed = ((path.name in (MODEL_FILE, TRAINING_JSON, TRAINING_TENSORS) or _RNG_FILE.fullmatch(path.name))
                   if inside_state else path.name in CHECKPOINT_FILES)
        if not allowed or not path.is_file():
            raise TrainingError(
                f"refusing to resume {checkpoint}: {path.relative_to(checkpoint)} is not part of the resume state "
                "this version writes (safetensors and JSON only); files such as pickles (.pkl, .bin, .pt) can run "
                "code when loaded and are never read. A checkpoint written before 0.4 cannot be resumed; "
                "otherwise remove that file")
    for name in (MODEL_FILE, TRAINING_JSON, TRAINING_TENSORS, "rng_0.json", "rng_0.safetensors"):
        if not (state / name).is_file():
            raise TrainingError(f"refusing to resume {checkpoint}: state/{name} is missing (an incomplete "
                                "or damaged checkpoint)")


def _load_tensors(path: Path, checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise TrainingError(f"cannot resume {checkpoint}: {path.name} is damaged ({exc})") from None


def _read_json(path: Path, checkpoint: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot resume {checkpoint}: {path.name} is not readable JSON ({exc})") from None


def read_training_state(folder) -> dict:
    """``{"format", "world", "step", "parts": {name: state_dict}}`` of a ``state`` folder (no RNG)."""
    folder = Path(folder)
    checkpoint = folder.parent
    saved = _read_json(folder / TRAINING_JSON, checkpoint)
    tensors = _load_tensors(folder / TRAINING_TENSORS, checkpoint)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise TrainingError(f"cannot resume {checkpoint}: {TRAINING_JSON} has an unknown format")
    try:
        saved["parts"] = {name: unpack(value, tensors) for name, value in saved["parts"].items()}
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise TrainingError(f"cannot resume {checkpoint}: {TRAINING_JSON} is damaged ({exc})") from None
    return saved


def load_training_state(folder, *, model: torch.nn.Module, parts: dict, rank: int = 0, world: int = 1) -> int:
    """Restore what :func:`save_training_state` wrote; returns accelerate's step counter.

    Call :func:`check_checkpoint_files` on the checkpoint first (the trainer does, before any
    model is built). Raises :class:`TrainingError` for a damaged or incomplete state, or one
    written by another number of processes.
    """
    folder = Path(folder)
    checkpoint = folder.parent
    saved = read_training_state(folder)
    if saved.get("world") != world:
        raise TrainingError(f"cannot resume {checkpoint}: it was written by {saved.get('world')} process(es), "
                            f"this run has {world}; the data order depends on it")
    missing = sorted(set(parts) - set(saved["parts"]))
    if missing:
        raise TrainingError(f"cannot resume {checkpoint}: its state has no {', '.join(missing)}")
    model.load_state_dict(_load_tensors(folder / MODEL_FILE, checkpoint))
    for name, obj in parts.items():
        obj.load_state_dict(saved["parts"][name])
    rng_tensors = _load_tensors(folder / f"rng_{rank}.safetensors", checkpoint)
    try:
        rng = unpack(_read_json(folder / f"rng_{rank}.json", checkpoint), rng_tensors)
        set_rng_state(rng)
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"cannot resume {checkpoint}: rng_{rank} is damaged ({exc})") from None
    return int(saved.get("step", 0))


__all__ = ["pack", "unpack", "save_training_state", "load_training_state", "read_training_state",
           "check_checkpoint_files", "rng_state", "set_rng_state"]
