"""Flags and helpers shared by the sub-commands that run a model (run, predict, ablate)."""

from __future__ import annotations

import argparse
import os
import re
import warnings
from pathlib import Path

import numpy as np
from tabulate import tabulate

from marigold_bench.tasks import display_value, metric_heading

#: the tiny checkpoint trained by our own trainer and shipped with the package
BUNDLED_TINY = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny"

#: the tiny normals checkpoint bundled likewise (the default of ``run --task normals``)
BUNDLED_TINY_NORMALS = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny-normals"


def default_model() -> str:
    if (BUNDLED_TINY / "model_index.json").is_file():
        return str(BUNDLED_TINY)
    warnings.warn("the bundled tiny checkpoint is missing from this install; using baseline:ramp")
    return "baseline:ramp"


def default_normals_model() -> str:
    """The model of ``run --task normals`` without ``--model``: the bundled tiny normals checkpoint."""
    if (BUNDLED_TINY_NORMALS / "model_index.json").is_file():
        return str(BUNDLED_TINY_NORMALS)
    warnings.warn("the bundled tiny normals checkpoint is missing from this install; using baseline:facing")
    return "baseline:facing"


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
                   help="ensembling preset: diffusers, official, official-2024 or cvpr (surface normals: "
                        "closest or mean; diffusers and official mean closest there)")
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


def _flag_defaults() -> dict:
    """Every inference setting's key and its default, read off the flags themselves (so the two
    cannot drift apart); ``output_space`` comes from the scoring flags of ``run``/``predict``."""
    parser = argparse.ArgumentParser(add_help=False)
    add_inference_flags(parser)
    defaults = {action.dest: action.default for action in parser._actions if action.dest != "model"}
    defaults["output_space"] = None
    return defaults


def settings_from_args(args) -> dict:
    """The inference settings the user SET in ``args``: ``{key: value}`` for each inference flag
    whose value is not its default (``--steps 4`` -> ``{"steps": 4}``), in the flags' order.

    A model's family is asked about these only (`Family.check`, `Family.drop`): an unset flag
    is no request, so it never makes a model refuse to run.
    """
    settings = {}
    for key, default in _flag_defaults().items():
        value = getattr(args, key, default)
        if value is not None and value is not False and value != default:
            settings[key] = value
    return settings


def suggested_settings(args, processing_res: int | None = None, seed: int | None = None) -> dict:
    """What the benchmark suggests where the user set nothing: its protocol's processing
    resolution and padding, and the seed its official script runs with (Marigold's normals
    benchmarks: NYUv2 4321, ScanNet 1234, ...). A family takes those it honours; the user's
    settings win."""
    suggested = {"processing_res": processing_res, "padding": default_padding(args), "seed": seed}
    return {key: value for key, value in suggested.items() if value is not None}


def drop_unhonoured(args) -> tuple[argparse.Namespace, list[str]]:
    """``args`` with the settings ``args.model``'s family cannot honour reset to their
    defaults, and those settings as written (``--steps 4``).

    For commands that run several families under one set of flags (``leaderboard``): a
    setting one family cannot take applies to the others and is reported, not refused, for its
    models. ``run`` itself refuses such settings (`build_predictor`).
    """
    from marigold_bench.inference.families import family_for

    given = settings_from_args(args)
    kept, dropped = family_for(args.model or default_model()).drop(given)
    if not dropped:
        return args, []
    defaults = _flag_defaults()
    values = dict(vars(args))
    for key in given:
        if key not in kept:
            values[key] = defaults[key]
    return argparse.Namespace(**values), dropped


