"""The protocol's work on one sample -- which pixels, align, score -- without knowing the protocol.

What is done comes from a resolved :class:`~marigold_bench.eval.protocols.Scoring`; its
evaluation protocol (``scoring.definition``) holds the callables that align and score (the
Marigold host/GPU scorer, MoGe's, a plugin's), so nothing here compares protocol names. A
benchmark :class:`~marigold_bench.data.protocol.Protocol` alone means the ``marigold`` protocol
for depth predictions, today's behaviour.

torch is imported only when a device is asked for, so scoring cached predictions on the host
(``rescore``) never loads it.
"""

from __future__ import annotations

import numpy as np

from marigold_bench.errors import BenchError
from marigold_bench.eval.protocols import Scoring, default_scoring
from marigold_bench.output_spaces import is_point_map


def as_scoring(protocol) -> Scoring:
    """A :class:`Scoring` as is; a benchmark protocol as the default (``marigold``) scoring."""
    return protocol if isinstance(protocol, Scoring) else default_scoring(protocol)


def scored_pixels(item: dict, protocol) -> np.ndarray:
    """The pixels of a dataset item that the scoring fits and scores (boolean HxW).

    Under the benchmark's own crop that is the item's ``valid`` (validity, range and the
    default crop: the numbers of every run before protocols chose crops). Under another crop
    the scoring picked, it is the item's ``mask`` (validity and range, no crop) cut by that crop.

    Args:
        item: a dataset item (``valid``; ``mask`` where the benchmark provides it).
        protocol: a resolved :class:`Scoring`, or a benchmark protocol (its default scoring).

    Raises:
        BenchError: a crop other than the benchmark's own on items that carry no ``mask``.
    """
    scoring = as_scoring(protocol)
    if scoring.default_crop:
        return np.asarray(item["valid"], dtype=bool)
    if "mask" not in item:
        raise BenchError(f"crop {scoring.crop!r}: the {scoring.dataset} items carry no uncropped mask, "
                         "so only the benchmark's own crop can be scored")
    mask = np.asarray(item["mask"], dtype=bool)
    return mask & scoring.benchmark.crop_mask(scoring.crop, mask.shape)


def prediction_channels(scoring: Scoring) -> int | None:
    """How many channels a prediction scored under ``scoring`` carries per pixel: None for a
    depth or disparity map (H x W), 3 for surface normals and point maps (3 x H x W)."""
    if scoring.definition.target == "normals" or is_point_map(scoring.output_space):
        return 3
    return None


def align_and_score(sample_id: str, pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, protocol,
                    device=None) -> dict:
    """Metrics, ``scale`` and ``shift`` of one prediction (HxW, ground-truth size).

    Args:
        valid: the scored pixels (`scored_pixels`).
        protocol: a resolved :class:`~marigold_bench.eval.protocols.Scoring`, or a benchmark
            protocol (then: ``marigold``, depth predictions, the protocol's fit space).
        device: a CUDA device scores there where the protocol's scorer can (``marigold``); if it
            runs out of memory the host takes over.

    Returns:
        every metric column of the scoring, ``scale`` and ``shift`` (in the fit space), and under
        a disparity fit ``n_nonpositive``: valid pixels predicted <= 0, which have no disparity
        (the marigold fit leaves them out, MoGe's fits keep them; either way they are counted).

    Raises:
        PredictionError: the prediction is NaN/inf on a valid pixel.
        ValueError: too few valid pixels to fit, or aligned values that cannot be scored.
    """
    scoring = as_scoring(protocol)
    valid = np.asarray(valid, dtype=bool)  # an integer mask would index, not mask
    return scoring.definition.score(sample_id, pred, depth, valid, scoring, device)
