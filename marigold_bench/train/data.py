"""Training batches: a seeded mixture of sources, flips and resize/crop, fully determined by (seed, k).

Micro-batch number ``k`` is a pure function of the seed and ``k``, as in the official mixed batch
sampler but without its hidden state:

* its source: Hypersim with weight 0.9 and Virtual KITTI with 0.1 by default, one source per
  micro-batch, drawn independently for every micro-batch;
* its samples: each source is read epoch by epoch, **without replacement** -- epoch ``e`` of a
  source is a seeded permutation of its indices cut into micro-batches (the remainder that does
  not fill one is dropped, as the official loader's ``drop_last``), and the ``c``-th micro-batch
  that picks the source takes piece ``c`` of that sequence; the next epoch is a new permutation;
* its crops and flips.

A resumed run therefore continues exactly the data order of an uninterrupted one, and data-loader
workers need no shared state. Process ``rank`` of ``world`` reads micro-batch
``(step * grad_accum + micro) * world + rank`` (:func:`micro_batch_index`).

Samples without any valid depth pixel (after the crop), and samples whose files cannot be read,
are skipped, replaced by a random draw of the same source (with replacement, from the
micro-batch's own generator, so that the epoch order of every other micro-batch is untouched) and
counted in the batch (``skipped``, ``unreadable``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from marigold_bench.errors import SampleError, TrainingDataError

SOURCES = ("hypersim", "vkitti", "synthetic")


def micro_batch_index(step: int, micro: int, grad_accum: int, rank: int = 0, world: int = 1) -> int:
    """Global number of the micro-batch read by process ``rank`` at (optimiser step, micro step)."""
    return (step * grad_accum + micro) * world + rank


def seeded_rng(seed: int, k: int, stream: int = 0) -> np.random.Generator:
    """The random generator of micro-batch ``k`` in ``stream`` (0: data, 1: VAE fit, ...)."""
    return np.random.default_rng([seed, stream, k])


#: sub-streams of a mixture's seed: the source of each micro-batch, the epoch permutations
SOURCE_STREAM, EPOCH_STREAM = 1000, 2000
#: micro-batches whose sources are drawn together (and counted once) when an index is first met
SOURCE_BLOCK = 4096


def torch_generator(seed: int, k: int, stream: int = 0) -> torch.Generator:
    """A CPU torch generator seeded from (seed, stream, k), for timesteps and noise."""
    state = np.random.SeedSequence([seed, stream, k]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# --- augmentation -----------------------------------------------------------------------------

def flip_horizontal(rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray):
    """Mirror image, depth and mask together (left-right)."""
    return rgb[:, ::-1].copy(), depth[:, ::-1].copy(), valid[:, ::-1].copy()


def resize_to_cover(rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray, size: tuple[int, int]):
    """Resize so that both sides are at least ``size`` (aspect kept): bilinear RGB, nearest depth/mask.

    Nearest-neighbour keeps depth values real (no blending across edges or with invalid zeros).
    """
    h, w = depth.shape
    scale = max(size[0] / h, size[1] / w)
    if scale == 1.0:
        return rgb, depth, valid
    new = (max(size[0], int(round(h * scale))), max(size[1], int(round(w * scale))))
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=scale < 1)
    rgb = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    dv = torch.from_numpy(np.stack([depth.astype(np.float32), valid.astype(np.float32)]))[None]
    dv = F.interpolate(dv, size=new, mode="nearest-exact")[0].numpy()
    return rgb, dv[0], dv[1] > 0.5


def random_crop(rgb, depth, valid, size: tuple[int, int], rng: np.random.Generator):
    h, w = depth.shape
    top = int(rng.integers(0, h - size[0] + 1))
    left = int(rng.integers(0, w - size[1] + 1))
    window = (slice(top, top + size[0]), slice(left, left + size[1]))
    return rgb[window], depth[window], valid[window]


def augment(item: dict, rng: np.random.Generator, resolution=None, flip_p: float = 0.5):
    """Resize/crop to ``resolution`` (when given), then flip with probability ``flip_p``."""
    rgb, depth, valid = item["rgb"], item["depth"], item["valid"]
    if resolution is not None:
        size = (int(resolution[0]), int(resolution[1]))
        rgb, depth, valid = resize_to_cover(rgb, depth, valid, size)
        rgb, depth, valid = random_crop(rgb, depth, valid, size, rng)
    if rng.random() < flip_p:
        rgb, depth, valid = flip_horizontal(rgb, depth, valid)
    return rgb, depth, valid


# --- the mixture ------------------------------------------------------------------------------

class TrainingMixture(torch.utils.data.Dataset):
    """Map-style dataset whose item ``k`` is micro-batch number ``k``.

    Args:
        sources: name -> dataset with items ``id/rgb/depth/valid`` (see :func:`build_sources`).
        weights: name -> sampling weight (normalised here).
        micro_batch: samples per micro-batch.
        seed: the run's seed.
        resolution: [H, W] to resize (cover) and crop to, or None for each source's own size.
        flip_p: probability of a horizontal flip.
        stream: independent random stream (0: UNet training, 1: the tiny VAE fit).
        max_redraws: redraws allowed per micro-batch before :class:`TrainingDataError`.

    Returns per item: ``rgb`` uint8 (B, 3, H, W), ``depth`` float32 (B, 1, H, W), ``valid`` bool
    (B, 1, H, W), ``ids``, ``source``, ``index`` (= k), ``epoch`` (of that source), ``skipped`` and
    ``unreadable`` counts.
    """

    def __init__(self, sources: dict, weights: dict, micro_batch: int, seed: int, resolution=None,
                 flip_p: float = 0.5, stream: int = 0, max_redraws: int = 100):
        names = [n for n in sources if float(weights.get(n, 0)) > 0]
        if not names:
            raise TrainingDataError("no training source has a positive weight")
        small = [f"{n} ({len(sources[n])})" for n in names if len(sources[n]) < micro_batch]
        if small:
            raise TrainingDataError(f"training source(s) {', '.join(small)} hold fewer samples than one "
                                    f"micro-batch of {micro_batch}")
        self.sources, self.names = sources, names
        p = np.array([float(weights[n]) for n in names])
        self.probs = p / p.sum()
        self.micro_batch, self.seed, self.stream = micro_batch, seed, stream
        self.resolution, self.flip_p, self.max_redraws = resolution, flip_p, max_redraws
        # counts[b][s]: micro-batches of blocks < b that drew source s (grown on demand)
        self._blocks: list[np.ndarray] = []
        self._counts = [np.zeros(len(names), np.int64)]
        self._permutation: dict = {}

    def __len__(self) -> int:  # indices are unbounded; this only satisfies Sized
        return 2**62

    def _block(self, b: int) -> np.ndarray:
        while len(self._blocks) <= b:
            n = len(self._blocks)
            rng = np.random.default_rng([self.seed, self.stream, SOURCE_STREAM, n])
            block = rng.choice(len(self.names), size=SOURCE_BLOCK, p=self.probs)
            self._blocks.append(block)
            self._counts.append(self._counts[-1] + np.bincount(block, minlength=len(self.names)))
        return self._blocks[b]

    def position(self, k: int) -> tuple[int, int]:
        """``(source index, c)``: micro-batch ``k`` reads source ``names[s]`` and is the ``c``-th
        micro-batch (counting from 0) to read it."""
        b, offset = divmod(int(k), SOURCE_BLOCK)
        block = self._block(b)
        s = int(block[offset])
        return s, int(self._counts[b][s] + np.count_nonzero(block[:offset] == s))

    def epoch_permutation(self, s: int, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` of source ``names[s]`` visits its samples."""
        key = (s, epoch)
        if key not in self._permutation:
            if len(self._permutation) >= 4:  # the sources' current epochs are all that is needed
                self._permutation.pop(next(iter(self._permutation)))
            rng = np.random.default_rng([self.seed, self.stream, EPOCH_STREAM, s, epoch])
            self._permutation[key] = rng.permutation(len(self.sources[self.names[s]]))
        return self._permutation[key]

    def sample_indices(self, k: int) -> tuple[str, np.ndarray, int]:
        """Source name, sample indices and epoch of micro-batch ``k`` (before any redraw)."""
        s, c = self.position(k)
        per_epoch = len(self.sources[self.names[s]]) // self.micro_batch  # drop_last
        epoch, piece = divmod(c, per_epoch)
        order = self.epoch_permutation(s, epoch)
        return self.names[s], order[piece * self.micro_batch:(piece + 1) * self.micro_batch], epoch

    #: what a redrawn sample lacked and what to check, for the error after too many redraws
    MISSING_TARGET = "valid depth"
    CHECK_HINT = "check the data and its valid range"

    def prepare(self, name: str, item: dict, rng) -> tuple:
        """``(rgb, target, mask)`` of one drawn sample, augmented (a subclass's task differs here)."""
        return augment(item, rng, self.resolution, self.flip_p)

    def pack(self, targets: list) -> dict:
        """The micro-batch's target tensors from the drawn samples' targets."""
        return {"depth": torch.from_numpy(np.stack(targets).astype(np.float32))[:, None]}

    def __getitem__(self, k: int) -> dict:
        rng = seeded_rng(self.seed, int(k), self.stream)
        name, planned, epoch = self.sample_indices(int(k))
        dataset = self.sources[name]
        rgbs, targets, masks, ids = [], [], [], []
        skipped = unreadable = 0
        queue = [int(i) for i in planned]
        while len(ids) < self.micro_batch:
            if skipped + unreadable > self.max_redraws:
                raise TrainingDataError(
                    f"micro-batch {k} from {name}: {skipped} samples without {self.MISSING_TARGET} and "
                    f"{unreadable} unreadable ones in a row; {self.CHECK_HINT}")
            index = queue.pop(0) if queue else int(rng.integers(len(dataset)))
            try:
                item = dataset[index]
            except SampleError as exc:
                warnings.warn(f"skipping unreadable training sample: {exc}", stacklevel=2)
                unreadable += 1
                continue
            rgb, target, mask = self.prepare(name, item, rng)
            if not mask.any():
                skipped += 1
                continue
            rgbs.append(rgb), targets.append(target), masks.append(mask), ids.append(item["id"])
        if len({t.shape for t in targets}) > 1:
            raise TrainingDataError(f"{name} samples differ in size ({sorted({t.shape for t in targets})}); "
                                    "set data.resolution to resize and crop them to one size")
        return {
            "rgb": torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2).contiguous(),
            **self.pack(targets),
            "valid": torch.from_numpy(np.stack(masks))[:, None],
            "ids": ids, "source": name, "index": int(k), "epoch": epoch, "skipped": skipped,
            "unreadable": unreadable,
        }


