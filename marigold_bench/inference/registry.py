"""Known public depth and surface-normals checkpoints, by short name (data: ``resources/models.csv``).

One row per checkpoint: its short name (``depth-anything-v2-small``), hub id, family
(``marigold``, ``marigold-normals``, ``transformers`` or ``moge``), output space (``normals`` for a
normals checkpoint, a point-map space for MoGe), the steps and resolution its authors recommend, the inference recipe
(``e2e-ft`` or empty) and the paper. The steps are those of the authors' own evaluation
(prs-eth/Marigold ``script/depth/eval*``: v1-0 50, v1-1 1, both at ensemble size 10; the LCM
checkpoint 4, as diffusers' Marigold guide; E2E-FT 1; ``script/normals/eval/*_infer_*.sh``:
marigold-normals-v1-1 4 at ensemble size 10, at each benchmark's own resolution, which ``run``
takes from the benchmark before the row's); ``run`` uses them when ``--steps`` is not given.
The ``ensemble`` column is the ensemble size ``run`` defaults to for a row: set only for
marigold-normals-v1-1 (10, its official evaluation). Depth rows leave it empty and run one
member unless ``--ensemble`` says otherwise: their papers' ensembles are reproduced on request
(``reproduce`` cells state them), not paid for on every run.
``--model <name>`` resolves through here to the hub id, and the hub id to the local Hugging Face
cache; nothing is ever downloaded. ``marigold-bench models`` lists the table and says which
checkpoints are cached.

The family of a checkpoint is still read from its files once found (`families.family_for`);
the table's ``family`` and ``output_space`` say what the authors publish, for listings and
tables. ``processing_res`` is the longer side Marigold-family models are run at, and for
transformers models the size their image processor resizes to (informational: their
processor decides; 0: the input's own size, rounded to the network's multiple).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import CheckpointError
from ..output_spaces import NORMALS, check_output_space

FAMILIES = ("marigold", "marigold-normals", "transformers", "moge")


@dataclass(frozen=True)
class ModelEntry:
    """One known checkpoint (a row of ``resources/models.csv``)."""

    name: str
    hub_id: str
    family: str
    output_space: str
    steps: int | None
    processing_res: int | None
    paper: str
    recipe: str | None = None
    #: the ensemble size ``run`` uses when ``--ensemble`` is not given; None: the suite's 1
    ensemble: int | None = None


def _int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _space(text: str) -> str:
    # a depth output space, or the normals checkpoints' word
    return text if text == NORMALS else check_output_space(text)


def _load() -> dict[str, ModelEntry]:
    text = resources.files("marigold_bench").joinpath("resources/models.csv").read_text(encoding="utf-8")
    entries = {}
    for row in csv.DictReader(text.splitlines()):
        entry = ModelEntry(name=row["name"], hub_id=row["hub_id"], family=row["family"],
                           output_space=_space(row["output_space"]), steps=_int(row["steps"]),
                           processing_res=_int(row["processing_res"]), paper=row["paper"],
                           recipe=row["recipe"] or None, ensemble=_int(row.get("ensemble") or ""))
        if entry.family not in FAMILIES:
            raise ValueError(f"models.csv: {entry.name}: unknown family {entry.family!r}")
        entries[entry.name] = entry
    return entries


#: short name -> entry, in the file's order
KNOWN_MODELS: dict[str, ModelEntry] = _load()
_BY_HUB_ID = {e.hub_id.lower(): e for e in KNOWN_MODELS.values()}


def lookup(name: str) -> ModelEntry | None:
    """The entry called ``name`` (short name, case-insensitive), or whose hub id is ``name``;
    None when it is neither."""
    key = str(name).strip().lower()
    return KNOWN_MODELS.get(key) or _BY_HUB_ID.get(key)


def lookup_path(path: str) -> ModelEntry | None:
    """The entry of a snapshot folder of the Hugging Face cache
    (``.../models--GonzaloMG--marigold-e2e-ft-depth/snapshots/<revision>``), or None."""
    for part in reversed(Path(str(path)).parts):
        if part.startswith("models--") and part.count("--") >= 2:
            return _BY_HUB_ID.get(part.removeprefix("models--").replace("--", "/", 1).lower())
    return None


def cached_path(entry: ModelEntry) -> Path | None:
    """The entry's snapshot folder in the local Hugging Face cache, or None (never downloads)."""
    from ..model.hub import cached_snapshot

    return cached_snapshot(entry.hub_id)


def resolve(name: str) -> tuple[str, ModelEntry | None]:
    """What ``--model name`` loads: ``(hub id or name unchanged, entry or None)``.

    A registry name becomes its hub id, which the loader looks up in the local cache; anything
    else (a folder, another hub id) passes through unchanged.

    Raises:
        CheckpointError: ``name`` is a registry name whose checkpoint is not cached; the message
        has the download command.
    """
    from ..model.hub import hf_cache_dir, how_to_fetch

    if Path(str(name)).expanduser().exists():
        return str(name), None
    entry = lookup(name)
    if entry is None:
        return str(name), None
    if entry.name.lower() == str(name).strip().lower() and cached_path(entry) is None:
        raise CheckpointError(f"model {name!r} is {entry.hub_id}, which is not in the local Hugging Face cache "
                              f"({hf_cache_dir()}); {how_to_fetch(entry.hub_id)}.")
    return entry.hub_id, entry


def resolve_name(model: str) -> str:
    """What to load for ``--model model``: a registry name's hub id (checked to be cached, see
    `resolve`), anything else unchanged."""
    return resolve(model)[0]


__all__ = ["ModelEntry", "KNOWN_MODELS", "FAMILIES", "lookup", "lookup_path", "cached_path", "resolve",
           "resolve_name"]
