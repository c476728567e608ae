"""A protocol's identity: an id a paper can cite and a hash of everything that changes a number.

Two runs whose hashes are equal were scored by the same rules on the same sample list, so their
numbers can stand in one column; when hashes differ, `hash_differences` says which input
differs. The hash covers:

* the resolved scoring record (protocol, alignment, fit space and resolution, weights,
  clipping, range, crop, metric definitions and columns, boundary-F1 radius and every knob a
  protocol adds), less its prose (source, the fit's description) and what only says why a
  choice was made (``overrides``, the declared output space);
* the benchmark's rules: valid range, whether the range is part of the mask, the evaluation
  crop, the fit's downsampling, and the split: the split file's sha256 (the procedural set:
  its seed, count-independent recipe and resolution).

Where the data lay, how many samples were run and how the model was run are not part of it:
a subset is marked as such elsewhere, and inference settings are the run's, not the protocol's.
The hash is SHA-256 over canonical JSON (sorted keys, floats as ``repr``), so it is the same on
every machine and in every process. Light on purpose: no numpy, no torch.
"""

from __future__ import annotations

import hashlib
import json

#: scoring keys that describe rather than decide: left out of the hash
DESCRIPTIVE_SCORING = ("source", "fit", "fit_resolution", "overrides", "output_space",
                       "declared_output_space", "description", "notes", "protocol_version")

#: the benchmark facts recorded in ``summary.json["protocol"]`` that decide which pixels are
#: scored and against what
BENCHMARK_RULES = ("task", "min_depth", "max_depth", "range_in_valid", "eval_mask", "default_crop",
                   "fit_max_resolution", "fit_downsample", "split_sha256",
                   # the procedural benchmark has no split file: its recipe is its split
                   "split", "first_seed", "resolution")

#: bump when the set of inputs above changes meaning (never for a new protocol)
IDENTITY_VERSION = 1


def protocol_id(summary: dict) -> str:
    """``<protocol>/<version>``, e.g. ``marigold/1``."""
    scoring = summary.get("scoring") or {}
    name = scoring.get("protocol") or summary.get("protocol_name") or "marigold"
    return f"{name}/{scoring.get('protocol_version', 1)}"


def hash_inputs(summary: dict) -> dict:
    """The exact record the hash is computed from (what `compare` shows in full)."""
    scoring = summary.get("scoring") or {}
    facts = summary.get("protocol") or {}
    return {
        "identity_version": IDENTITY_VERSION,
        "protocol_id": protocol_id(summary),
        "dataset": summary.get("dataset"),
        "scoring": {k: v for k, v in sorted(scoring.items()) if k not in DESCRIPTIVE_SCORING},
        "benchmark": {k: facts[k] for k in BENCHMARK_RULES if k in facts},
    }


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)


def protocol_hash(summary: dict) -> str:
    """SHA-256 (hex, first 16 characters) of `hash_inputs`."""
    return hashlib.sha256(_canonical(hash_inputs(summary)).encode()).hexdigest()[:16]


def identity(summary: dict) -> dict:
    """``{"protocol_id", "protocol_hash", "hash_source"}`` of a run: as recorded, or computed
    now for a run directory written before 0.4 (``hash_source`` says which)."""
    recorded = summary.get("protocol_identity")
    if isinstance(recorded, dict) and recorded.get("protocol_hash"):
        return {**recorded, "hash_source": "recorded"}
    return {"protocol_id": protocol_id(summary), "protocol_hash": protocol_hash(summary),
            "hash_source": "computed from the recorded scoring (run written before protocol hashes)"}


def record(summary: dict) -> dict:
    """What ``summary.json["protocol_identity"]`` holds for a new run."""
    return {"protocol_id": protocol_id(summary), "protocol_hash": protocol_hash(summary),
            "identity_version": IDENTITY_VERSION}


def hash_differences(a: dict, b: dict) -> list[str]:
    """Lines naming each hash input that differs between two summaries (empty: same hash)."""
    left, right = hash_inputs(a), hash_inputs(b)
    lines = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{path}.{key}" if path else key)
        elif _canonical(x) != _canonical(y):
            lines.append(f"{path}: {_canonical(x)} vs {_canonical(y)}")

    walk(left, right, "")
    return lines


__all__ = ["BENCHMARK_RULES", "DESCRIPTIVE_SCORING", "IDENTITY_VERSION", "hash_differences", "hash_inputs",
           "identity", "protocol_hash", "protocol_id", "record"]
