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


def check_output_space(space: str) -> str:
    """``space`` if it is known; otherwise a ValueError listing the known ones."""
    if space not in OUTPUT_SPACES:
        raise ValueError(f"unknown output space {space!r}; known: {', '.join(OUTPUT_SPACES)}")
    return space


def is_disparity(space: str) -> bool:
    """Whether predictions in ``space`` are inverse depth."""
    return check_output_space(space).startswith("disparity")
