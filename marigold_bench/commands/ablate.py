"""``marigold-bench ablate``: run one ablation study into a study directory (table, CSV, plot).

Studies are specs in :mod:`marigold_bench.ablation.studies`; every run goes through the normal
run loop, so runs already done are skipped and an interrupted study resumes when rerun.
"""

from __future__ import annotations

import argparse
import os
import re

from marigold_bench.commands.common import add_inference_flags, build_predictor, default_model
from marigold_bench.commands.run import add_dataset_flags, declared_output_space, open_dataset, scoring_for
from marigold_bench.errors import BenchError
from marigold_bench.eval.outdir import check_writable

#: the command's flags that make up a run's inference settings
INFERENCE_SETTINGS = ("model", "steps", "ensemble", "seed", "timestep_spacing", "noise", "processing_res",
                      "batch_size", "precision", "device", "ensembling")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate", help="run an ablation study (noise, ensemble size, DDIM steps, spacing)",
        description="Run one ablation study: every run is a normal run directory under "
                    "<out>/runs/, done runs are skipped, and the study writes table.md, table.csv, "
                    "results.csv and plot.png/.pdf into <out>.")
    p.add_argument("--study", required=True, choices=("noise", "ensemble", "steps", "spacing"))
    add_dataset_flags(p)
    # any benchmark works; the built-in synthetic one needs no download
    p._option_string_actions["--dataset"].required = False
    p.set_defaults(dataset="synthetic")
    add_inference_flags(p)
    g = p.add_argument_group("study")
    g.add_argument("--values", default=None,
                   help="values of the studied setting, e.g. 1,2,3,5,10 (N, at most 20), 1,2,4,10,50 "
                        "(steps) or gaussian,zeros (noise); default: the study's")
    g.add_argument("--seeds", type=int, default=None,
                   help="seeds per value, from --seed on (default: 3 for ensemble, else 1)")
    g.add_argument("--checkpoints", default=None,
                   help="noise study, training noise: label=DIR pairs of checkpoints trained with "
                        "each noise, e.g. gaussian=DIR,multires=DIR,annealed=DIR")
    g.add_argument("--train", action="store_true",
                   help="noise study: train the tiny configuration with each training noise first")
    g.add_argument("--train-config", default=None,
                   help="training config for --train (default: configs/tiny.yaml)")
    g.add_argument("--metrics", default="abs_rel,delta1", help="metrics of the table and plot")
    p.add_argument("--out", default=None, help="study directory (default: runs/ablate-<study>-<dataset>-<model>)")
    p.set_defaults(func=run)


def parse_checkpoints(text: str) -> dict[str, str]:
    """``"a=DIR,b=DIR"`` -> ``{"a": "DIR", "b": "DIR"}``; every DIR must exist."""
    checkpoints = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise BenchError(f"--checkpoints: {item!r} is not label=DIR")
        if label in checkpoints:
            raise BenchError(f"--checkpoints: {label!r} given twice")
        if not os.path.isdir(path):
            raise BenchError(f"--checkpoints: {label}={path}: no such directory")
        checkpoints[label] = path
    if not checkpoints:
        raise BenchError("--checkpoints is empty")
    return checkpoints


def _metrics(text: str) -> list[str]:
    from marigold_bench.eval.metrics import METRIC_KEYS
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRIC_KEYS]
    if unknown or not metrics:
        raise BenchError(f"--metrics: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(METRIC_KEYS)}")
    return metrics


def _default_out(study: str, dataset: str, model: str) -> str:
    name = os.path.basename(os.path.normpath(model))
    return os.path.join("runs", re.sub(r"[^A-Za-z0-9_.-]+", "-", f"ablate-{study}-{dataset}-{name}"))


