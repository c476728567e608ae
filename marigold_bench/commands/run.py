"""``marigold-bench run``: predict with a model, cache, align, score and write a run directory."""

from __future__ import annotations

import os

from marigold_bench.commands.common import (add_inference_flags, build_predictor, default_normals_model,
                                            default_run_dir, summary_table)
from marigold_bench.data import load_dataset
from marigold_bench.data.registry import BenchmarkNames, get_benchmark
from marigold_bench.errors import BenchError
from marigold_bench.eval.outdir import check_run_dir
from marigold_bench.eval.protocols import ALIGNMENTS, EVALUATION_PROTOCOLS, get_evaluation_protocol, resolve_scoring
from marigold_bench.frames import FRAMES
from marigold_bench.output_spaces import ALL_OUTPUT_SPACES, DEPTH_AFFINE
from marigold_bench.tasks import TASKS

#: --dataset: every benchmark's name and the plain names a --task resolves (``oasis``)
DATASET_NAMES = BenchmarkNames(aliases=True)


def add_dataset_flags(p) -> None:
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--data-root", default=None, help="official download base folder, the "
                   "benchmark's folder or its .tar (default: $MARIGOLD_DATA)")
    p.add_argument("--split", default=None, help="split name or split file (default: the test split); "
                   "synthetic: test, val or train, optionally with a count of at least 1, e.g. test:8")
    p.add_argument("--max-samples", type=int, default=None, help="only the first N samples")
    p.add_argument("--skip-missing", action="store_true",
                   help="record samples with missing/corrupt files as skipped instead of stopping")
    p.add_argument("--fit-space", choices=("depth", "disparity"), default=None,
                   help="override the space the prediction is fitted in (default: disparity for "
                        "disparity output, else depth)")
    add_scoring_flags(p)
    p.add_argument("--score-device", default="auto",
                   help="where alignment and metrics run: auto (run: the model's CUDA GPU if it has "
                        "one, else the CPU; evaluate: the CPU), cpu, cuda or cuda:N; the numbers agree "
                        "to float64 round-off")


def add_scoring_flags(p, protocol_help: str | None = None) -> None:
    """--protocol, --alignment, --output-space and --boundary-f1 (see eval/protocols.py)."""
    p.add_argument("--protocol", default="marigold", metavar="P",
                   help=protocol_help or f"evaluation protocol: {', '.join(EVALUATION_PROTOCOLS)} "
                        "(see `marigold-bench protocols`)")
    p.add_argument("--alignment", default=None, metavar="A",
                   help=f"{' | '.join(ALIGNMENTS)} (default: what the protocol does for the output space)")
    p.add_argument("--output-space", default=None, choices=ALL_OUTPUT_SPACES, metavar="S",
                   help=f"what the predictions mean: {' | '.join(ALL_OUTPUT_SPACES)} (default: what the "
                        "model declares; evaluate: depth_affine_invariant)")
    p.add_argument("--boundary-f1", type=int, default=None, metavar="R",
                   help="add a boundary-F1 column of radius R (1, 2 or 3; 0: none; default: the "
                        "protocol's choice, moge: 1 where the ground truth is sharp)")


def add_task_flags(p, frame_default: str) -> None:
    """--task and --frame (``run``, ``evaluate``): which ground truth, and the normals' frame."""
    p.add_argument("--task", default=None, choices=TASKS,
                   help="which ground truth of the benchmark to score against (default: the model's task; "
                        "evaluate: depth); a task the benchmark lacks is an error")
    p.add_argument("--frame", default=None, choices=FRAMES,
                   help="normals only: the camera frame of the predictions (opengl: x right, y up, z towards "
                        f"the viewer; opencv: y down, z forward), converted to the benchmark's before scoring "
                        f"(default: {frame_default})")


def scoring_for(args, dataset, output_space: str | None = None, frame: str | None = None):
    """The resolved scoring of the flags for ``dataset``; ``output_space`` is the model's
    declared one (``--output-space`` overrides it, and the override is recorded); ``frame`` the
    normals predictor's declared frame (``--frame`` overrides it, recorded likewise)."""
    if getattr(dataset.protocol, "task", "depth") == "normals":
        given = getattr(args, "frame", None)
        return resolve_scoring(dataset.protocol, args.protocol, output_space=args.output_space,
                               alignment=args.alignment, fit_space=args.fit_space, boundary_f1=args.boundary_f1,
                               frame=given or frame, declared_frame=frame if given else None)
    if getattr(args, "frame", None):
        raise BenchError(f"--frame is the camera frame of surface-normals predictions; {dataset.protocol.name} "
                         "is scored as depth (use --task normals for its normals ground truth)")
    return resolve_scoring(dataset.protocol, args.protocol,
                           output_space=args.output_space or output_space or DEPTH_AFFINE,
                           alignment=args.alignment, fit_space=args.fit_space,
                           boundary_f1=args.boundary_f1,
                           declared_output_space=output_space if args.output_space else None)


def declared_output_space(predictor) -> str | None:
    """What a predictor's model declares before any ``--output-space`` override (a transformers
    predictor built with the override records its own declaration separately)."""
    settings = predictor.settings
    return (settings.get("declared_output_space") or getattr(predictor, "output_space", None)
            or settings.get("output_space"))


def check_scoring_names(args, task: str = "depth") -> None:
    """Refuse an unknown --protocol (of ``task``) or --alignment (listing the known ones) early."""
    get_evaluation_protocol(args.protocol, task)
    if getattr(args, "frame", None) and task == "depth":
        raise BenchError("--frame is the camera frame of surface-normals predictions; this run scores depth "
                         "(use --task normals for a benchmark's normals ground truth)")
    if args.alignment is not None and args.alignment not in ALIGNMENTS:
        raise BenchError(f"unknown alignment {args.alignment!r}; known alignments: {', '.join(ALIGNMENTS)}")


