"""The ``da2k`` protocol: DA-2K's pair order (Depth Anything V2), the only protocol of pair benchmarks.

No alignment: an order is unchanged by any positive scale and shift, so every output space is
scored as predicted (a depth space: smaller is closer; a disparity space: larger is closer; a
point map: its z). Per sample the record holds the image's accuracy, its pairs and correct pairs;
the benchmark's number is over pairs, overall and per scene type (`pooled`), not the mean of
per-image accuracies. The scorer is `marigold_bench.eval.da2k`.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.errors import BenchError
from marigold_bench.eval.protocols.base import EvaluationProtocol
from marigold_bench.output_spaces import ALL_OUTPUT_SPACES, DEPTH_METRIC, is_point_map

def columns(output_space: str, benchmark) -> tuple:
    """``pair_acc``; refused on a benchmark that has no pairs (anything not scored by ``da2k``)."""
    if getattr(benchmark, "scored_by", None) != PROTOCOL.name:
        raise BenchError(f"protocol da2k scores pair-order benchmarks (da2k) only, not "
                         f"{getattr(benchmark, 'name', benchmark)}")
    return ("pair_acc",)


def align(pred, depth, valid, scoring):
    """Nothing is fitted: ``(pred, 1, 0)`` (a point map: its z)."""
    pred = np.asarray(pred)
    return (pred[2] if pred.ndim == 3 else pred), 1.0, 0.0


def score(sample_id, pred, depth, valid, scoring, device=None, item=None) -> dict:
    """The pair accuracy of one image; ``_pool`` carries ``[scene, n_correct, n_pairs]`` for `pooled`."""
    from marigold_bench.eval.da2k import score_pairs

    pred = np.asarray(pred)
    if is_point_map(scoring.output_space):
        pred = pred[2]
    if item is None or "pairs" not in item:
        raise ValueError(f"{sample_id}: the item carries no annotated pairs")
    record = score_pairs(sample_id, pred, item["pairs"], item["closer"], scoring.output_space)
    scene = item.get("scene", "all")
    return {"pair_acc": record["pair_acc"], "scale": 1.0, "shift": 0.0, "scene": scene,
            "n_pairs": record["n_pairs"], "n_correct": record["n_correct"],
            "_pool": np.array([scene, record["n_correct"], record["n_pairs"]], dtype=object)}


def pooled(pools) -> dict:
    """Accuracy over every pair of every scored image, and per scene type ``pair_acc_<scene>``."""
    from marigold_bench.eval.da2k import summarize

    out = summarize({"scene": str(s), "n_correct": int(c), "n_pairs": int(n)} for s, c, n in pools)
    return {"pair_acc": out["pair_acc"], **{f"pair_acc_{scene}": acc for scene, acc in out["by_scene"].items()}}


PROTOCOL = EvaluationProtocol(
    name="da2k",
    source="Yang et al., Depth Anything V2, NeurIPS 2024 (DA-2K); https://huggingface.co/datasets/depth-anything/DA-2K",
    description="share of annotated pairs whose closer point the prediction orders right (no fit; "
                "disparity: larger is closer); over pairs, overall and per scene type",
    default_alignment={space: ("none", "depth") for space in ALL_OUTPUT_SPACES},
    realisations={("none", "depth"): "none (an order needs no fit)"},
    metric_keys=("pair_acc",),
    align=align,
    score=score,
    fit_resolution="none",
    clip_to_range=False,
    metric_definitions="da2k",
    notes=("a tie is no order and counts as wrong", "a point outside the image is an error naming it",
           "pair benchmarks are scored by this protocol only"),
    wants_item=True,
    pooled=pooled,
    columns=columns,
)
