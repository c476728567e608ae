"""Predictions made by any model, for ``marigold-bench evaluate``.

A source is a folder holding ``<id>.npy`` (float HxW, any affine-invariant depth; a point map
under ``--output-space points_*``: 3xHxW or HxWx3, OpenCV axes) or ``<id>.png``
(16-bit, read as integers -- scale does not matter for an affine fit), or an ``.h5`` file with a
dataset under the key ``<id>`` (our own ``predictions.h5`` included: its compact entries are
resized to ground-truth size as recorded). Nothing here imports torch.

Surface normals (``task="normals"``): ``.npy`` and ``.h5`` entries are the vectors themselves
(3xHxW or HxWx3); an ``.png`` is read as the usual normals colouring, an 8-bit RGB image with
each channel ``(n + 1) / 2 * 255`` (diffusers' ``visualize_normals``, ``predict``'s PNGs), decoded
as ``v / 255 * 2 - 1``. Such predictions are quantised (steps of 2/255 per component), which the
summary records (`describe`). A 16-bit RGB PNG is refused: Pillow reads it as 8 bits per channel,
so its extra precision would be dropped without a word.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

from marigold_bench.errors import BenchError, PredictionError
from marigold_bench.eval.resize import resize


class PredictionSource:
    """Looks up the prediction of a sample id in a folder or an ``.h5`` file."""

    def __init__(self, path: str | os.PathLike, task: str = "depth"):
        self.path = os.fspath(path)
        self.task = task
        self.quantised = 0  # normals read from 8-bit PNGs
        if not os.path.exists(self.path):
            raise BenchError(f"predictions not found: {self.path} (a folder of <id>.npy / <id>.png "
                             "files or an .h5 file keyed by sample id)")
        self._h5 = None
        if os.path.isfile(self.path):
            import h5py
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise BenchError(f"cannot read {self.path} as HDF5: {exc}") from None

    def describe(self) -> dict:
        """Where the predictions came from (``summary.json``'s settings); for normals read from
        8-bit PNGs, also how many and that they were quantised."""
        described = {"predictions": os.path.abspath(self.path), "format": "h5" if self._h5 else "folder"}
        if self.quantised:
            described["quantised"] = (f"{self.quantised} prediction(s) read from 8-bit PNG normals colouring "
                                      "(v / 255 * 2 - 1): each component quantised in steps of 2/255")
        return described

    def check_samples(self, dataset) -> None:
        """Refuse our own ``predictions.h5`` of another benchmark or split than ``dataset``: ids
        repeat across splits, so its entries would be scored against another set's ground truth.
        A folder, a foreign ``.h5`` or a cache written before 0.4 records nothing and passes.

        Raises:
            OtherSamplesError: naming both sample sets.
        """
        from marigold_bench.errors import OtherSamplesError
        from marigold_bench.eval.samples import describe, first_other, samples_of, stored_record

        if self._h5 is None:
            return
        wanted = samples_of(dataset)
        other = first_other([(self.path, stored_record(self._h5))], wanted)
        if other is not None:
            raise OtherSamplesError(f"{self.path} holds predictions of {describe(other[1])}, but this evaluation is "
                                    f"of {describe(wanted)}: give the predictions made for it")

    def has(self, sample_id: str) -> bool:
        """Whether a prediction for ``sample_id`` is there (readable or not)."""
        if self._h5 is not None:
            return self._entry(sample_id) is not None
        return any(os.path.isfile(os.path.join(self.path, sample_id + ext)) for ext in (".npy", ".png"))

    def where(self, sample_id: str) -> str:
        """Where the prediction of ``sample_id`` is looked for, for a message."""
        if self._h5 is not None:
            return f"a dataset named {sample_id!r} in {self.path}"
        return f"{os.path.join(self.path, sample_id)}.npy or .png"

    def _entry(self, sample_id: str):
        # the HDF5 dataset of a sample, or None; our own predictions.h5 may keep an id that is a
        # path prefix of another escaped (eval/cache.py)
        from marigold_bench.eval.cache import find_entry

        try:
            return find_entry(self._h5, sample_id)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise BenchError(f"{self.path} is damaged (its HDF5 metadata cannot be read: {exc}); it cannot "
                             "be scored: rerun the run that made it, or give other predictions") from None

    def get(self, sample_id: str) -> np.ndarray:
        """The raw prediction of ``sample_id``; PredictionError when it is missing or unreadable."""
        if self._h5 is not None:
            from marigold_bench.eval.cache import read_prediction

            node = self._entry(sample_id)
            if node is None:
                raise PredictionError(f"no prediction for {sample_id} in {self.path}")
            # our own predictions.h5 stores compact maps: read them back at ground-truth size
            return np.asarray(read_prediction(node), dtype=np.float32)
        for ext in (".npy", ".png"):
            file = os.path.join(self.path, sample_id + ext)
            if os.path.isfile(file):
                try:
                    if ext == ".npy":
                        return np.asarray(np.load(file), dtype=np.float32)
                    if self.task == "normals":
                        return self._normals_png(file)
                    with Image.open(file) as im:
                        return np.asarray(im).astype(np.float32)
                except PredictionError:
                    raise
                except Exception as exc:  # any decoder failure means a corrupt file
                    raise PredictionError(f"cannot read prediction {file}: {exc}") from None
        raise PredictionError(f"no prediction for {sample_id} under {self.path} "
                              f"(expected {sample_id}.npy or {sample_id}.png)")

    def _normals_png(self, file: str) -> np.ndarray:
        # the colouring's inverse, HxWx3 in [-1, 1]; anything but 8-bit RGB is refused, not guessed
        with open(file, "rb") as f:
            head = f.read(26)
        with Image.open(file) as im:
            if im.format != "PNG" or im.mode != "RGB":
                raise PredictionError(f"{file}: a normals PNG must be 8-bit RGB (the normals colouring), "
                                      f"not {im.format} mode {im.mode}; give .npy (3xHxW) instead")
            if head[12:16] == b"IHDR" and head[24] == 16:  # bit depth (Pillow would cut it to 8)
                raise PredictionError(f"{file}: 16-bit RGB PNG normals cannot be read without losing their "
                                      "precision here; give .npy (3xHxW) instead")
            values = np.asarray(im, dtype=np.float32)
        self.quantised += 1
        return values / np.float32(255) * np.float32(2) - np.float32(1)

    def close(self):
        if self._h5 is not None:
            self._h5.close()


def fit_to_shape(pred: np.ndarray, shape: tuple[int, int], sample_id: str, channels: int | None = None) -> np.ndarray:
    """Bring a prediction to the ground-truth size.

    A prediction of another size is resized (bilinear) with a warning when its aspect ratio
    matches the ground truth's within 1 %, and refused otherwise: a different aspect ratio
    means a crop or a mix-up, not a resolution choice.

    Args:
        pred: ``H x W`` (depth, disparity) or, with ``channels``, ``channels x H x W``
            (normals, point maps; ``H x W x channels`` is transposed).
        shape: the ground truth's ``(H, W)``.
        channels: None for a one-channel map; else the channels every pixel carries.
    """
    pred = np.asarray(pred, dtype=np.float32)
    if channels is None:
        pred = np.squeeze(pred)
        if pred.ndim == 3 and pred.shape[-1] in (3, 4):  # colour-mapped or RGB(A): not a depth map
            raise PredictionError(f"{sample_id}: prediction has shape {pred.shape}; expected one channel")
        if pred.ndim != 2:
            raise PredictionError(f"{sample_id}: prediction has shape {pred.shape}; expected HxW")
        size = pred.shape
    else:
        if pred.ndim == 3 and pred.shape[0] != channels and pred.shape[-1] == channels:
            pred = np.ascontiguousarray(pred.transpose(2, 0, 1))
        if pred.ndim != 3 or pred.shape[0] != channels:
            raise PredictionError(f"{sample_id}: prediction has shape {pred.shape}; expected {channels}xHxW "
                                  f"(or HxWx{channels})")
        size = pred.shape[1:]
    if tuple(size) == tuple(shape):
        return pred
    ratio_pred, ratio_gt = size[1] / size[0], shape[1] / shape[0]
    if abs(ratio_pred / ratio_gt - 1) > 0.01:
        raise PredictionError(f"{sample_id}: prediction {pred.shape} and ground truth {tuple(shape)} "
                              "differ in aspect ratio; refusing to stretch")
    warnings.warn(f"{sample_id}: resizing prediction {pred.shape} to ground truth {tuple(shape)}")
    return resize(pred, tuple(shape), "bilinear")   # torch's bilinear, align_corners=False
