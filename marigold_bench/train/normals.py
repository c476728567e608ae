"""The normals task of the trainer: data, objective, validation and export (``task: normals``).

Marigold's normals recipe (prs-eth/Marigold ``config/train_marigold_normals.yaml``; ours: ``configs/marigold-sd2-normals.yaml``) is the depth recipe
with another target: the three channels of the ground-truth normal map, already in [-1, 1], are
encoded by the frozen VAE exactly as the image is (no normalisation), and the UNet learns the
v-target of that latent with a plain MSE over every latent element (the official config sets no
loss mask). The trainer (:mod:`marigold_bench.train.trainer`) calls the pieces here where the
task differs; everything else -- model surgery, schedule, noise, accumulation, checkpoints and
resume -- is shared with depth.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from marigold_bench.errors import TrainingDataError
from marigold_bench.eval.normals import angular_errors
from marigold_bench.train import targets
from marigold_bench.train.data import TrainingMixture
from marigold_bench.train.normals_augment import NormalsAugmentation, augment_normals

#: training sources of the normals task
SOURCES = ("hypersim", "interiorverse", "sintel", "synthetic")
#: the official mixture (``dataset_normals/dataset_train.yaml``: prob_ls 0.5 / 0.49 / 0.01)
OFFICIAL_SOURCES = {"hypersim": 0.5, "interiorverse": 0.49, "sintel": 0.01}
METRIC_COLUMNS = ["step", "loss", "lr", "samples", "samples_per_s", "skipped", "unreadable",
                  "val_mean_angular_error", "val_median_angular_error", "elapsed_s"]


# --- data --------------------------------------------------------------------------------------

def build_normals_sources(data_cfg) -> tuple[dict, dict]:
    """``(sources, sizes)``: name -> dataset of normals items, name -> [H, W] it is trained at
    (None: its own size). Missing data is a one-line error naming the expected layout."""
    from marigold_bench.data import normals_training

    sources, sizes = {}, {}
    for name, weight in data_cfg.sources.items():
        if float(weight) <= 0:
            continue
        if name in normals_training.NAMES:   # the official preprocessed layouts
            root = getattr(data_cfg, f"{name}_root")
            split = getattr(data_cfg, f"{name}_normals_split")
            sources[name] = normals_training.load(name, root, split)
            sizes[name] = normals_training.TRAIN_SIZE[name]
        elif name in SYNTHETIC_SOURCES:
            sources[name], sizes[name] = SYNTHETIC_SOURCES[name](data_cfg), None
        else:
            raise TrainingDataError(f"unknown normals training source {name!r}; known: {', '.join(SOURCES)}")
    return sources, sizes


def _open_synthetic_normals(data_cfg):
    from marigold_bench.data.synthetic import NORMALS_SPEC, SyntheticNormalsDataset

    return SyntheticNormalsDataset(data_cfg.synthetic_split, NORMALS_SPEC)


#: sources generated on the fly (trained at their own size), by name
SYNTHETIC_SOURCES = {"synthetic": _open_synthetic_normals}


def resize_normals_sample(rgb: np.ndarray, normals: np.ndarray, mask: np.ndarray, size) -> tuple:
    """Bilinear resize of image and normals to ``size`` (antialiased when shrinking), nearest for
    the mask. The vectors are *not* renormalised, as in the official loader's ``Resize``."""
    h, w = rgb.shape[:2]
    size = (int(size[0]), int(size[1]))
    if (h, w) == size:
        return rgb, normals, mask
    shrink = size[0] < h or size[1] < w
    x = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)[None].float()
    rgb = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    rgb = rgb[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    n = torch.from_numpy(np.array(normals, dtype=np.float32, copy=True)).permute(2, 0, 1)[None]
    normals = F.interpolate(n, size=size, mode="bilinear", align_corners=False, antialias=shrink)[0].permute(1, 2, 0).numpy()
    m = torch.from_numpy(np.array(mask, dtype=np.float32, copy=True))[None, None]
    mask = F.interpolate(m, size=size, mode="nearest-exact")[0, 0].numpy() > 0.5
    return rgb, normals, mask


def cover_crop(rgb, normals, mask, size, rng: np.random.Generator):
    """Resize to cover ``size`` (aspect kept), then a random ``size`` window (the tiny recipe's
    ``data.resolution``; the official recipe trains every source at its own size)."""
    h, w = rgb.shape[:2]
    scale = max(size[0] / h, size[1] / w)
    if scale != 1.0:
        new = (max(size[0], int(round(h * scale))), max(size[1], int(round(w * scale))))
        rgb, normals, mask = resize_normals_sample(rgb, normals, mask, new)
        h, w = new
    top = int(rng.integers(0, h - size[0] + 1))
    left = int(rng.integers(0, w - size[1] + 1))
    window = (slice(top, top + size[0]), slice(left, left + size[1]))
    return rgb[window], normals[window], mask[window]


class NormalsMixture(TrainingMixture):
    """:class:`~marigold_bench.train.data.TrainingMixture` (same seeded source draws and epoch
    order) whose micro-batches hold normals.

    Per sample: the augmentations of :mod:`~marigold_bench.train.normals_augment`, then the
    source's training size (``sizes``), then ``resolution`` (cover + random crop) when given.
    Items: ``rgb`` uint8 (B, 3, H, W), ``normals`` float32 (B, 3, H, W), ``valid`` bool
    (B, 1, H, W), ``ids``, ``source``, ``index``, ``epoch``, ``skipped``, ``unreadable``.
    """

    def __init__(self, sources: dict, weights: dict, micro_batch: int, seed: int, resolution=None,
                 augmentation: NormalsAugmentation | None = None, sizes: dict | None = None,
                 stream: int = 0, max_redraws: int = 100):
        augmentation = augmentation or NormalsAugmentation()
        super().__init__(sources, weights, micro_batch, seed, resolution, augmentation.flip_p, stream, max_redraws)
        self.augmentation, self.sizes = augmentation, sizes or {}

    MISSING_TARGET = "ground-truth normals"
    CHECK_HINT = "check the data"

    def prepare(self, name: str, item: dict, rng) -> tuple:
        rgb, normals, mask = augment_normals(item["rgb"], item["normals"], item["mask"], rng, self.augmentation)
        if self.sizes.get(name) is not None:
            rgb, normals, mask = resize_normals_sample(rgb, normals, mask, self.sizes[name])
        if self.resolution is not None:
            rgb, normals, mask = cover_crop(rgb, normals, mask, self.resolution, rng)
        return rgb, normals, mask

    def pack(self, targets: list) -> dict:
        return {"normals": torch.from_numpy(np.stack(targets).astype(np.float32)).permute(0, 3, 1, 2).contiguous()}


def vae_target(batch: dict) -> torch.Tensor:
    """What the tiny VAE learns to reconstruct besides the image: the normal map itself."""
    return batch["normals"].to(torch.float32)


# --- objective ---------------------------------------------------------------------------------

def normals_loss(unet, vae, noise_scheduler, empty_embedding, batch: dict, generator: torch.Generator,
                 noise_kind: str = "annealed", noise_strength: float = 0.9, autocast=nullcontext) -> torch.Tensor:
    """The normals objective on one micro-batch.

    Image (to [-1, 1]) and normals (as they are, [-1, 1]) are encoded by the frozen VAE (posterior
    mean x scaling factor); the normals latent is noised at uniform timesteps with ``noise_kind``
    noise, the UNet predicts v from [image latent, noisy normals latent] and the empty prompt,
    and the loss is the MSE over all latent elements (no mask, as the official config).
    """
    device = empty_embedding.device
    with autocast():
        rgb_latent = targets.encode(vae, targets.rgb_to_unit_range(batch["rgb"]).to(device)).float()
        normals_latent = targets.encode(vae, batch["normals"].to(device=device, dtype=torch.float32)).float()

    pred, target = targets.v_prediction_step(unet, noise_scheduler, rgb_latent, normals_latent, empty_embedding,
                                             generator, noise_kind, noise_strength, autocast)
    return F.mse_loss(pred.float(), target.float(), reduction="mean")


# --- metrics and validation --------------------------------------------------------------------

def image_scores(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Mean / median angular error and the share below 11.25 and 30 degrees of one image (errors
    as the evaluation computes them, `marigold_bench.eval.normals.angular_errors`, on the pixels
    with a ground-truth normal and inside ``mask``)."""
    err = angular_errors(pred, gt, mask)
    return {"mean_angular_error": float(err.mean()), "median_angular_error": float(np.median(err)),
            "a11_25": float((err < 11.25).mean() * 100), "a30": float((err < 30).mean() * 100)}


def average_scores(per_image: list[dict]) -> dict:
    """Per-image scores averaged over images (the official in-training validation)."""
    return {key: float(np.mean([s[key] for s in per_image])) for key in per_image[0]} | {"n": len(per_image)}


def build_normals_pipeline(unet, vae, text_encoder, tokenizer, scheduler, default_denoising_steps: int = 4,
                           default_processing_resolution: int = 768):
    """An in-memory diffusers ``MarigoldNormalsPipeline`` (``use_full_z_range=True``: the target's z
    spans [-1, 1], as the recipe encodes it and the official checkpoints declare)."""
    from diffusers import MarigoldNormalsPipeline

    return MarigoldNormalsPipeline(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                                   tokenizer=tokenizer, prediction_type="normals", use_full_z_range=True,
                                   default_denoising_steps=default_denoising_steps,
                                   default_processing_resolution=default_processing_resolution)


def predict_normals(pipe, rgb: np.ndarray, steps: int, ensemble: int, seed: int) -> np.ndarray:
    """H x W x 3 normals of one uint8 image at its own resolution, generator seeded per image."""
    from PIL import Image

    generator = torch.Generator(device=pipe.device).manual_seed(seed)
    out = pipe(Image.fromarray(rgb), num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=0,
               generator=generator, output_type="np", batch_size=1)
    return np.asarray(out.prediction[0], dtype=np.float32)


@torch.no_grad()
def score_pipeline(pipe, dataset, steps: int = 1, ensemble: int = 1, seed: int = 0) -> dict:
    """Average per-image scores of ``pipe`` on a normals dataset (items with rgb/normals/mask)."""
    per_image = []
    for i in range(len(dataset)):
        item = dataset[i]
        pred = predict_normals(pipe, item["rgb"], steps, ensemble, seed)
        per_image.append(image_scores(pred, item["normals"], item["mask"]))
    return average_scores(per_image)


def score_constant(dataset, vector=(0.0, 0.0, 1.0)) -> dict:
    """Scores of one vector everywhere (default: facing the camera), an image-blind baseline."""
    per_image = []
    for i in range(len(dataset)):
        item = dataset[i]
        pred = np.broadcast_to(np.asarray(vector, np.float32), item["normals"].shape)
        per_image.append(image_scores(pred, item["normals"], item["mask"]))
    return average_scores(per_image)


def normals_validation_sets(val_cfg) -> list[tuple[str, object]]:
    """``[(label, dataset), ...]`` for normals: the config's sets (a training set's list, e.g.
    ``{dataset: hypersim, split: val_100}``, or a normals benchmark) where present, the synthetic
    normals ``split`` otherwise. Absent sets are skipped with a ValidationSetWarning."""
    from marigold_bench.data import load_dataset, normals_training
    from marigold_bench.data.synthetic import NORMALS_SPEC, SyntheticNormalsDataset
    from marigold_bench.train.validation import present_sets

    def open_set(entry):
        if entry["dataset"] in normals_training.NAMES:   # a training set's own split list
            return normals_training.load(entry["dataset"], val_cfg.data_root, entry.get("split"))
        return load_dataset(entry["dataset"], val_cfg.data_root, entry.get("split"), task="normals")

    return present_sets(val_cfg, open_set, (f"synthetic-normals-{val_cfg.split}", f"synthetic normals {val_cfg.split}",
                                            lambda: SyntheticNormalsDataset(val_cfg.split, NORMALS_SPEC)))


def validation_pipeline(unet, vae, text_encoder, tokenizer, scheduler):
    """A pipeline over copies of the modules being trained (inference must not touch them)."""
    pipe = build_normals_pipeline(copy.deepcopy(unet).eval(), copy.deepcopy(vae).eval(), text_encoder,
                                  tokenizer, scheduler, 1, 0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- export ------------------------------------------------------------------------------------

def export_normals_pipeline(out_dir, unet, vae, text_encoder, tokenizer, scheduler,
                            default_denoising_steps: int = 4, default_processing_resolution: int = 768,
                            dtype: str = "fp32"):
    """Write a diffusers ``MarigoldNormalsPipeline`` folder (safetensors; ``model_index.json`` with
    ``prediction_type: "normals"`` and ``use_full_z_range: true``)."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to = {"device": "cpu", **({"dtype": torch.float16} if dtype == "fp16" else {})}
    unet, vae, text_encoder = (copy.deepcopy(m).to(**to) for m in (unet, vae, text_encoder))
    pipe = build_normals_pipeline(unet, vae, text_encoder, tokenizer, scheduler, default_denoising_steps,
                                  default_processing_resolution)
    pipe.save_pretrained(str(out), safe_serialization=True)
    return out


def score_export(export_dir, cfg) -> dict:
    """Scores of the exported folder, loaded back with ``MarigoldNormalsPipeline.from_pretrained``,
    and of the camera-facing constant, on the synthetic normals splits of ``export.card_splits``."""
    from diffusers import MarigoldNormalsPipeline

    from marigold_bench.data.synthetic import NORMALS_SPEC, SyntheticNormalsDataset

    pipe = MarigoldNormalsPipeline.from_pretrained(str(export_dir), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    steps = sorted({cfg.export.default_denoising_steps, 1}, reverse=True)
    scores = {}
    for split in cfg.export.card_splits:
        dataset = SyntheticNormalsDataset(split, NORMALS_SPEC)
        scores[split] = {f"model ({n} step{'s' if n > 1 else ''}, N=1)": score_pipeline(pipe, dataset, n, 1, 0)
                         for n in steps}
        scores[split]["constant (0, 0, 1)"] = score_constant(dataset)
    return scores


def card_lines(cfg, scores: dict, selected_step, selection_set: str) -> list[str]:
    """The normals-specific lines of the model card: what it predicts and its scores."""
    lines = ["", "## Task",
             "Surface normals (diffusers `MarigoldNormalsPipeline`, `prediction_type: normals`, "
             "`use_full_z_range: true`), camera frame x right, y up, z towards the viewer. Objective: MSE "
             "on the v-target of the normals latent (the normal map in [-1, 1] encoded by the VAE as the image "
             f"is), no loss mask. Exported weights: step {selected_step} ({cfg.export.select} by mean angular "
             f"error on {selection_set}).",
             f"Augmentations: flips p={cfg.data.flip_p} (x negated), colour jitter p={cfg.normals_augment.color_jitter_p}, "
             f"Gaussian / motion blur p={cfg.normals_augment.gaussian_blur_p} / {cfg.normals_augment.motion_blur_p} "
             "(Hypersim-size frames only: never on the synthetic scenes)."]
    if scores:
        lines += ["", "## Scores (synthetic normals, angular error in degrees, per image then averaged)", "",
                  "| split | predictor | n | mean ↓ | median ↓ | %<11.25 ↑ | %<30 ↑ |", "|---|---|---|---|---|---|---|"]
        for split, rows in scores.items():
            for name, s in rows.items():
                lines.append(f"| {split} | {name} | {s['n']} | {s['mean_angular_error']:.2f} | "
                             f"{s['median_angular_error']:.2f} | {s['a11_25']:.1f} | {s['a30']:.1f} |")
    return lines


__all__ = ["METRIC_COLUMNS", "NormalsMixture", "OFFICIAL_SOURCES", "SOURCES", "angular_errors", "average_scores",
           "build_normals_pipeline", "build_normals_sources", "card_lines", "cover_crop", "export_normals_pipeline",
           "image_scores", "normals_loss", "normals_validation_sets", "predict_normals", "resize_normals_sample",
           "score_constant", "score_export", "score_pipeline", "vae_target", "validation_pipeline"]