def _refuse_ignored_flags(study, args) -> None:
    """A flag the study would overwrite (the setting it varies) or an empty --values is refused,
    so that a run never silently ignores what was asked."""
    if args.values is not None and not args.values.strip():
        raise BenchError("--values is empty (leave it out for the study's defaults: "
                         f"{','.join(map(str, study.values))})")
    for setting in (study.axis, study.series):
        default = {"ensemble": 1, "noise": "gaussian"}.get(setting)   # the flags' own defaults
        given = getattr(args, setting, None) if setting else None
        if given is not None and given != default:
            flag = "--" + setting.replace("_", "-")
            raise BenchError(f"{flag} {given}: the {study.name} study varies {setting} itself; give the values "
                             f"with --values (default {','.join(map(str, study.values))})"
                             if setting == study.axis else
                             f"{flag} {given}: the {study.name} study runs every {setting} "
                             f"({', '.join(study.series_values)}); leave {flag} out")


def _refuse_other_tasks(model: str) -> None:
    """The studies are the paper's depth ablations, scored by AbsRel and δ1: a normals model is
    refused before anything runs."""
    from marigold_bench.commands.run import model_task

    task = model_task(argparse.Namespace(model=model, task=None))
    if task != "depth":
        raise BenchError(f"ablate runs the paper's depth ablations (AbsRel, δ1); {model} predicts {task} "
                         "(run `marigold-bench run --task normals` per setting instead)")


def run(args) -> int:
    from marigold_bench.ablation import STUDIES, parse_values, plan
    from marigold_bench.ablation.report import write_study_report
    from marigold_bench.ablation.runner import run_study

    metrics = _metrics(args.metrics)
    name = args.study
    if args.study == "noise" and (args.checkpoints or args.train):
        name = "train_noise"
    study = STUDIES[name]
    _refuse_ignored_flags(study, args)
    if args.checkpoints and args.train:
        raise BenchError("give either --checkpoints or --train, not both")
    if args.study != "noise" and (args.checkpoints or args.train):
        raise BenchError("--checkpoints and --train belong to the noise study")
    model = args.model or default_model()
    out = args.out or _default_out(name, args.dataset, model)
    check_writable(out)  # before any training or run: each would fail at its end, losing the work

    checkpoints = None
    if args.checkpoints:
        checkpoints = parse_checkpoints(args.checkpoints)
    elif args.train:
        from marigold_bench.ablation.training import DEFAULT_CONFIG, TRAINING_NOISE, train_noise_checkpoints
        kinds = parse_values(study, args.values) if args.values else TRAINING_NOISE
        checkpoints = train_noise_checkpoints(out, args.train_config or DEFAULT_CONFIG, kinds)
    values = None if name == "train_noise" and not args.values else parse_values(study, args.values)
    runs = plan(study, values, seeds=args.seeds, base_seed=args.seed, checkpoints=checkpoints)

    _refuse_other_tasks(model)
    dataset = open_dataset(args, task="depth")   # a normals benchmark: its tasks are named
    base = {k: getattr(args, k) for k in INFERENCE_SETTINGS}
    base["model"] = model

    def make_predictor(settings: dict):
        return build_predictor(argparse.Namespace(**{**vars(args), **settings}),
                               processing_res=dataset.protocol.processing_res)

    frame = run_study(study, runs, dataset, out, make_predictor, base, progress=True,
                      run_options={"skip_missing": args.skip_missing, "score_device": args.score_device,
                                   # the fit follows what each run's model declares (disparity
                                   # checkpoints in disparity), as in `run`
                                   "scoring": lambda predictor: scoring_for(
                                       args, dataset, declared_output_space(predictor))})
    context = (f"{dataset.protocol.name}, {len(dataset)} samples, model {os.path.basename(os.path.normpath(model))}; "
               f"study directory {out}")
    paths = write_study_report(frame, study, out, metrics, context=context)
    print(paths["markdown"])
    plots = ", ".join(os.path.basename(p) for p in paths["plot"])
    print(f"study directory: {out} (table.md, table.csv, results.csv, {plots})")
    return 0
