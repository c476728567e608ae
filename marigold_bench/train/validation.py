"""In-training validation: the model as it trains, scored exactly as ``marigold-bench run`` scores it.

Copies of the training modules are wrapped in the suite's
:class:`~marigold_bench.inference.predictor.MarigoldPredictor` (the same inference, seeding and
ensembling as the ``run`` command) and scored by
:func:`marigold_bench.eval.evaluator.run_predictor` -- Marigold's in-training validation:
1 denoising step, ensemble of 1, native resolution, least-squares fit, AbsRel as the selection
metric.

Which sets (:func:`validation_sets`): the benchmark sets the config lists, read through the
suite's own loaders, split resolution and data roots -- for the paper's recipe the NYUv2 train
split (795 images, ``nyu_depth/labeled/filename_list_train.txt``) and KITTI's 800 validation
frames from the Eigen train split (``kitti_depth/eigen_val_from_train_800.txt``), each under its
benchmark's protocol. As in the official trainer the first set is the "main" one whose AbsRel
selects the checkpoint. Sets that are not on this machine are skipped with a warning; with none
present, the synthetic validation split stands in.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

from marigold_bench.errors import DataRootError, SplitNotFoundError


class ValidationSetWarning(UserWarning):
    """A configured validation set is not present on this machine and is skipped."""


def set_label(entry: dict) -> str:
    """A short, file-name-safe name of a validation set entry, e.g. ``nyu-train``."""
    split = entry.get("split")
    if split is None:
        name = "test"
    elif os.sep in str(split) or "/" in str(split) or str(split).endswith(".txt"):
        name = Path(str(split)).stem
    else:
        name = str(split)
    return f"{entry['dataset']}-{name}"


def validation_sets(val_cfg) -> list[tuple[str, object]]:
    """``[(label, dataset), ...]`` to validate on, the selecting (main) set first.

    ``val_cfg`` is a :class:`~marigold_bench.train.config.ValidationConfig`. Each entry of
    ``val_cfg.sets`` is opened with :func:`marigold_bench.data.load_dataset` under
    ``val_cfg.data_root`` (or ``$MARIGOLD_DATA``); a missing data root, archive or split file
    skips the entry with a :class:`ValidationSetWarning` that says why. With no entry left, the
    synthetic benchmark's ``val_cfg.split`` is used.
    """
    from marigold_bench.data import load_dataset
    from marigold_bench.data.synthetic import SyntheticDataset

    return present_sets(
        val_cfg, lambda entry: load_dataset(entry["dataset"], val_cfg.data_root, entry.get("split")),
        (f"synthetic-{val_cfg.split}", f"synthetic {val_cfg.split}", lambda: SyntheticDataset(val_cfg.split)))


def present_sets(val_cfg, open_set, fallback) -> list[tuple[str, object]]:
    """The configured validation sets that are present, each cut to its ``max_samples``.

    ``open_set(entry)`` opens one entry of ``val_cfg.sets`` (a missing data root or split file
    skips it with a :class:`ValidationSetWarning` saying why); ``fallback`` is ``(label, words,
    opener)`` of the set validated on when none is left (the task's synthetic split; ``words``
    name it in the warning).
    """
    found = []
    for entry in val_cfg.sets:
        label = set_label(entry)
        try:
            dataset = open_set(entry)
        except (DataRootError, SplitNotFoundError) as err:
            reason = str(err).splitlines()[0]
            warnings.warn(f"validation set {label} is not present and is skipped: {reason}",
                          ValidationSetWarning, stacklevel=3)
            continue
        found.append((label, dataset.subset(entry.get("max_samples", val_cfg.max_samples))))
    if not found:
        label, words, open_fallback = fallback
        if val_cfg.sets:
            warnings.warn(f"no configured validation set is present; validating on {words} instead",
                          ValidationSetWarning, stacklevel=3)
        found.append((label, open_fallback().subset(val_cfg.max_samples)))
    return found


def training_predictor(unet, vae, text_encoder, tokenizer, scheduler, steps: int = 1, ensemble: int = 1,
                       seed: int = 0, label: str = "training"):
    """A ``MarigoldPredictor`` over copies of ``unet`` and ``vae`` (the predictor freezes and may
    re-layout what it is given, which must not touch the modules being trained)."""
    from marigold_bench.inference.predictor import MarigoldPredictor

    device = next(unet.parameters()).device
    return MarigoldPredictor(
        unet=copy.deepcopy(unet), vae=copy.deepcopy(vae), scheduler=scheduler, text_encoder=text_encoder,
        tokenizer=tokenizer, model=label, model_path=None, model_source="training",
        pipeline_config={"prediction_type": "depth", "default_denoising_steps": steps,
                         "default_processing_resolution": 0},
        steps=steps, ensemble=ensemble, processing_res=0, precision="fp32", device=device, seed=seed)


def validate(predictor, dataset, out_dir: str) -> dict:
    """Score ``predictor`` on ``dataset`` into ``out_dir``; returns the evaluator's summary."""
    from marigold_bench.eval.evaluator import run_predictor

    return run_predictor(dataset, predictor, out_dir, progress=False)


__all__ = ["ValidationSetWarning", "set_label", "validation_sets", "present_sets", "training_predictor", "validate"]
