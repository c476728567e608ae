"""A stand-in for the ``moge`` package (microsoft/MoGe is not on PyPI, so CI has none).

`install(monkeypatch)` puts a fake ``moge`` and ``moge.model`` into ``sys.modules``: MoGe's
``import_model_class_by_version(version)`` gives a model class whose ``from_pretrained(path)``
reads the ``model_config`` of a ``model.pt`` written by `write_checkpoint`, and whose ``infer``
has MoGe's signature and output (``points`` B x H x W x 3 in OpenCV axes, ``depth``, ``mask``,
``intrinsics`` normalised; ``inf`` where the mask is false when ``apply_mask``). Its scene is a
fronto-parallel plane ``plane_z`` metres away through a centred camera of normalised focal
``fx``, lifted here through the inverse intrinsics (MoGe's ``depth_map_to_point_map``: pixel
centres at ``(j + 0.5) / W``); its mask is false on the top quarter of the rows ("sky").
Every call's keyword arguments are kept in ``FakeMoGeModel.calls``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch


class FakeMoGeModel(torch.nn.Module):
    """MoGe's ``MoGeModel`` interface (v1 and v2 share it) over a plane."""

    version = "v2"
    calls: list = []

    def __init__(self, plane_z: float = 2.0, fx: float = 1.0, **config):
        super().__init__()
        self.plane_z, self.fx, self.config = float(plane_z), float(fx), config
        self.weight = torch.nn.Parameter(torch.zeros(()))   # so .to(device) and .dtype work

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, model_kwargs=None, **hf_kwargs):
        if not Path(pretrained_model_name_or_path).is_file():
            raise AssertionError(f"the fake downloads nothing: {pretrained_model_name_or_path}")
        checkpoint = torch.load(pretrained_model_name_or_path, map_location="cpu", weights_only=True)
        return cls(**checkpoint["model_config"])

    @torch.inference_mode()
    def infer(self, image, fov_x=None, resolution_level=9, num_tokens=None, apply_mask=True,
              force_projection=True, use_fp16=True):
        type(self).calls.append({"version": self.version, "shape": tuple(image.shape), "fov_x": fov_x,
                                 "resolution_level": resolution_level, "num_tokens": num_tokens,
                                 "apply_mask": apply_mask, "force_projection": force_projection,
                                 "use_fp16": use_fp16})
        squeeze = image.dim() == 3
        image = image[None] if squeeze else image
        b, _, h, w = image.shape
        fy = self.fx * w / h
        k = torch.tensor([[self.fx, 0, 0.5], [0, fy, 0.5], [0, 0, 1]], dtype=torch.float64)
        v, u = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        rays = torch.stack([u, v, torch.ones_like(u)], dim=-1).double() @ torch.linalg.inv(k).T
        points = (self.plane_z * rays).float()[None].repeat(b, 1, 1, 1)
        mask = torch.ones(b, h, w, dtype=torch.bool)
        mask[:, : h // 4] = False
        depth = points[..., 2].clone()
        if apply_mask:
            points = torch.where(mask[..., None], points, torch.inf)
            depth = torch.where(mask, depth, torch.inf)
        out = {"points": points, "depth": depth, "mask": mask, "intrinsics": k.float()[None].repeat(b, 1, 1)}
        return {key: value[0] for key, value in out.items()} if squeeze else out


class FakeMoGeModelV1(FakeMoGeModel):
    version = "v1"


def install(monkeypatch) -> type:
    """Put the fake ``moge`` package into ``sys.modules`` for one test; the shared class."""
    FakeMoGeModel.calls = []
    moge = types.ModuleType("moge")
    model = types.ModuleType("moge.model")
    model.import_model_class_by_version = lambda version: {"v1": FakeMoGeModelV1, "v2": FakeMoGeModel}[version]
    moge.model = model
    monkeypatch.setitem(sys.modules, "moge", moge)
    monkeypatch.setitem(sys.modules, "moge.model", model)
    return FakeMoGeModel


def write_checkpoint(folder: Path, version: str = "v2", metric: bool = True, plane_z: float = 2.0,
                     fx: float = 1.0) -> Path:
    """A MoGe-format folder: ``model.pt`` holding ``model_config`` (shaped as each version's
    constructor takes it: MoGe-2 ``encoder``/``neck`` dicts and a ``scale_head`` when metric,
    MoGe-1 an ``encoder`` name) and no weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if version == "v2":
        config = {"encoder": {"backbone": "dinov2_vits14"}, "neck": {"dim_in": 8}, "points_head": {"dim_in": 8},
                  "mask_head": {"dim_in": 8}, "num_tokens_range": [1200, 3600]}
        if metric:
            config["scale_head"] = {"dim_in": 8}
    else:
        config = {"encoder": "dinov2_vits14", "intermediate_layers": 4, "num_tokens_range": [1200, 2500]}
    config.update(plane_z=plane_z, fx=fx)
    torch.save({"model_config": config, "model": {}}, folder / "model.pt")
    return folder
