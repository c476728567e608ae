"""DA-2K (Depth Anything V2): relative depth order on annotated point pairs.

Layout (Hugging Face dataset ``depth-anything/DA-2K``, extracted): a folder holding
``annotations.json`` and the images it names::

    da2k/annotations.json   {"images/indoor/0001.jpg": [{"point1": [row, col],
                                                         "point2": [row, col],
                                                         "closer_point": "point1"}, ...], ...}
    da2k/images/<scene type>/<name>.jpg

The ground truth is the pairs, not a depth map: an item carries ``pairs`` (int N x 4: row1, col1,
row2, col2), ``closer`` (bool N: True where point1 is the closer one) and ``scene`` (the folder
the image is in, which is how the release groups its 8 scene types; an image at the top level
is scene ``"all"``). Its ``depth`` is zeros and ``valid``/``mask`` mark the annotated points
(what is scored; there is no depth map to fit). Scoring is `marigold_bench.eval.da2k`, run by the
``da2k`` evaluation protocol, the only one the spec admits (:attr:`PairSpec.scored_by`).

The release's folder names were not readable here (only a written description of
``annotations.json``): the scene type is taken from the image's parent folder, as described.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass

import numpy as np

from marigold_bench.data.base import DepthDataset
from marigold_bench.data.listed import locate
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.data.split_dataset import read_rgb
from marigold_bench.errors import SampleError

ANNOTATIONS = "annotations.json"
CLOSER = ("point1", "point2")


def _point(image: str, index: int, pair: dict, key: str) -> tuple[int, int]:
    value = pair.get(key)
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() for v in value))
    if not ok:
        raise SampleError(f"DA-2K {image} pair {index}: {key} must be [row, col] in whole pixels, got {value!r}",
                          path=image)
    return int(value[0]), int(value[1])


def parse_annotations(data, where: str = ANNOTATIONS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``annotations.json`` content -> image path -> (pairs int Nx4, closer bool N).

    Raises:
        SampleError: not an object of lists of pairs, a point that is not ``[row, col]``, a
            ``closer_point`` other than ``point1``/``point2``; the message names the image and pair.
    """
    if not isinstance(data, dict):
        raise SampleError(f"{where}: expected an object image path -> list of pairs, got {type(data).__name__}",
                          path=where)
    out = {}
    for image, pairs in data.items():
        if not isinstance(pairs, list) or not pairs:
            raise SampleError(f"DA-2K {image}: expected a non-empty list of pairs in {where}", path=image)
        rows, closer = [], []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict):
                raise SampleError(f"DA-2K {image} pair {i}: expected an object, got {type(pair).__name__}", path=image)
            rows.append(_point(image, i, pair, "point1") + _point(image, i, pair, "point2"))
            if pair.get("closer_point") not in CLOSER:
                raise SampleError(f"DA-2K {image} pair {i}: closer_point must be 'point1' or 'point2', got "
                                  f"{pair.get('closer_point')!r}", path=image)
            closer.append(pair["closer_point"] == "point1")
        out[image] = (np.array(rows, dtype=np.int64).reshape(-1, 4), np.array(closer, dtype=bool))
    return out


def check_inside(image: str, pairs: np.ndarray, shape: tuple[int, int]) -> None:
    """Every point of ``pairs`` inside an image of ``shape`` (H, W).

    Raises:
        SampleError: the first point outside, naming the image, the pair and the image size.
    """
    h, w = shape[:2]
    for i, (r1, c1, r2, c2) in enumerate(pairs):
        for key, (r, c) in (("point1", (r1, c1)), ("point2", (r2, c2))):
            if not (0 <= r < h and 0 <= c < w):
                raise SampleError(f"DA-2K {image} pair {i}: {key} [row {r}, col {c}] is outside the "
                                  f"{w}x{h} image", path=image)


def scene_of(image: str) -> str:
    """The scene type of an image path: its parent folder's name (``"all"`` at the top level)."""
    parent = posixpath.basename(posixpath.dirname(image.replace("\\", "/")))
    return parent or "all"


class DA2KDataset(DepthDataset):
    """The images of ``annotations.json``, sorted by path, with their pairs."""

    def __init__(self, spec, source, annotations: dict, annotations_sha256: str | None = None):
        self.protocol, self.source = spec, source
        self.annotations_sha256 = annotations_sha256
        self.images = sorted(annotations)
        self.annotations = annotations
        self.ids = [posixpath.splitext(p)[0] for p in self.images]

    def load(self, index: int) -> dict:
        image = self.images[index]
        rgb = read_rgb(self.source, image)
        pairs, closer = self.annotations[image]
        check_inside(image, pairs, rgb.shape)
        points = np.zeros(rgb.shape[:2], dtype=bool)
        points[pairs[:, 0], pairs[:, 1]] = points[pairs[:, 2], pairs[:, 3]] = True
        return {"id": self.ids[index], "rgb": rgb, "depth": np.zeros(rgb.shape[:2], np.float32),
                "valid": points, "mask": points.copy(), "pairs": pairs, "closer": closer,
                "scene": scene_of(image), "image": image}

    def describe(self) -> dict:
        return {"dataset": self.protocol.name, "source": str(self.source.path), "source_type": self.source.kind,
                "annotations": ANNOTATIONS, "count": len(self.ids),
                "pairs": int(sum(len(c) for _, c in self.annotations.values())),
                # the annotations are DA-2K's split: their bytes are what the protocol hash pins
                "split_sha256": self.annotations_sha256}


def open_da2k(root, split, spec) -> DA2KDataset:
    """Open DA-2K under ``root`` (``<root>/da2k/`` or the folder itself); one split only."""
    source = locate(spec, root, ANNOTATIONS)
    raw = source.read(ANNOTATIONS)
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise SampleError(f"{source.where(ANNOTATIONS)}: not JSON ({err})", path=ANNOTATIONS) from None
    return DA2KDataset(spec, source, parse_annotations(data, source.where(ANNOTATIONS)),
                       hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True, kw_only=True)
class PairSpec(BenchmarkSpec):
    """A benchmark whose ground truth is ordered point pairs, not a depth map.

    Attributes:
        scored_by: the one evaluation protocol that scores it (pair order: ``da2k``); any
            other is refused when the scoring is resolved, so no dense-depth column is ever
            computed (or averaged) on it.
    """

    scored_by: str = "da2k"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "scored_by": self.scored_by}


SPEC = PairSpec(
    name="da2k", title="DA-2K", task="depth",
    folder="da2k",
    # no depth map: the range is never used (items carry no valid pixel)
    min_depth=0.0, max_depth=float("inf"),
    loader=open_da2k, layout_doc="docs/commands.md (DA-2K)",
)

__all__ = ["ANNOTATIONS", "DA2KDataset", "PairSpec", "SPEC", "check_inside", "open_da2k", "parse_annotations", "scene_of"]
