"""Checkpoints for the training-noise study: train the tiny configuration once per noise type.

The study itself only evaluates checkpoints (``--checkpoints gaussian=DIR,...``). With
``ablate --study noise --train`` this module makes them by calling the suite's trainer through
one function, looked up when needed so that the ablation code imports without the training
stack:

* ``marigold_bench.train.trainer.train_from_config(config, overrides)`` when the training module
  offers it;
* otherwise the same call composed from its public pieces (``train.config.read_config_file``, the
  YAML reader of ``marigold-bench train``, ``config_from_dict`` and ``trainer.train``).

Overrides are dotted config keys: ``diffusion.noise`` (the noise under study), ``output_dir``
and ``export.dir`` (inside the study directory, never the bundled checkpoint's folder). A noise
type whose export already holds ``model_index.json`` is not trained again.
"""

from __future__ import annotations

import importlib
import os

from marigold_bench.errors import BenchError

TRAINING_NOISE = ("gaussian", "multires", "annealed")
DEFAULT_CONFIG = "configs/tiny.yaml"


def _compose_from_parts():
    """``train_from_config`` built from the trainer's public pieces (config dict -> train)."""
    from marigold_bench.train.config import config_from_dict, read_config_file
    from marigold_bench.train.trainer import train

    def train_from_config(config, overrides: dict):
        if isinstance(config, (str, os.PathLike)):
            # the loader of `marigold-bench train`: plain values only, each key once, one-line errors
            values = read_config_file(config)
        else:
            values = dict(config)
        for dotted, value in overrides.items():
            node = values
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise BenchError(f"training config {config}: section {part} must be a mapping, got {node!r}")
            node[leaf] = value
        return train(config_from_dict(values))

    return train_from_config


def find_trainer():
    """The training entry ``(config, overrides) -> result``, or a clear error if there is none."""
    try:
        module = importlib.import_module("marigold_bench.train.trainer")
    except ImportError as exc:
        raise BenchError(f"training module not available ({exc}); train the checkpoints with "
                         "`marigold-bench train` and pass "
                         "--checkpoints gaussian=DIR,multires=DIR,annealed=DIR") from None
    if hasattr(module, "train_from_config"):
        return module.train_from_config
    try:
        return _compose_from_parts()
    except (ImportError, AttributeError) as exc:
        raise BenchError(f"training module not available: marigold_bench.train offers neither "
                         f"train_from_config nor train/config_from_dict ({exc}); pass --checkpoints instead") from None


def train_noise_checkpoints(out_dir: str, config=DEFAULT_CONFIG, kinds=TRAINING_NOISE, trainer=None,
                            log=print) -> dict[str, str]:
    """Train (or reuse) one checkpoint per training noise type.

    Args:
        out_dir: the study directory; checkpoint ``k`` is exported to ``<out_dir>/train/<k>/export``.
        config: a training config (YAML path or dict), by default the tiny one.
        kinds: noise types to train with.
        trainer: the training entry (default: :func:`find_trainer`).

    Returns:
        ``{noise type: exported checkpoint directory}``.
    """
    checkpoints = {}
    for kind in kinds:
        if kind not in TRAINING_NOISE:
            raise BenchError(f"unknown training noise {kind!r}; choose from {', '.join(TRAINING_NOISE)}")
        folder = os.path.join(out_dir, "train", kind)
        export = os.path.join(folder, "export")
        if os.path.isfile(os.path.join(export, "model_index.json")):
            if log:
                log(f"training noise {kind}: checkpoint {export} exists, not retrained")
        else:
            trainer = trainer or find_trainer()
            if log:
                log(f"training noise {kind}: training into {folder}")
            trainer(config, {"diffusion.noise": kind, "output_dir": os.path.join(folder, "run"),
                             "export.dir": export})
            if not os.path.isfile(os.path.join(export, "model_index.json")):
                raise BenchError(f"training with {kind} noise finished without a checkpoint in {export}")
        checkpoints[kind] = export
    return checkpoints
