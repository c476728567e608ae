"""Flags and helpers shared by the sub-commands that run a model (run, predict, ablate)."""

from __future__ import annotations

import argparse
import os
import re
import warnings
from pathlib import Path

import numpy as np
from tabulate import tabulate

#: the tiny checkpoint trained by our own trainer and shipped with the package
BUNDLED_TINY = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny"


def default_model() -> str:
    if (BUNDLED_TINY / "model_index.json").is_file():
        return str(BUNDLED_TINY)
    warnings.warn("the bundled tiny checkpoint is missing from this install; using baseline:ramp")
    return "baseline:ramp"


def add_inference_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inference")
    g.add_argument("--model", default=None,
                   help="a Marigold (diffusers) or transformers depth-estimation checkpoint folder, a hub "
                        "id in the local cache, a registry name (`marigold-bench models`), or "
                        "baseline:ramp / baseline:constant (default: the bundled tiny checkpoint)")
    g.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the checkpoint's)")
    g.add_argument("--ensemble", type=int, default=1, help="test-time ensemble size N")
    g.add_argument("--seed", type=int, default=1234)
    g.add_argument("--timestep-spacing", choices=("trailing", "leading"), default=None)
    g.add_argument("--noise", choices=("gaussian", "multires", "annealed", "zeros"), default="gaussian",
                   help="starting noise of the DDIM loop (multires/annealed: the training pyramid)")
    g.add_argument("--processing-res", type=int, default=None,
                   help="long side the image is resized to (0 = native; default: the dataset's "
                        "protocol or the checkpoint's)")
    g.add_argument("--batch-size", type=int, default=0, help="member batch size (0 = auto)")
    g.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    g.add_argument("--ensembling", default="diffusers",
                   help="ensembling preset: diffusers, official, official-2024 or cvpr")
    g.add_argument("--compile", action="store_true", help="torch.compile the UNet and the VAE encoder/decoder (opt-in; pays off on GPUs)")
    g.add_argument("--tiny-vae", default=None, metavar="DIR",
                   help="decode with this diffusers AutoencoderTiny instead of the VAE "
                        "(faster; changes the numbers)")
    g.add_argument("--recipe", default=None, choices=("marigold", "e2e-ft"),
                   help="Marigold-family inference recipe: marigold (the checkpoint's defaults) or e2e-ft "
                        "(one DDIM step at t=T, trailing, from zeros, N=1); default: the registry's entry "
                        "for the model, else marigold")
    g.add_argument("--padding", default=None, choices=("replicate", "none"),
                   help="Marigold checkpoints: replicate = pad the resized image to a multiple of the VAE "
                        "factor (diffusers), none = give it to the VAE as it is and stretch the result back "
                        "(the official pipeline); default: replicate, none for ETH3D under --protocol marigold")


#: flags of the Marigold recipe, their defaults, and how they read on the command line; a
#: family that cannot honour one refuses it when it is set (`inapplicable_flags`)
_MARIGOLD_ONLY = (("steps", None, "--steps"), ("timestep_spacing", None, "--timestep-spacing"),
                  ("noise", "gaussian", "--noise"), ("processing_res", None, "--processing-res"),
                  ("compile", False, "--compile"), ("tiny_vae", None, "--tiny-vae"),
                  ("ensembling", "diffusers", "--ensembling"), ("recipe", None, "--recipe"),
                  ("padding", None, "--padding"))


def inapplicable_flags(args, family: str) -> list[str]:
    """The flags set in ``args`` that a ``family`` ("baseline", "transformers", "marigold")
    predictor cannot honour, as the user wrote them (``--steps 4``); empty when all apply.

    Baselines are image-independent guesses: no diffusion flags, and fp32 only (they compute on
    the host). Transformers depth models run their own image processor at their own resolution
    and are deterministic: no diffusion, resolution or decoder flags.
    """
    if family == "marigold":
        return []
    found = []
    for name, default, flag in _MARIGOLD_ONLY:
        value = getattr(args, name, default)
        if value not in (default, None) and not (name == "compile" and not value):
            found.append(flag if value is True else f"{flag} {value}")
    precision = getattr(args, "precision", "fp32")
    if family == "baseline" and precision not in (None, "fp32"):
        found.append(f"--precision {precision}")
    return found


def refuse_inapplicable(args, family: str, model: str) -> None:
    """`InferenceSettingsError` naming the flags ``family`` cannot honour, instead of ignoring them."""
    from marigold_bench.errors import InferenceSettingsError

    found = inapplicable_flags(args, family)
    if found:
        what = {"baseline": "a baseline (an image-independent guess)",
                "transformers": "a transformers depth model (its image processor sets the resolution; "
                                "one deterministic forward pass)"}.get(family, family)
        raise InferenceSettingsError(f"--model {model} is {what}: {', '.join(found)} cannot apply to it; "
                                     "drop the flag(s)")


def drop_inapplicable(args, model: str) -> tuple[argparse.Namespace, list[str]]:
    """``args`` with the flags ``model``'s family cannot honour reset to their defaults, and
    those flags as written (``--steps 4``).

    For commands that run several families under one set of flags (``leaderboard``): a
    Marigold-only flag applies to the Marigold rows and is reported, not refused, for the
    others. ``run`` itself refuses such flags (`refuse_inapplicable`).
    """
    if model.startswith("baseline:"):
        family = "baseline"
    else:
        family = "transformers" if _kind(model) == "transformers" else "marigold"
    dropped = inapplicable_flags(args, family)
    if not dropped:
        return args, []
    values = dict(vars(args))
    for name, default, _ in _MARIGOLD_ONLY:
        values[name] = default
    if family == "baseline":
        values["precision"] = "fp32"
    return argparse.Namespace(**values), dropped