def build_predictor(args, processing_res: int | None = None, seed: int | None = None):
    """The predictor the flags describe, built by the family of its model.

    ``--model`` is a folder, a hub id in the local cache, a registry name
    (`marigold_bench.inference.registry`, whose entry also brings the ``e2e-ft`` recipe) or a
    name a family claims (``baseline:ramp``); which family's it is comes from the registry of
    families (`marigold_bench.inference.families.family_for`), which reads the files. The
    settings the user set go to the family, which refuses those it cannot honour; what the
    benchmark suggests (``processing_res``, the protocol's resolution, its padding and its
    official ``seed``) fills in where the family takes it and the user set nothing.

    Raises:
        CheckpointError: the model cannot be found, or no family recognises it.
        InferenceSettingsError: a flag the model's family cannot honour, or an invalid setting.
    """
    from marigold_bench.inference.families import family_for

    model = args.model or default_model()
    family = family_for(model)
    given = settings_from_args(args)
    family.check(given, model)
    suggested = {k: v for k, v in suggested_settings(args, processing_res, seed).items() if k in family.settings}
    return family.build(model, {**suggested, **given})


def default_padding(args) -> str | None:
    """The padding a Marigold checkpoint gets without ``--padding``: the benchmark's (ETH3D:
    ``"none"``, as the official evaluation ran) under the ``marigold`` evaluation protocol,
    else None (the predictor's default, ``"replicate"``)."""
    from marigold_bench.eval.protocols import EVALUATION_PROTOCOLS

    # a spec's padding is what its own evaluation ran with: it holds under the suite's default
    # protocol (the first registered, Marigold's), not under another suite's rules
    default_protocol = next(iter(EVALUATION_PROTOCOLS))
    dataset = getattr(args, "dataset", None)
    if not dataset or getattr(args, "protocol", default_protocol) != default_protocol:
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


NORMALS_HEADLINE = (("mean_angle", "mean°↓"), ("median_angle", "median°↓"), ("pct_11_25", "<11.25°↑"),
                    ("pct_30", "<30°↑"))


def normals_table(summary: dict) -> str:
    """The terminal table of a normals run: angles in degrees, shares in percent (as scored)."""
    m = summary["metrics"]
    shown = [(k, h) for k, h in NORMALS_HEADLINE if k in m] + ([("rmse_angle", "RMSE°↓")] if "rmse_angle" in m else [])
    row = [summary["dataset"], f"{summary['n']}/{summary['n_total']}", *(m.get(k, np.nan) for k, _ in shown)]
    table = tabulate([row], headers=["dataset", "n", *(h for _, h in shown)], floatfmt=".3f", tablefmt="github")
    notes = [f"{summary[k]} {k[2:].replace('_', ' ')}" for k in ("n_failed", "n_skipped", "n_no_valid") if summary.get(k)]
    if summary.get("n_with_zero"):
        notes.append(f"{summary['n_with_zero']} with zero-vector predictions (scored as 90°)")
    if summary.get("frame_converted"):
        notes.append(f"predictions converted from {summary['frame']} to the benchmark's {summary['benchmark_frame']} frame")
    return table + ("\n(" + ", ".join(notes) + ")" if notes else "")


def summary_table(summary: dict) -> str:
    """The terminal table of one run: headline metrics in percent, as papers print them."""
    if summary.get("task", "depth") == "normals":
        return normals_table(summary)
    m = summary["metrics"]
    # a protocol scores its own metric set (moge: AbsRel and δ1 only): show the columns it has
    # (da2k: none of the headline ones, its own)
    shown = ([(key, header) for key, header in HEADLINE if key in m] or [(key, metric_heading(key)) for key in m]
             or list(HEADLINE))
    row = [summary["dataset"], f"{summary['n']}/{summary['n_total']}"]
    for key, _ in shown:
        row.append(display_value(key, m.get(key, np.nan)))  # percentages x100, as papers print them
    headers = ["dataset", "n"] + [h for _, h in shown]
    table = tabulate([row], headers=headers, floatfmt=".3f", tablefmt="github")
    notes = [f"{summary[k]} {k[2:].replace('_', ' ')}" for k in ("n_failed", "n_skipped", "n_no_valid") if summary.get(k)]
    if summary.get("n_with_nonpositive"):
        # scored (the fit leaves them out and the protocol clips them), but worth a look
        notes.append(f"{summary['n_with_nonpositive']} with non-positive predicted disparity")
    return table + ("\n(" + ", ".join(notes) + ": see per_sample.csv)" if notes else "")
