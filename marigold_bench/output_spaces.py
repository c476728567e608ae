"""What a depth model's numbers mean: the output-space vocabulary (MoGe's words).

Every predictor declares one of these; an evaluation protocol picks its alignment from it
(``marigold_bench.eval.protocols``). Kept free of heavy imports: commands that load no model
read it too.
"""

from __future__ import annotations

DEPTH_AFFINE = "depth_affine_invariant"          # depth up to scale and shift (Marigold, E2E-FT)
DISPARITY_AFFINE = "disparity_affine_invariant"  # inverse depth up to scale and shift (DPT, Depth Anything)
DEPTH_SCALE = "depth_scale_invariant"            # depth up to scale
DEPTH_METRIC = "depth_metric"                    # metres (ZoeDepth, GLPN, Depth Pro, metric Depth Anything)

OUTPUT_SPACES = (DEPTH_AFFINE, DISPARITY_AFFINE, DEPTH_SCALE, DEPTH_METRIC)

# Point maps (3xHxW camera-space points, OpenCV axes: x right, y down, z forward), MoGe's words.
# Kept out of OUTPUT_SPACES (the depth spaces every depth protocol accepts); a predictor may
# declare one (check_output_space) and the protocols that score point maps (moge) take them.
# POINT_OUTPUT_SPACES lists them, ALL_OUTPUT_SPACES both.
POINTS_METRIC = "points_metric"                     # metres, up to an xyz shift (MoGe-2 metric)
POINTS_SCALE = "points_scale_invariant"             # up to one scale (MoGe)
POINTS_AFFINE = "points_affine_invariant"           # up to one scale and an xyz shift

POINT_OUTPUT_SPACES = (POINTS_METRIC, POINTS_SCALE, POINTS_AFFINE)
ALL_OUTPUT_SPACES = OUTPUT_SPACES + POINT_OUTPUT_SPACES

# Surface normals (3xHxW unit vectors in the camera frame the predictor declares, see
# `marigold_bench.frames`): not a depth space, so neither in OUTPUT_SPACES nor aligned by any
# depth protocol; a normals predictor's ``output_space`` is this word.
NORMALS = "normals"


def check_output_space(space: str) -> str:
    """``space`` if it is known (a depth or a point-map space); otherwise a ValueError listing the
    known ones."""
    if space not in ALL_OUTPUT_SPACES:
        raise ValueError(f"unknown output space {space!r}; known: {', '.join(ALL_OUTPUT_SPACES)}")
    return space


def is_point_map(space: str) -> bool:
    """Whether predictions in ``space`` are point maps (one of :data:`POINT_OUTPUT_SPACES`);
    a ValueError for a word that is no output space at all."""
    if space not in ALL_OUTPUT_SPACES:
        raise ValueError(f"unknown output space {space!r}; known: {', '.join(ALL_OUTPUT_SPACES)}")
    return space in POINT_OUTPUT_SPACES


def is_normals(space: str) -> bool:
    """Whether predictions in ``space`` are surface normals (`NORMALS`)."""
    return space == NORMALS


def is_disparity(space: str) -> bool:
    """Whether predictions in ``space`` are inverse depth."""
    return check_output_space(space).startswith("disparity")
