"""Surface-normal metrics: angular error per pixel, summarised per image or pooled over a dataset.

The angular error of a pixel is the angle between the predicted and the ground-truth normal,
in degrees: ``acos(clip(cos, -1, 1))`` with ``cos = p·g / (max(|p|, eps) · max(|g|, eps))``, so a
zero predicted vector has cosine 0 and an error of exactly 90° (counted, never NaN). Only pixels
whose ground truth is a non-zero vector are scored; the ground truth is not renormalised (a
non-unit vector only changes the cosine's denominator, which the formula already divides out).

Two protocols summarise the errors differently (sources: prs-eth/Marigold b1dffaa and baegwangbin/DSINE, named below):

* ``marigold`` (prs-eth/Marigold ``src/util/metric.py``): per image the mean, the median and the
  percentage of pixels under 5, 7.5, 11.25, 22.5 and 30 degrees, **each rounded to 4 decimals**,
  then the plain mean over images (`per_image_metrics`, then a mean of the records).
* ``dsine`` (baegwangbin/DSINE ``utils/utils.py``): every scored pixel of the whole dataset in
  one pool, then mean, median, RMSE and the same five percentages once, unrounded
  (`pooled_metrics` over the concatenated errors).

The errors are computed in float32, as both reference implementations do (torch float32), so
that a pixel right at a threshold falls on the same side as theirs.
"""

from __future__ import annotations

import numpy as np

#: the thresholds (degrees) of the "percentage under" metrics, and their column names
THRESHOLDS = ((5.0, "pct_5"), (7.5, "pct_7_5"), (11.25, "pct_11_25"), (22.5, "pct_22_5"), (30.0, "pct_30"))

#: the per-sample columns of each protocol
MARIGOLD_NORMAL_METRICS = ("mean_angle", "median_angle") + tuple(name for _, name in THRESHOLDS)
DSINE_NORMAL_METRICS = MARIGOLD_NORMAL_METRICS + ("rmse_angle",)

#: torch.cosine_similarity's default eps (the norms are clamped to it)
EPS = 1e-8


def as_chw(normals: np.ndarray, what: str = "normals") -> np.ndarray:
    """``3 x H x W`` float32 from ``3 x H x W`` or ``H x W x 3``.

    Raises:
        ValueError: any other shape (the message says what was given).
    """
    array = np.asarray(normals)
    if array.ndim == 3 and array.shape[0] == 3:
        return array.astype(np.float32, copy=False)
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(np.moveaxis(array, 2, 0), dtype=np.float32)
    raise ValueError(f"{what}: expected 3 x H x W or H x W x 3, got shape {array.shape}")