def open_dataset(args, task: str | None = None):
    """The benchmark ``--dataset`` names, its ground truth for ``task`` (None: ``--task``, else
    the spec called so); a task it lacks is the registry's `MissingTaskError`."""
    if args.max_samples is not None and args.max_samples < 1:  # before any data is opened
        raise BenchError(f"--max-samples {args.max_samples}: give a number of samples, at least 1")
    protocol = get_benchmark(args.dataset, task=task or getattr(args, "task", None))
    if args.fit_space and protocol.task == "depth":
        protocol = protocol.replace(fit_space=args.fit_space)
    return load_dataset(args.dataset, args.data_root, args.split, protocol=protocol).subset(args.max_samples)


def refuse_empty(summary: dict, out: str) -> None:
    """A run or evaluation that scored no sample is not a success (its means are NaN): exit 2,
    with per_sample.csv, which says why each sample was not scored, left in ``out``."""
    if summary.get("n", 0) == 0:
        counts = ", ".join(f"{summary.get(k, 0)} {what}" for k, what in
                           (("n_failed", "failed"), ("n_skipped", "skipped"), ("n_no_valid", "without a valid pixel")))
        raise BenchError(f"no sample was scored ({counts}); see {os.path.join(out, 'per_sample.csv')}")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a model on a benchmark and score it")
    add_dataset_flags(p)
    add_task_flags(p, "the model's")
    add_inference_flags(p)
    p.add_argument("--images-per-batch", type=int, default=0,
                   help="images whose members are predicted in one call (0 = auto: 1 on the CPU, "
                        "8 // N on a GPU)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that decode samples while the model runs (0 = in line)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<settings>); an existing one of the "
                   "same benchmark and split resumes from its cache and its results are scored anew, one of "
                   "another benchmark or split is refused")
    p.add_argument("--uncertainty", action="store_true",
                   help="also score the ensemble spread by sparsification (AUSE, AURG; needs --ensemble 2 or "
                        "more): uncertainty.csv, summary.json's uncertainty entry, sparsification.png")
    p.set_defaults(func=run)


def model_task(args) -> str:
    """The task of the model the flags name, before it is loaded: ``--task``; else, without
    ``--model``, depth (the bundled tiny checkpoint); else what the model's family says
    (``task_of``) or its ``model_index.json`` (``prediction_type``); depth when nothing says."""
    if args.task:
        return args.task
    if not args.model:
        return "depth"
    from marigold_bench.inference.families import family_for

    try:
        family = family_for(args.model)
    except BenchError:
        family = None  # not (yet) a model a family runs: its files may still say; build_predictor reports it
    if hasattr(family, "task_of"):
        return family.task_of(args.model)
    import json

    from marigold_bench.model.load import resolve_checkpoint
    try:
        folder, _ = resolve_checkpoint(args.model)
        with open(os.path.join(folder, "model_index.json")) as f:
            kind = json.load(f).get("prediction_type")
    except (BenchError, OSError, ValueError):
        return "depth"
    return "normals" if kind == "normals" else "depth"


def predictor_task(predictor) -> str:
    """What a predictor scores (`marigold_bench.inference.interface`): ``task``, default depth."""
    return getattr(predictor, "task", None) or predictor.settings.get("task") or "depth"


def predictor_frame(predictor) -> str | None:
    """The camera frame a normals predictor declares (``frame``), else None."""
    return getattr(predictor, "frame", None) or predictor.settings.get("frame")


def run(args) -> int:
    from marigold_bench.eval.loop import run_predictor

    task = model_task(args)
    if args.model is None and task == "normals":  # the embedded normals default
        args.model = default_normals_model()
    dataset = open_dataset(args, task)
    check_run_dir(args.out, dataset)  # a file, unwritable, another command's or a fuller run's folder
    check_scoring_names(args, task)  # before a model is loaded
    if getattr(args, "uncertainty", False) and args.ensemble < 2:
        raise BenchError(f"--uncertainty needs an ensemble: --ensemble {args.ensemble} gives one member per "
                         "image, so there is no spread to rank pixels by (use --ensemble 2 or more)")
    predictor = build_predictor(args, processing_res=dataset.protocol.processing_res,
                                seed=getattr(dataset.protocol, "seed", None))
    if predictor_task(predictor) != task:
        raise BenchError(f"{predictor.settings.get('model')} predicts {predictor_task(predictor)}, not {task}: "
                         f"its output cannot be scored against {dataset.protocol.name}'s {task} ground truth "
                         f"(drop --task, or use --task {predictor_task(predictor)})")
    if getattr(args, "uncertainty", False):  # before inference: the model must merge as Marigold does
        from marigold_bench.eval.uncertainty import check_ensemble

        check_ensemble({"settings": predictor.settings, "task": task})
    scoring = scoring_for(args, dataset, declared_output_space(predictor), predictor_frame(predictor))
    out = args.out or default_run_dir(args.dataset, predictor.settings)
    summary = run_predictor(dataset, predictor, out, skip_missing=args.skip_missing,
                            images_per_batch=args.images_per_batch, workers=args.workers,
                            score_device=args.score_device, scoring=scoring)
    if int(os.environ.get("RANK", "0")) == 0:  # one table per launch, not one per process
        print(summary_table(summary))
        print(f"run directory: {out}")
    refuse_empty(summary, out)
    if getattr(args, "uncertainty", False) and int(os.environ.get("RANK", "0")) == 0:
        from marigold_bench.commands.rescore import score_uncertainty
        from marigold_bench.eval.rescore import open_run

        cached = open_run(out, args.data_root, args.split)
        try:
            score_uncertainty(cached, scoring, out)
        finally:
            cached.close()
    return 0
