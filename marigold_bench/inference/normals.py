"""Batched Marigold surface-normals inference: the recipe of `diffusers.MarigoldNormalsPipeline`.

The same model calls as depth (`predictor.MarigoldPredictor`, which this adapter extends): the
image is encoded once, every member starts from noise seeded by (seed, sample id, member), DDIM
(or a checkpoint's LCM) denoises members of all images in shared UNet batches. What differs is
what a decoded latent means: its three channels are a normal vector, so each member is clipped
to [-1, 1] (a checkpoint trained with ``use_full_z_range: false`` has z mapped from [-1, 1] to
[0, 1]) and made unit length, and `merge` ensembles by ``closest`` or ``mean``
(`normals_ensemble`) instead of by depth alignment.

The two geometries (``--padding``) are those of depth, with their own output step for normals:

* ``replicate`` (diffusers): padded to the VAE factor; the merged map is resized back bilinear
  without antialiasing, then made unit length again;
* ``none`` (the official pipeline): no padding, antialiased resizes; the merged map is resized
  back with antialiasing and only clipped to [-1, 1], not renormalised.

Both renormalise or clip inside `merge`, so it always merges straight to ``out_shape``
(``settings["resample_output"]`` is descriptive, never one of the cache's plain resize modes).
Normals are in the OpenGL camera frame (x right, y up, z towards the viewer), declared as
``frame``. With fp32 weights and the same starting latents the result equals the pipeline's to
float round-off (tests check 1e-4).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..frames import OPENGL
from ..output_spaces import NORMALS
from .interface import three_channel_members
from .normals_ensemble import ensemble_normals, resolve_normals_ensembling, unit_length
from .predictor import MarigoldPredictor


class MarigoldNormalsPredictor(MarigoldPredictor):
    """Runs a Marigold surface-normals checkpoint on batches of images and ensembles the members.

    Built like `MarigoldPredictor` (`from_pretrained`, `from_pipeline` with a
    `diffusers.MarigoldNormalsPipeline`); ``ensembling`` is ``"closest"`` (default) or ``"mean"``.

    Example:
        ```py
        >>> predictor = MarigoldNormalsPredictor.from_pretrained("prs-eth/marigold-normals-v1-1", ensemble=10)
        >>> (members,) = predictor.predict([("img0", rgb, list(range(10)))])   # 10 x 3 x h x w
        >>> normals, uncertainty = predictor.merge(members, rgb.shape[:2])     # 3 x H x W, H x W
        ```
    """

    #: what it predicts, and in which camera axes (the Predictor interface)
    task = "normals"
    frame = OPENGL
    default_prediction_type = "normals"
    member_channels = 3

    def __init__(self, **kwargs):
        kwargs.setdefault("ensembling", None)
        super().__init__(**kwargs)
        #: whether z spans [-1, 1] (True) or was trained on [0, 1] (towards the viewer only)
        self.use_full_z_range = self.pipeline_config.get("use_full_z_range")
        self.use_full_z_range = True if self.use_full_z_range is None else bool(self.use_full_z_range)

    @classmethod
    def from_pretrained(cls, model: str, *, ensembling: str | dict | None = None, **settings
                        ) -> "MarigoldNormalsPredictor":
        """Load a diffusers-format Marigold normals checkpoint; arguments as
        `MarigoldPredictor.from_pretrained` except ``ensembling`` (``"closest"`` or ``"mean"``)."""
        return super().from_pretrained(model, ensembling=ensembling, **settings)

    @staticmethod
    def resolve_ensembling(spec) -> dict:
        """``{"reduction": "closest" | "mean"}`` (`resolve_normals_ensembling`)."""
        return resolve_normals_ensembling(spec)

    @staticmethod
    def _output_space(prediction_type: str) -> str:
        if prediction_type != "normals":
            raise CheckpointError(f"the checkpoint declares prediction_type={prediction_type!r}; a normals "
                                  "predictor needs a normals checkpoint")
        return NORMALS

    @property
    def settings(self) -> dict[str, Any]:
        """Every resolved inference setting (JSON-serialisable), as a run records it."""
        settings = super().settings
        settings.update(family="marigold-normals", task=self.task, frame=self.frame,
                        use_full_z_range=self.use_full_z_range,
                        # not a plain resize mode: the geometry renormalises or clips after it,
                        # so the cache asks `merge` for the output size
                        resample_output=self.geometry.resample_output + (
                            "-renormalised" if self.geometry.renormalises_normals else "-clipped"))
        return settings

    def _decode(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B x 3 x H x W unit normals, and which of the B are finite (checked before clipping)."""
        decoded = self._decode_raw(latent)
        finite = torch.isfinite(decoded).flatten(1).all(dim=1)
        normals = decoded.clip(-1.0, 1.0)
        if not self.use_full_z_range:
            normals = torch.cat([normals[:, :2], normals[:, 2:] * 0.5 + 0.5], dim=1)
        return unit_length(normals), finite

    def merge(self, members: np.ndarray, out_shape: tuple[int, int] | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Ensemble the members of one image and bring the result to ``out_shape``.

        Args:
            members: ``M x 3 x h x w`` unit normals from `predict` (``3 x h x w``: one member).
            out_shape: ``(H, W)`` of the result; `None` keeps the members' size (the geometry's
                finishing step, renormalising or clipping, is applied either way).

        Returns:
            ``(normals, uncertainty)``: float32 ``3 x H x W`` and, for M > 1, ``H x W`` (mean angle
            to the unit mean over pi, resized as the normals), else `None`.
        """
        members = three_channel_members(members, "normals")
        stack = torch.from_numpy(members)
        if self.device.type == "cuda":   # as depth: the ensembling and resize run there
            stack = stack.to(self.device)
        if stack.shape[0] > 1:
            normals, uncertainty = ensemble_normals(stack, self.ensembling["reduction"], output_uncertainty=True)
        else:
            normals, uncertainty = stack[0], None
        size = tuple(int(s) for s in (out_shape if out_shape is not None else members.shape[-2:]))
        normals = self.geometry.resize(normals[None], size)[0]
        normals = unit_length(normals) if self.geometry.renormalises_normals else normals.clip(-1.0, 1.0)
        if uncertainty is not None:
            uncertainty = self.geometry.resize(uncertainty[None, None], size)[0, 0].cpu().numpy()
        return normals.cpu().numpy(), uncertainty

    def __repr__(self) -> str:
        s = self.settings
        return (f"MarigoldNormalsPredictor(model={s['model']!r}, steps={s['steps']}, N={s['ensemble']}, "
                f"res={s['processing_res']}, {s['ensembling']['reduction']}, padding={s['padding']}, "
                f"{s['precision']} on {s['device']})")


__all__ = ["MarigoldNormalsPredictor"]
