"""Bring a MoGe sample to its benchmark's target size, as MoGe's evaluation loader does.

MoGe's ``EvalDataLoaderPipeline._process_instance`` (``moge/test/dataloader.py``) does not just
resize: it re-renders each sample through a virtual pinhole camera of the target size that looks
down the raw camera's principal ray. The steps, reproduced by :func:`warp_sample`:

1. The virtual camera's field of view: the raw field of view clipped to the target aspect, then
   shrunk until the target frame's four edges, rotated onto the principal ray, lie inside the
   raw image (the raw image's edges are intersected with the frame's two diagonals).
2. The image is resized with PIL's Lanczos filter to about the target's pixel size; the depth
   (masked nearest) likewise, then turned into distance along each pixel's ray.
3. Both are remapped through the homography ``K_raw R^-1 K_target^-1``: the image bilinearly,
   distance, validity and segmentation by nearest pixel; distance is turned back into z-depth.
4. Pixels deeper than ``drop_max_depth`` times the 1 % quantile of the valid depth are dropped.
5. Segments named ``undefined``, ``unannotated``, ``background`` or ``sky`` are dropped; the rest
   are ranked by their pixel count in the warped frame, and at most ``max_segments`` with at least
   ``min_seg_area`` pixels are kept.

Every step runs in the dtypes and with the numpy calls MoGe's code runs (float32 where it is
float32), because a nearest-pixel lookup turns one last-bit difference into another pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from marigold_bench.data.moge_resample import masked_nearest_resize, remap_linear_u8, remap_nearest, resize_nearest

#: segment labels MoGe never scores as objects
IGNORED_SEGMENTS = ("undefined", "unannotated", "background", "sky")


@dataclass
class WarpedSample:
    """A sample in its benchmark's target frame.

    Attributes:
        image: uint8 HxWx3.
        depth: float32 HxW z-depth (0 where nothing maps; meaningless where ``mask`` is False).
        mask: bool HxW: MoGe's ``depth_mask``.
        intrinsics: float32 3x3 normalised intrinsics of the target frame (centred).
        segmentation: HxW segment ids, or None.
        labels: the segments MoGe scores, ``{label: id}`` in its order, or None.
        empty: True when no pixel stayed valid; MoGe then marks every pixel valid with depth 1
            (its ``label_type = 'invalid'``), and so does this.
    """

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    intrinsics: np.ndarray
    segmentation: np.ndarray | None = None
    labels: dict | None = None
    empty: bool = False


def uv_grid(height: int, width: int) -> np.ndarray:
    """Normalised pixel centres ``((j + 0.5) / W, (i + 0.5) / H)`` as float32 HxWx2 (numpy's
    float32 linspace, as utils3d's ``uv_map``)."""
    u = np.linspace(0.5 / width, 1 - 0.5 / width, width, dtype=np.float32)
    v = np.linspace(0.5 / height, 1 - 0.5 / height, height, dtype=np.float32)
    return np.stack(np.meshgrid(u, v, indexing="xy"), axis=2)


def lift_uv(uv: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-space points (BxNx3) of normalised pixel coordinates ``uv`` (BxNx2) at z-depth
    ``depth`` (BxN) through normalised ``intrinsics`` (3x3), in the input dtype.

    The points are ``[u d, v d, d, 1] @ inv([[K, 0], [0, 1]])^T`` with the matrix repeated along
    the first axis: the shapes utils3d's batched ``unproject_cv`` hands to numpy, so that the
    float32 results are the same to the last bit.
    """
    n = uv.shape[0]
    k = np.broadcast_to(intrinsics, (n, 3, 3))
    block = np.zeros((n, 4, 4), dtype=intrinsics.dtype)
    block[:, :3, :3] = k
    block[:, 3, 3] = 1
    homog = np.concatenate([uv, np.ones((*uv.shape[:-1], 1), dtype=uv.dtype)], axis=-1) * depth[..., None]
    homog = np.concatenate([homog, np.ones((*homog.shape[:-1], 1), dtype=uv.dtype)], axis=-1)
    return (homog @ np.swapaxes(np.linalg.inv(block), -1, -2))[..., :3]


def _norm3(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.square(x[..., 0]) + np.square(x[..., 1]) + np.square(x[..., 2]))


def _rotation_onto_z(direction: np.ndarray) -> np.ndarray:
    """The rotation taking ``direction`` onto +z (Rodrigues' formula ``I + K + K^2 / (1 + c)``
    with ``K`` the cross-product matrix of ``direction x z``), in ``direction``'s dtype."""
    dtype = direction.dtype
    a = direction / np.linalg.norm(direction, axis=-1)
    z = np.array([0, 0, 1], dtype=dtype)
    z = z / np.linalg.norm(z, axis=-1)
    axis = np.cross(a, z, axis=-1)
    cos = np.sum(a * z, axis=-1)
    x, y, w = axis[0], axis[1], axis[2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -w, y, w, zero, -x, -y, x, zero], axis=-1).reshape(3, 3)
    return np.eye(3, dtype=dtype) + skew + (1 / (1 + cos)).astype(dtype)[None, None] * (skew @ skew)


def _diagonal_hits(aspect: float, start: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Where the frame's diagonals through the origin, directions ``(aspect, +-1)``, meet the line
    ``start + t step``: a 2x2 array, one row per diagonal.

    Solved as MoGe's utils3d does, by damped normal equations (``+1e-12 I``) in float64 over the
    unknowns ``(x, y, s, t)`` of ``x = s d1 = start + t step``; the damping moves the answer in
    its last bits, which an ``int()`` of the rescaled size can feel.
    """
    d1 = np.array([[aspect, 1.0], [aspect, -1.0]])
    p1, d1, p2, d2 = np.broadcast_arrays(np.array([0.0, 0.0]), d1, start, step)
    d = np.stack([d1, d2], axis=-2)  # (2 diagonals, 2 rays, 2)
    p = np.stack([p1, p2], axis=-2)
    # rows (ray k, coordinate j): x_j - t_k d_k[j] = p_k[j]
    eye_rows = (np.eye(2) * np.ones((2, 2, 1, 1))).reshape(2, 4, 2)
    ray_cols = -(np.eye(2)[..., None] * d[..., None, :]).swapaxes(-2, -1).reshape(2, 4, 2)
    a = np.concatenate([eye_rows, ray_cols], axis=-1)
    b = p.reshape(2, 4)
    at = a.swapaxes(-1, -2)
    x = np.linalg.solve(at @ a + 1e-12 * np.eye(4), at @ b[..., :, None])[..., 0]
    return x[..., :2]


def target_view(intrinsics: np.ndarray, raw_size: tuple[int, int], size: tuple[int, int]):
    """The virtual camera of :func:`warp_sample`'s step 1.

    Args:
        intrinsics: float32 3x3 normalised raw intrinsics.
        raw_size / size: ``(height, width)`` of the raw image and of the target.

    Returns:
        ``(target intrinsics float32 3x3, rotation R float32 3x3, rescaled (height, width))``.
    """
    (raw_h, raw_w), (tgt_h, tgt_w) = raw_size, size
    k = intrinsics
    raw_fov_x, raw_fov_y = abs(1.0 / k[0, 0]), abs(1.0 / k[1, 1])  # frame width / focal
    aspect = tgt_w / tgt_h
    fov_x = min(raw_fov_x, raw_fov_y * aspect)
    fov_y = fov_x / aspect

    centre = lift_uv(np.array([[[0.5, 0.5]]], dtype=np.float32), np.array([[1.0]], dtype=np.float32), k)[0, 0]
    rot = _rotation_onto_z(centre)

    # the raw image's corners seen by the rotated camera, on its z = 1 plane
    corners = np.array([[0, 0], [0, 1], [1, 1], [1, 0]], dtype=np.float32)
    corners = np.concatenate([corners, np.ones((4, 1), dtype=np.float32)], axis=1) @ (np.linalg.inv(k).T @ rot.T)
    corners = corners[:, :2] / corners[:, 2:3]
    fit_x, fit_y = abs(1.0 / k[0, 0]), abs(1.0 / k[1, 1])
    for i in range(4):
        hits = _diagonal_hits(aspect, corners[i - 1], corners[i] - corners[i - 1])
        fit_x = min(fit_x, 2 * np.abs(hits[:, 0]).min())
        fit_y = min(fit_y, 2 * np.abs(hits[:, 1]).min())
    fov_x, fov_y = min(fov_x, fit_x), min(fov_y, fit_y)

    target_k = np.zeros((3, 3), dtype=np.float32)
    target_k[0, 0], target_k[1, 1] = np.float32(1.0 / fov_x), np.float32(1.0 / fov_y)
    target_k[0, 2] = target_k[1, 2] = 0.5
    target_k[2, 2] = 1.0

    raw_pixel_x, raw_pixel_y = raw_fov_x / raw_w, raw_fov_y / raw_h
    tgt_pixel_x, tgt_pixel_y = fov_x / tgt_w, fov_y / tgt_h
    rescaled = (int(raw_h * raw_pixel_y / tgt_pixel_y), int(raw_w * raw_pixel_x / tgt_pixel_x))
    return target_k, rot, rescaled


def warp_sample(image: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int],
                segmentation: np.ndarray | None = None, labels: dict | None = None,
                drop_max_depth: float = 1000.0, max_segments: int = 100, min_seg_area: int = 1000) -> WarpedSample:
    """Warp one raw sample to ``size = (height, width)`` (see the module docstring).

    Args:
        image: uint8 HxWx3.
        depth: float32 HxW, NaN unknown and inf infinite (both invalid).
        intrinsics: float32 3x3 normalised intrinsics.
        size: the benchmark's target ``(height, width)``.
        segmentation / labels: segment ids and ``{label: id}``, or None.
        drop_max_depth: pixels deeper than this times the 1 % depth quantile are dropped.
        max_segments / min_seg_area: which segments are kept for local-point metrics.

    Returns:
        A :class:`WarpedSample`.
    """
    tgt_h, tgt_w = size
    k = np.asarray(intrinsics, dtype=np.float32)
    valid = np.isfinite(depth)
    depth = np.nan_to_num(depth, nan=1, posinf=1, neginf=1)
    target_k, rot, (res_h, res_w) = target_view(k, image.shape[:2], size)

    # 2. to about the target's pixel size
    image = np.array(Image.fromarray(image).resize((res_w, res_h), Image.Resampling.LANCZOS))
    depth, valid = masked_nearest_resize(depth, valid, (res_h, res_w))
    distance = _norm3(lift_uv(uv_grid(res_h, res_w), depth, k))
    if segmentation is not None:
        segmentation = resize_nearest(segmentation, (res_h, res_w))

    # 3. through the homography, for each target pixel its position in the resized raw image
    homography = k @ np.linalg.inv(rot) @ np.linalg.inv(target_k)
    uv = uv_grid(tgt_h, tgt_w)
    pts = np.concatenate([uv, np.ones((tgt_h, tgt_w, 1), dtype=np.float32)], axis=-1) @ homography.T
    uv_raw = pts[:, :, :2] / (pts[:, :, 2:3] + 1e-12)
    pixel = (uv_raw * np.array((res_w, res_h), dtype=uv_raw.dtype) - 0.5).astype(np.float32)
    map_x, map_y = pixel[:, :, 0], pixel[:, :, 1]

    out_image = remap_linear_u8(image, map_x, map_y)
    out_distance = remap_nearest(distance, map_x, map_y)
    ray = lift_uv(uv, np.ones_like(uv[:, :, 0]), target_k)
    ray = (ray[:, :, 0] ** 2 + ray[:, :, 1] ** 2 + ray[:, :, 2] ** 2) ** 0.5
    out_depth = out_distance / (ray + 1e-12)
    out_mask = remap_nearest(valid.astype(np.uint8), map_x, map_y) > 0
    out_seg = remap_nearest(segmentation, map_x, map_y) if segmentation is not None else None

    # 4. drop the far tail (sky boxes, stray far points)
    if out_mask.any():  # (MoGe computes an all-NaN quantile here, which drops every pixel)
        cap = np.nanquantile(np.where(out_mask, out_depth, np.nan), 0.01) * drop_max_depth
        out_mask &= out_depth <= cap
    out_depth = np.nan_to_num(out_depth, nan=0.0)
    empty = not np.any(out_mask)
    if empty:  # MoGe keeps such a sample, every pixel valid at depth 1
        out_mask = np.ones_like(out_mask)
        out_depth = np.ones_like(out_depth)

    kept = None
    if out_seg is not None and labels is not None:
        kept = select_segments(out_seg, labels, max_segments, min_seg_area)
    return WarpedSample(out_image, out_depth.astype(np.float32, copy=False), out_mask, target_k,
                        out_seg, kept, empty)


def select_segments(segmentation: np.ndarray, labels: dict, max_segments: int = 100,
                    min_seg_area: int = 1000) -> dict:
    """MoGe's choice of segments for local-point metrics: drop :data:`IGNORED_SEGMENTS`, rank the
    rest by pixel count in ``segmentation`` (most first; equal counts keep their order), keep the
    first ``max_segments`` of those with at least ``min_seg_area`` pixels."""
    labels = {name: sid for name, sid in labels.items() if name not in IGNORED_SEGMENTS}
    ids, counts = np.unique(segmentation, return_counts=True)
    count = dict(zip(ids.tolist(), counts.tolist()))
    ranked = sorted(labels, key=lambda name: count.get(labels[name], 0), reverse=True)
    return {name: labels[name] for name in ranked[:max_segments] if count.get(labels[name], 0) >= min_seg_area}


__all__ = ["IGNORED_SEGMENTS", "WarpedSample", "lift_uv", "select_segments", "target_view", "uv_grid",
           "warp_sample"]
