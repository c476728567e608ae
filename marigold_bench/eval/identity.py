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
                       "declared_output_space", "description", "notes", "protocol_version",
                       # normals: the predictions' own frame is converted away before scoring
                       "prediction_frame")

#: the benchmark facts recorded in ``summary.json["protocol"]`` that decide which pixels are
#: scored and against what
BENCHMARK_RULES = ("task", "min_depth", "max_depth", "range_in_valid", "eval_mask", "default_crop",
                   "fit_max_resolution", "fit_downsample", "split_sha256",
                   # the procedural benchmark has no split file: its recipe is its split
                   "split", "first_seed", "resolution")

#: bump when the set of inputs above changes meaning (never for a new protocol)
IDENTITY_VERSION = 1


def protocol_id(summary: dict) -> str:
    """``<protocol>/<version>``, e.g. ``marigold/1``; another task than depth is named first
    (``normals/marigold/1``: the name ``marigold`` serves both tasks)."""
    scoring = summary.get("scoring") or {}
    name = scoring.get("protocol") or summary.get("protocol_name") or "marigold"
    task = scoring.get("task", "depth")
    return f"{'' if task == 'depth' else task + '/'}{name}/{scoring.get('protocol_version', 1)}"


#: what a 0.3 scoring record left unsaid because 0.3 had one value for it: the crop was always
#: the benchmark's own, and each of its two protocols had one disparity floor. Filled in so that
#: a 0.3 run hashes as the same rules scored in 0.4 do (these are history: never edit them).
LEGACY_DISPARITY_FLOOR = {"marigold": 1e-3, "moge": 1e-6}


def _with_legacy_defaults(scoring: dict, facts: dict) -> dict:
    """``scoring`` with the keys a 0.3 record lacks set to the values 0.3 used (a 0.4 record has
    them all and is returned unchanged)."""
    if not scoring or scoring.get("task", "depth") != "depth":
        return scoring
    filled = dict(scoring)
    if "crop" not in filled:
        filled["crop"] = facts.get("default_crop") or facts.get("eval_mask") or "none"
    name = filled.get("protocol", "marigold")
    if "disparity_floor" not in filled and name in LEGACY_DISPARITY_FLOOR:
        filled["disparity_floor"] = LEGACY_DISPARITY_FLOOR[name]
    return filled


def hash_inputs(summary: dict) -> dict:
    """The exact record the hash is computed from (what `compare` shows in full)."""
    facts = summary.get("protocol") or {}
    scoring = _with_legacy_defaults(summary.get("scoring") or {}, facts)
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


#: `identity`'s ``hash_source`` for a run directory written before protocol hashes (0.3)
COMPUTED = "computed from the recorded scoring (run written before protocol hashes)"


def hash_was_computed(ident: dict) -> bool:
    """Whether `identity` computed the hash (a run written before 0.4) rather than read it."""
    return ident.get("hash_source") == COMPUTED


def hash_label(ident: dict) -> str:
    """``hash 1a2b...``, marked when it was computed for an old run rather than recorded."""
    mark = " (computed: run written before 0.4)" if hash_was_computed(ident) else ""
    return f"hash {ident['protocol_hash']}{mark}"


def identity(summary: dict) -> dict:
    """``{"protocol_id", "protocol_hash", "hash_source"}`` of a run: as recorded, or computed
    now for a run directory written before 0.4 (``hash_source`` says which)."""
    recorded = summary.get("protocol_identity")
    if isinstance(recorded, dict) and recorded.get("protocol_hash"):
        return {**recorded, "hash_source": "recorded"}
    return {"protocol_id": protocol_id(summary), "protocol_hash": protocol_hash(summary),
            "hash_source": COMPUTED}


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


def _normals_card(spec) -> dict:
    """The card of a surface-normals protocol: its rules and its hash on each normals benchmark."""
    from marigold_bench.data.registry import all_benchmarks
    from marigold_bench.eval.protocols import resolve_scoring
    from marigold_bench.tasks import METRICS

    hashes = {}
    for bench in all_benchmarks("normals"):
        try:
            scoring = resolve_scoring(bench, spec.name)
            facts = {**bench.to_dict(), **_split_identity(bench)}
        except Exception:  # a benchmark whose split is not pinned
            continue
        hashes[bench.name] = protocol_hash({"dataset": bench.name, "scoring": scoring.to_dict(), "protocol": facts})
    metrics = {key: {"title": METRICS[key].title, "better": "lower" if METRICS[key].lower_is_better else "higher",
                     "definition": METRICS[key].description} if key in METRICS else
               {"definition": "defined by the protocol's scorer"} for key in spec.metric_keys}
    return {
        "protocol_id": f"normals/{spec.name}/{spec.version}",
        "name": spec.name,
        "task": "normals",
        "description": spec.description,
        "source": spec.source,
        "origin": spec.origin,
        "rules": {"fit": "none (angles)", "frame": "predictions converted to the benchmark's camera frame",
                  "dataset_metrics": "pooled over all scored pixels" if spec.pooled else "mean of per-image records",
                  "scored_pixels": "ground truth a non-zero finite vector"},
        "metrics": metrics,
        "notes": list(spec.notes),
        "identity_version": IDENTITY_VERSION,
        "hash_covers": "the resolved scoring (less prose), the benchmark's frame and task, and the split "
                       "file's sha256; see marigold_bench/eval/identity.py",
        "protocol_hash_by_benchmark": hashes,
    }


