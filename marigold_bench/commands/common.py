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
                   help="diffusers-format Marigold checkpoint dir, hub id in the local cache, or "
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


def build_predictor(args, processing_res: int | None = None):
    """The predictor the flags describe (a baseline or a Marigold checkpoint)."""
    model = args.model or default_model()
    if model.startswith("baseline:"):
        from marigold_bench.inference.baseline import BaselinePredictor
        return BaselinePredictor(model.split(":", 1)[1], ensemble=args.ensemble)
    from marigold_bench.inference import load_predictor
    res = args.processing_res if args.processing_res is not None else processing_res
    return load_predictor(model, steps=args.steps, timestep_spacing=args.timestep_spacing,
                          noise=args.noise, ensemble=args.ensemble, processing_res=res,
                          batch_size=args.batch_size, precision=args.precision, device=args.device,
                          seed=args.seed, ensembling=args.ensembling,
                          compile=args.compile or None, tiny_vae=args.tiny_vae)


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
    row = [summary["dataset"], f"{summary['n']}/{summary['n_total']}"]
    for key, _ in HEADLINE:
        value = m.get(key, np.nan)
        row.append(value * 100 if key in ("abs_rel", "delta1", "delta2", "delta3") else value)
    headers = ["dataset", "n"] + [h for _, h in HEADLINE]
    table = tabulate([row], headers=headers, floatfmt=".3f", tablefmt="github")
    notes = [f"{summary[k]} {k[2:].replace('_', ' ')}" for k in ("n_failed", "n_skipped", "n_no_valid") if summary.get(k)]
    return table + ("\n(" + ", ".join(notes) + ": see per_sample.csv)" if notes else "")
