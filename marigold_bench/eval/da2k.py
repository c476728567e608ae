"""DA-2K's score: the share of annotated pairs whose closer point the prediction orders right.

A prediction in a depth space (``depth_*``) says a point is closer when its value is smaller; in
a disparity space (``disparity_*``) when it is larger. No alignment is needed (order is invariant
to any positive scale and shift). A tie is not an order, so it counts as wrong. The benchmark's
number is over pairs (``n_correct / n_pairs`` summed over images), overall and per scene type
(`summarize`), not the mean of per-image accuracies.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from marigold_bench.errors import PredictionError, SampleError
from marigold_bench.output_spaces import is_disparity

#: per-image columns `score_pairs` returns
COLUMNS = ("pair_acc", "n_pairs", "n_correct")


def score_pairs(sample_id: str, pred: np.ndarray, pairs: np.ndarray, closer: np.ndarray, output_space: str) -> dict:
    """Pair accuracy of one image.

    Args:
        pred: the prediction, HxW, at the image's size.
        pairs: int Nx4 (row1, col1, row2, col2).
        closer: bool N, True where point1 is the closer point.
        output_space: what ``pred`` means (disparity spaces: larger is closer).

    Raises:
        SampleError: a point outside the prediction (names the image and pair).
        PredictionError: NaN or inf at an annotated point.
    """
    pred = np.asarray(pred)
    h, w = pred.shape[:2]
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 4)
    outside = ~((pairs[:, [0, 2]] >= 0) & (pairs[:, [0, 2]] < h) & (pairs[:, [1, 3]] >= 0) & (pairs[:, [1, 3]] < w))
    if outside.any():
        i, which = map(int, np.argwhere(outside)[0])
        r, c = pairs[i, 2 * which], pairs[i, 2 * which + 1]
        raise SampleError(f"DA-2K {sample_id} pair {i}: point{which + 1} [row {r}, col {c}] is outside the "
                          f"{w}x{h} prediction", path=sample_id)
    v1, v2 = pred[pairs[:, 0], pairs[:, 1]], pred[pairs[:, 2], pairs[:, 3]]
    if not (np.isfinite(v1).all() and np.isfinite(v2).all()):
        raise PredictionError(f"{sample_id}: prediction is NaN or inf at an annotated point")
    first_closer = (v1 > v2) if is_disparity(output_space) else (v1 < v2)
    tie = v1 == v2
    correct = ~tie & (first_closer == np.asarray(closer, dtype=bool))
    n = len(pairs)
    return {"pair_acc": float(correct.mean()) if n else float("nan"), "n_pairs": n, "n_correct": int(correct.sum())}


def summarize(records) -> dict:
    """Overall and per-scene pair accuracy from per-image records (``scene``, ``n_pairs``,
    ``n_correct``): ``{"pair_acc": ..., "n_pairs": ..., "by_scene": {scene: pair_acc}}``."""
    totals = defaultdict(lambda: [0, 0])
    for rec in records:
        totals[rec["scene"]][0] += int(rec["n_correct"])
        totals[rec["scene"]][1] += int(rec["n_pairs"])
    correct = sum(c for c, _ in totals.values())
    pairs = sum(n for _, n in totals.values())
    return {"pair_acc": correct / pairs if pairs else float("nan"), "n_pairs": pairs,
            "by_scene": {s: c / n for s, (c, n) in sorted(totals.items()) if n}}


__all__ = ["COLUMNS", "score_pairs", "summarize"]
