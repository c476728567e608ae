"""Camera frames of surface normals: the vocabulary, and the one conversion between them.

A normal map says which way each surface faces as a vector in the camera's axes, and two axis
conventions are in use:

* ``"opengl"``: x right, y up, z towards the viewer. Marigold, diffusers and Hypersim's
  ``normal_cam`` use it, and so do the official normals benchmarks; a wall facing the camera is
  (0, 0, 1).
* ``"opencv"``: x right, y down, z forward (into the scene), as MoGe and most OpenCV-based code;
  the same wall is (0, 0, -1).

The two differ by a half-turn about the x axis, so converting negates y and z (either way).
Angles between vectors are the same in both frames, so scores never depend on the frame once
prediction and ground truth share one; the danger is mixing them, which is why every normals
benchmark and predictor declares its frame and code converts explicitly with
:func:`convert_normals`. Kept free of heavy imports (bottom layer).

>>> convert_normals([0.0, 1.0, 1.0], "opencv", "opengl").tolist()
[0.0, -1.0, -1.0]
"""

from __future__ import annotations

import numpy as np

from marigold_bench.errors import FrameError

OPENGL = "opengl"  # x right, y up, z towards the viewer
OPENCV = "opencv"  # x right, y down, z forward

FRAMES = (OPENGL, OPENCV)

#: per-axis signs taking a vector from one frame to the other (the same both ways)
_FLIP = {(OPENGL, OPENCV): (1.0, -1.0, -1.0), (OPENCV, OPENGL): (1.0, -1.0, -1.0)}


def check_frame(frame: str) -> str:
    """``frame`` if it is one of :data:`FRAMES`.

    Raises:
        FrameError: an unknown frame; the message lists the known ones.
    """
    if frame not in FRAMES:
        raise FrameError(f"unknown camera frame {frame!r} for normals; known: {', '.join(FRAMES)} "
                         "(opengl: x right, y up, z towards the viewer; opencv: x right, y down, z forward)")
    return frame


def convert_normals(normals, from_frame: str, to_frame: str) -> np.ndarray:
    """Normals given in ``from_frame`` expressed in ``to_frame``.

    Args:
        normals: array-like whose last axis holds the (x, y, z) components (H x W x 3, N x 3 or 3).
            A channel-first 3 x H x W map must be moved to channel-last first: the last axis is
            the one converted, so a wrong layout is refused rather than silently mixed.
        from_frame / to_frame: names of :data:`FRAMES`.

    Returns:
        A new array of the same shape and floating dtype (the input when the frames are equal is
        returned as a copy too, so callers may write to it). Zero vectors (invalid pixels) stay zero.

    Raises:
        FrameError: an unknown frame, or a last axis that is not 3 long.
    """
    check_frame(from_frame)
    check_frame(to_frame)
    array = np.array(normals, copy=True)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    if array.ndim == 0 or array.shape[-1] != 3:
        raise FrameError(f"normals need 3 components on their last axis, got shape {array.shape}")
    if from_frame != to_frame:
        array *= np.asarray(_FLIP[(from_frame, to_frame)], dtype=array.dtype)
    return array


__all__ = ["FRAMES", "OPENCV", "OPENGL", "check_frame", "convert_normals"]
