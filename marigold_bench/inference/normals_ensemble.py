"""Test-time ensembling of surface-normal maps: the ``closest`` and ``mean`` reductions.

Both Marigold pipelines (prs-eth's and diffusers') ensemble normals the same way: average the
members per pixel and make the average unit length; ``mean`` returns that, ``closest`` returns,
per pixel, the member whose cosine to it is largest (a real prediction, never a blend of two
surfaces). The uncertainty is the mean angle between the members and the unit mean, over pi
(0: all members agree; 1: they point opposite). The numerics here follow diffusers'
``MarigoldNormalsPipeline.ensemble_normals`` step for step (unit length with the norm clamped at
1e-6, cosines clamped to [-1, 1]) so the results agree to float round-off.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import InferenceSettingsError

#: the reductions, the first the default (both pipelines' default)
NORMALS_REDUCTIONS = ("closest", "mean")

#: presets of the depth ensembling accepted for normals: both pipelines ensemble normals by
#: ``closest`` unless told otherwise, so ``--ensembling diffusers`` (the flag's default) and
#: ``--ensembling official`` mean it here
NORMALS_PRESETS = {"diffusers": "closest", "official": "closest"}

#: the norm below which a vector is not scaled up further (as both pipelines)
EPS = 1e-6


def resolve_normals_ensembling(spec: str | dict | None = None) -> dict[str, Any]:
    """The ensembling settings of a normals predictor: ``{"reduction": "closest" | "mean"}``.

    Args:
        spec: ``"closest"``, ``"mean"``, a preset of `NORMALS_PRESETS`, a dict with
            ``reduction`` (and optionally ``preset``), or None (``"closest"``).

    Raises:
        InferenceSettingsError: any other value, listing the accepted ones.
    """
    if spec is None:
        return {"reduction": NORMALS_REDUCTIONS[0]}
    if isinstance(spec, dict):
        unknown = set(spec) - {"reduction", "preset"}
        if unknown:
            raise InferenceSettingsError(f"normals ensembling takes only a reduction, got {', '.join(sorted(unknown))}")
        spec = spec.get("reduction", spec.get("preset"))
    reduction = NORMALS_PRESETS.get(spec, spec)
    if reduction not in NORMALS_REDUCTIONS:
        offered = ", ".join(NORMALS_REDUCTIONS + tuple(NORMALS_PRESETS))
        raise InferenceSettingsError(f"--ensembling {spec!r} does not apply to surface normals; "
                                     f"choose one of {offered} (the presets mean closest)")
    return {"reduction": reduction}


def unit_length(normals: torch.Tensor) -> torch.Tensor:
    """``normals`` (... x 3 x H x W, channel axis -3) divided by their norm, clamped at `EPS`."""
    return normals / torch.linalg.vector_norm(normals, dim=-3, keepdim=True).clamp(min=EPS)


def ensemble_normals(members: torch.Tensor, reduction: str = "closest", output_uncertainty: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One normal map from ``members`` (M x 3 x H x W unit vectors).

    Args:
        members: the ensemble members of one image.
        reduction: ``"closest"`` (per pixel, the member nearest the unit mean) or ``"mean"``
            (the unit mean itself).
        output_uncertainty: also return the mean angle to the unit mean over pi.

    Returns:
        ``(normals 3 x H x W, uncertainty H x W or None)``.
    """
    if members.ndim != 4 or members.shape[1] != 3:
        raise ValueError(f"expected M x 3 x H x W members, got shape {tuple(members.shape)}")
    if reduction not in NORMALS_REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {', '.join(NORMALS_REDUCTIONS)}")
    mean = unit_length(members.mean(dim=0))                                   # 3 x H x W
    cosine = (members * mean).sum(dim=1).clamp(-1.0, 1.0)                     # M x H x W
    uncertainty = cosine.arccos().mean(dim=0) / math.pi if output_uncertainty else None
    if reduction == "mean":
        return mean, uncertainty
    closest = cosine.argmax(dim=0)                                            # H x W
    return members.gather(0, closest[None, None].expand(1, 3, -1, -1))[0], uncertainty


__all__ = ["NORMALS_REDUCTIONS", "NORMALS_PRESETS", "EPS", "resolve_normals_ensembling", "unit_length",
           "ensemble_normals"]