def _kind(model: str) -> str | None:
    """"transformers" or "marigold" from the files of ``model``; None when it cannot be found or
    is neither kind: the Marigold loader then reports why, with the same messages."""
    from marigold_bench.errors import CheckpointError
    from marigold_bench.inference.registry import resolve_name
    from marigold_bench.model.load import resolve_model

    try:
        return resolve_model(resolve_name(model))[2]
    except CheckpointError:
        return None


def build_predictor(args, processing_res: int | None = None):
    """The predictor the flags describe: a baseline, a Marigold checkpoint or a transformers
    depth model. ``--model`` is a folder, a hub id in the local cache or a registry name
    (`marigold_bench.inference.registry`, whose entry also brings the ``e2e-ft`` recipe); the
    kind is read from the files (`marigold_bench.model.load.detect_kind`). ``processing_res`` is
    the dataset protocol's resolution for Marigold checkpoints (``--processing-res`` wins);
    other families ignore it.

    Raises:
        CheckpointError: the model cannot be found or is neither kind.
        InferenceSettingsError: a flag the model's family cannot honour, or an invalid setting.
    """
    model = args.model or default_model()
    if model.startswith("baseline:"):
        from marigold_bench.inference.baseline import BaselinePredictor
        refuse_inapplicable(args, "baseline", model)
        return BaselinePredictor(model.split(":", 1)[1], ensemble=args.ensemble)
    if _kind(model) == "transformers":
        from marigold_bench.inference.transformers_depth import TransformersDepthPredictor

        refuse_inapplicable(args, "transformers", model)
        return TransformersDepthPredictor.from_pretrained(
            model, output_space=getattr(args, "output_space", None), ensemble=args.ensemble,
            batch_size=args.batch_size, precision=args.precision, device=args.device)
    from marigold_bench.inference import load_predictor
    from marigold_bench.inference.registry import lookup, lookup_path

    res = args.processing_res if args.processing_res is not None else processing_res
    entry = lookup(model) or lookup_path(model)
    # E2E-FT checkpoints are known by their registry entry (name, hub id or cache folder);
    # --recipe overrides
    recipe = getattr(args, "recipe", None) or (entry.recipe if entry is not None else None)
    # what the flags and the protocol leave open, a registry entry fills with its authors'
    # recommendation (before the checkpoint's own model_index defaults)
    steps = args.steps
    if entry is not None and entry.family == "marigold":
        steps = steps if steps is not None else entry.steps
        res = res if res is not None else entry.processing_res
    noise = args.noise
    if recipe == "e2e-ft" and noise == "gaussian":
        noise = None   # --noise's default: the recipe's zeros (an explicit other kind is refused)
    return load_predictor(model, steps=steps, timestep_spacing=args.timestep_spacing,
                          noise=noise, ensemble=args.ensemble, processing_res=res,
                          batch_size=args.batch_size, precision=args.precision, device=args.device,
                          seed=args.seed, ensembling=args.ensembling,
                          compile=args.compile or None, tiny_vae=args.tiny_vae, recipe=recipe,
                          padding=getattr(args, "padding", None) or default_padding(args))


def default_padding(args) -> str | None:
    """The padding a Marigold checkpoint gets without ``--padding``: the benchmark's (ETH3D:
    ``"none"``, as the official evaluation ran) under the ``marigold`` evaluation protocol,
    else None (the predictor's default, ``"replicate"``)."""
    dataset = getattr(args, "dataset", None)
    if not dataset or getattr(args, "protocol", "marigold") != "marigold":
        return None
    from marigold_bench.data.registry import DATASETS, get_benchmark

    return get_benchmark(dataset).padding if dataset in DATASETS else None


def default_run_dir(dataset: str, settings: dict) -> str:
    """A run directory named after its settings, so rerunning a command resumes it."""
    model = os.path.basename(os.path.normpath(str(settings.get("model", "model"))))
    parts = [dataset, model]
    for key, tag in (("steps", "steps"), ("ensemble", "N"), ("seed", "seed")):
        if settings.get(key) is not None:
            parts.append(f"{tag}{settings[key]}")
    return os.path.join("runs", re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(map(str, parts))))


HEADLINE = (("abs_rel", "AbsRel↓"), ("delta1", "δ1↑"), ("delta2", "δ2↑"), ("delta3", "δ3↑"),
            ("rmse", "RMSE↓"), ("silog_rmse", "SIlog↓"))


def summary_table(summary: dict) -> str:
    """The terminal table of one run: headline metrics in percent, as papers print them."""
    m = summary["metrics"]
    # a protocol scores its own metric set (moge: AbsRel and δ1 only): show the columns it has
    shown = [(key, header) for key, header in HEADLINE if key in m] or list(HEADLINE)
    row = [summary["dataset"], f"{summary['n']}/{summary['n_total']}"]
    for key, _ in shown:
        value = m.get(key, np.nan)
        row.append(value * 100 if key in ("abs_rel", "delta1", "delta2", "delta3") else value)
    headers = ["dataset", "n"] + [h for _, h in shown]
    table = tabulate([row], headers=headers, floatfmt=".3f", tablefmt="github")
    notes = [f"{summary[k]} {k[2:].replace('_', ' ')}" for k in ("n_failed", "n_skipped", "n_no_valid") if summary.get(k)]
    if summary.get("n_with_nonpositive"):
        # scored (the fit leaves them out and the protocol clips them), but worth a look
        notes.append(f"{summary['n_with_nonpositive']} with non-positive predicted disparity")
    return table + ("\n(" + ", ".join(notes) + ": see per_sample.csv)" if notes else "")
