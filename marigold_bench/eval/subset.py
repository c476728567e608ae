"""Runs of part of a split (``--max-samples``): marked as such, and never written over a run
of more samples.

``summary.json`` of a subset run records ``"subset": {"n": <samples run>, "of": <samples in
the split>}`` (runs of 0.3 recorded only ``protocol.max_samples``); `subset_text` is how tables
show it. A run never replaces the results of a run of more samples in the same folder: it is
refused before anything is predicted, naming the folder and the ``--out`` to use instead (the
fuller run's ``predictions.h5`` serves both: a subset run elsewhere can start from a copy).
"""

from __future__ import annotations

import json
import os

from marigold_bench.errors import BenchError


def subset_mark(dataset) -> dict:
    """``{"subset": {"n", "of"}}`` for a dataset cut by ``--max-samples``, else ``{}``."""
    parent = getattr(dataset, "parent", None)
    if parent is None or "max_samples" not in dataset.describe() or len(dataset) >= len(parent):
        return {}
    return {"subset": {"n": len(dataset), "of": len(parent)}}


def subset_text(summary: dict) -> str | None:
    """``"first 8 of 654"`` for a subset run's summary (``"first 8"`` for runs of 0.3), else None."""
    subset = summary.get("subset")
    if isinstance(subset, dict) and subset.get("n") is not None:
        return f"first {subset['n']} of {subset.get('of', '?')}"
    legacy = (summary.get("protocol") or {}).get("max_samples")
    return f"first {legacy}" if legacy else None


def check_not_smaller(out_dir: str, dataset) -> None:
    """Refuse a run of ``dataset`` into ``out_dir`` when the finished run there scored more
    samples (its results would be replaced by fewer)."""
    try:
        with open(os.path.join(out_dir, "summary.json")) as f:
            before = int(json.load(f).get("n_total", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return  # nothing finished there (or nothing readable to protect)
    if before > len(dataset):
        raise BenchError(f"{out_dir} holds a finished run of {before} samples; this run of {len(dataset)} would "
                         f"replace its results: give it its own --out (e.g. --out {out_dir.rstrip('/')}-first"
                         f"{len(dataset)})")