def scored_mask(gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """The pixels a normals protocol scores: ground truth is a non-zero vector (and ``valid``)."""
    mask = np.linalg.norm(as_chw(gt, "ground truth"), axis=0) > 0
    return mask if valid is None else mask & np.asarray(valid, dtype=bool)


def angular_errors(pred, gt, valid: np.ndarray | None = None) -> np.ndarray:
    """Angular errors in degrees (float32, flat) of the scored pixels.

    Args:
        pred, gt: ``3 x H x W`` or ``H x W x 3`` normals in the same camera frame.
        valid: optional extra mask (H x W).

    Raises:
        ValueError: shapes that differ, or a NaN/inf prediction on a scored pixel.
    """
    pred, gt = as_chw(pred, "prediction"), as_chw(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    mask = scored_mask(gt, valid)
    p, g = pred[:, mask], gt[:, mask]
    if not np.isfinite(p).all():
        raise ValueError("prediction contains NaN or inf on a scored pixel")
    # normalise each vector first, then take the dot product, in float32: the order of
    # operations of torch.cosine_similarity, so threshold counts agree with the references
    unit_p = p / np.maximum(np.linalg.norm(p, axis=0), np.float32(EPS))
    unit_g = g / np.maximum(np.linalg.norm(g, axis=0), np.float32(EPS))
    cosine = np.clip((unit_p * unit_g).sum(axis=0, dtype=np.float32), -1.0, 1.0).astype(np.float32)
    # torch's float32 acos, as both references take it: numpy's arccos is an ulp away on some
    # pixels, which can move a per-image median across its 4th-decimal rounding
    import torch

    return (torch.acos(torch.from_numpy(cosine)) * 180.0 / np.pi).numpy()


def _summary(errors: np.ndarray) -> dict:
    # numpy scalars in the references' dtypes (float32 mean and median, float64 shares): the
    # official record rounds these with numpy's round, which can differ from Python's at a
    # 4th-decimal edge
    n = errors.shape[0]
    out = {"mean_angle": np.average(errors), "median_angle": np.median(errors)}
    for threshold, name in THRESHOLDS:
        out[name] = 100.0 * (np.sum(errors < threshold) / n)
    return out


def per_image_metrics(pred, gt, valid=None) -> dict[str, float]:
    """The official protocol's record of one image: each metric rounded to 4 decimals.

    Raises:
        ValueError: no scored pixel, or as `angular_errors`.
    """
    errors = angular_errors(pred, gt, valid)
    if errors.size == 0:
        raise ValueError("no pixel with a ground-truth normal to score")
    return rounded_summary(errors)


def rounded_summary(errors: np.ndarray) -> dict[str, float]:
    """The official per-image record of one image's errors: each metric rounded to 4 decimals."""
    # numpy's round on the reference dtype decides the 4th decimal; the record keeps that
    # decimal itself (as the references print it), not the float32 nearest to it
    return {k: float(f"{round(v, 4):.4f}") for k, v in _summary(errors).items()}


def image_summary(errors: np.ndarray) -> dict[str, float]:
    """One image's errors summarised as DSINE summarises a pool (unrounded, with RMSE): the
    per-sample row of the ``dsine`` protocol."""
    return pooled_metrics(errors)


def pooled_metrics(errors: np.ndarray) -> dict[str, float]:
    """DSINE's summary of a dataset's pooled errors (degrees, flat): mean, median, RMSE and the
    five percentages, unrounded.

    Raises:
        ValueError: an empty pool.
    """
    errors = np.asarray(errors, dtype=np.float32).ravel()
    if errors.size == 0:
        raise ValueError("no scored pixel in the whole dataset")
    out = {k: float(v) for k, v in _summary(errors).items()}
    out["rmse_angle"] = float(np.sqrt(np.sum(errors * errors) / errors.shape[0]))
    return out


def n_zero_predictions(pred, gt, valid=None) -> int:
    """Scored pixels whose prediction is the zero vector (each scored as 90°; counted so a
    broken model is visible rather than hidden in the mean)."""
    pred = as_chw(pred, "prediction")
    mask = scored_mask(gt, valid)
    return int((np.linalg.norm(pred[:, mask], axis=0) == 0).sum())




# --- what the normals protocols share (eval/protocols/marigold_normals.py, dsine.py) ---------

def in_frame(pred, from_frame: str | None, to_frame: str | None) -> np.ndarray:
    """A ``3 x H x W`` (or ``H x W x 3``) prediction as ``3 x H x W`` in ``to_frame`` (the
    benchmark's), converted from ``from_frame`` (the predictor's or ``--frame``); unchanged when
    either is unknown or they are equal."""
    from marigold_bench.frames import convert_normals

    chw = as_chw(pred, "prediction")
    if not from_frame or not to_frame or from_frame == to_frame:
        return chw
    return np.ascontiguousarray(np.moveaxis(convert_normals(np.moveaxis(chw, 0, -1), from_frame, to_frame), -1, 0))


def ground_truth_chw(gt) -> np.ndarray:
    """The item's ``H x W x 3`` ground truth as ``3 x H x W`` (the loaders' layout is fixed, so
    an image 3 pixels high is never mistaken for channel-first)."""
    gt = np.asarray(gt, dtype=np.float32)
    if gt.ndim != 3 or gt.shape[-1] != 3:
        raise ValueError(f"ground truth: expected H x W x 3 normals, got shape {gt.shape}")
    return np.ascontiguousarray(np.moveaxis(gt, -1, 0))


def sample_errors(sample_id: str, pred, gt, valid, scoring) -> tuple[np.ndarray, int]:
    """``(angular errors of the scored pixels, zero-vector predictions among them)`` of one
    sample: the prediction brought into the benchmark's frame first (``scoring.prediction_frame``
    -> ``scoring.frame``).

    Raises:
        PredictionError: NaN/inf at a scored pixel.
        ValueError: shapes that differ, or no pixel to score.
    """
    from marigold_bench.errors import PredictionError

    pred = in_frame(pred, scoring.prediction_frame, scoring.frame)
    gt = ground_truth_chw(gt)
    try:
        errors = angular_errors(pred, gt, valid)
    except ValueError as exc:
        if "NaN" in str(exc):
            raise PredictionError(f"{sample_id}: {exc}") from None
        raise
    if errors.size == 0:
        raise ValueError("no pixel with a ground-truth normal to score")
    return errors, n_zero_predictions(pred, gt, valid)


__all__ = ["DSINE_NORMAL_METRICS", "MARIGOLD_NORMAL_METRICS", "THRESHOLDS", "angular_errors", "as_chw",
           "ground_truth_chw", "image_summary", "in_frame", "rounded_summary", "sample_errors",
           "n_zero_predictions", "per_image_metrics", "pooled_metrics", "scored_mask"]