class MicroBatchOrder(torch.utils.data.Sampler):
    """The micro-batch numbers process ``rank`` reads from optimiser step ``start`` to ``stop``."""

    def __init__(self, start: int, stop: int, grad_accum: int, rank: int = 0, world: int = 1):
        self.start, self.stop, self.grad_accum, self.rank, self.world = start, stop, grad_accum, rank, world

    def __iter__(self):
        for step in range(self.start, self.stop):
            for micro in range(self.grad_accum):
                yield micro_batch_index(step, micro, self.grad_accum, self.rank, self.world)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.grad_accum


def make_loader(mixture: TrainingMixture, start: int, stop: int, grad_accum: int, rank: int = 0,
                world: int = 1, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """Loader yielding the micro-batches of steps ``start .. stop - 1`` in order."""
    return torch.utils.data.DataLoader(
        mixture, batch_size=None, sampler=MicroBatchOrder(start, stop, grad_accum, rank, world),
        num_workers=num_workers, persistent_workers=False,
        prefetch_factor=2 if num_workers else None)


def _open_hypersim(data_cfg):
    from marigold_bench.data import hypersim

    return hypersim.load(data_cfg.hypersim_root, data_cfg.hypersim_split)


def _open_vkitti(data_cfg):
    from marigold_bench.data import vkitti

    return vkitti.load(data_cfg.vkitti_root, data_cfg.vkitti_split)


def _open_synthetic(data_cfg):
    from marigold_bench.data.synthetic import SyntheticDataset

    return SyntheticDataset(data_cfg.synthetic_split)


#: the depth training sources: name -> how it is opened from a DataConfig (loaders imported
#: only when a source is used, so a synthetic run never touches the real-data readers)
OPENERS = {"hypersim": _open_hypersim, "vkitti": _open_vkitti, "synthetic": _open_synthetic}
assert tuple(OPENERS) == SOURCES


def build_sources(data_cfg) -> dict:
    """Open the sources named in ``data_cfg.sources`` (a :class:`~marigold_bench.train.config.DataConfig`).

    Missing data is reported with the expected layout before training starts.
    """
    sources = {}
    for name, weight in data_cfg.sources.items():
        if float(weight) <= 0:
            continue
        if name not in OPENERS:
            raise TrainingDataError(f"unknown training source {name!r}; known: {', '.join(SOURCES)}")
        sources[name] = OPENERS[name](data_cfg)
    return sources


__all__ = ["SOURCES", "TrainingDataError", "micro_batch_index", "seeded_rng", "torch_generator",
           "flip_horizontal", "resize_to_cover", "random_crop", "augment", "TrainingMixture",
           "MicroBatchOrder", "make_loader", "build_sources"]