def protocol_card(name: str, task: str | None = None) -> dict:
    """A protocol's citable card: its id, source, every rule that changes a number, the alignment
    each output space gets, its metrics, and the protocol hash it gives on each depth benchmark
    of the registry for affine-invariant depth predictions (the hash a run of such a model
    records, so a paper can print it beside a number).

    ``task``: the task of the protocol called ``name`` (None: depth where it exists, else the
    normals protocol of that name, e.g. ``dsine``).

    Raises:
        BenchError: an unknown protocol (the message lists the known ones).
    """
    from marigold_bench.data.registry import all_benchmarks
    from marigold_bench.eval.protocols import NORMALS_PROTOCOLS, get_evaluation_protocol, resolve_scoring
    from marigold_bench.output_spaces import DEPTH_AFFINE, OUTPUT_SPACES
    from marigold_bench.tasks import METRICS

    if task is None:
        task = "normals" if name in NORMALS_PROTOCOLS and not _is_depth_protocol(name) else "depth"
    if task == "normals":
        return _normals_card(get_evaluation_protocol(name, "normals"))
    spec = get_evaluation_protocol(name)
    by_space = {}
    for space in OUTPUT_SPACES:
        if space not in spec.default_alignment:   # e.g. an affine model under a metric protocol
            by_space[space] = {"alignment": None, "fit": "no default: refused unless --alignment is given"}
            continue
        alignment, fit_space = spec.default_alignment[space]
        by_space[space] = {"alignment": alignment, "fit_space": fit_space,
                           "fit": spec.realisations[(alignment, fit_space)]}
    # the hashes are those of affine-invariant depth models, or of the first output space the
    # protocol scores without being told an alignment (metric protocols: metric depth)
    hashed_space = DEPTH_AFFINE if DEPTH_AFFINE in spec.default_alignment else \
        next((sp for sp in OUTPUT_SPACES if sp in spec.default_alignment), DEPTH_AFFINE)
    metrics = {}
    for key in spec.metric_keys:
        m = METRICS.get(key)
        metrics[key] = ({"title": m.title, "better": "lower" if m.lower_is_better else "higher",
                         "definition": m.description} if m else {"definition": "defined by the protocol's scorer"})
    hashes, unpinned = {}, []
    for bench in all_benchmarks():
        if getattr(bench, "task", "depth") != "depth":
            continue
        try:
            scoring = resolve_scoring(bench, spec.name, hashed_space)
        except Exception:  # a benchmark this protocol does not score
            continue
        try:
            facts = {**bench.to_dict(), **_split_identity(bench)}
        except LookupError:  # its samples are listed from the data: only a run knows them
            unpinned.append(bench.name)
            continue
        summary = {"dataset": bench.name, "scoring": scoring.to_dict(), "protocol": facts}
        hashes[bench.name] = protocol_hash(summary)
    return {
        "protocol_id": f"{spec.name}/{spec.version}",
        "name": spec.name,
        "description": spec.description,
        "source": spec.source,
        "origin": spec.origin,
        "rules": {
            "fit_resolution": spec.fit_resolution,
            "weighted_subsampled_fits": sorted(f"{a} in {s}" for a, s in spec.subsampled_fits),
            "clip_to_range": spec.clip_to_range,
            "disparity_floor": spec.disparity_floor,
            "crop": spec.crop or "the benchmark's own",
        },
        "alignment_by_output_space": by_space,
        "alignments": {f"{a} in {s}": text for (a, s), text in spec.realisations.items()},
        "metrics": metrics,
        "notes": list(spec.notes),
        "identity_version": IDENTITY_VERSION,
        "hash_covers": "the resolved scoring (less prose), the benchmark's range, mask and crop rules, "
                       "and the split file's sha256; see marigold_bench/eval/identity.py",
        "protocol_hash_output_space": hashed_space,
        "protocol_hash_by_benchmark": hashes,
        # no pinned split file: the hash covers the sample listing found in the data, so it is
        # in each run's summary.json, not on the card
        "protocol_hash_recorded_by_runs_only": unpinned,
    }


def _is_depth_protocol(name: str) -> bool:
    from marigold_bench.eval.protocols import EVALUATION_PROTOCOLS
    return name in EVALUATION_PROTOCOLS


def _split_identity(bench) -> dict:
    """What a run of ``bench``'s test split records about its split (its file's sha256; the
    procedural set: its recipe), without opening data that needs a root."""
    if not getattr(bench, "needs_root", True):
        return bench.open().describe()
    facts = getattr(bench, "split_files", {}).get(bench.default_split)
    if facts is None:
        raise LookupError(f"{bench.name}: its default split file is not pinned")
    return {"split_sha256": facts.sha256}


__all__ = ["BENCHMARK_RULES", "COMPUTED", "DESCRIPTIVE_SCORING", "IDENTITY_VERSION", "LEGACY_DISPARITY_FLOOR",
           "hash_differences", "hash_inputs", "hash_label", "hash_was_computed",
           "identity", "protocol_card", "protocol_hash", "protocol_id", "record"]
