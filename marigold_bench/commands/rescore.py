"""``marigold-bench rescore``: score a finished run's cached predictions again, no model loaded.

One protocol and alignment writes a run folder (``per_sample.csv``, ``summary.json``) to
``--out``; comma-separated lists (``--protocol marigold,moge --alignment affine,scale,median``)
write the protocol-sensitivity table (``sensitivity.md``, ``sensitivity.csv``) and one run
folder per combination under ``--out``, and print the table.
"""

from __future__ import annotations

import os

from marigold_bench.errors import BenchError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "rescore", help="score a finished run's cached predictions under another protocol",
        description="Reads RUN_DIR's summary.json and predictions.h5, reloads the ground truth the run "
                    "recorded (or --data-root/--split) and scores every cached prediction again. With "
                    "the run's own protocol it reproduces its per_sample.csv. Lists of protocols and/or "
                    "alignments give one table of AbsRel and δ1 with bootstrap 95% intervals, one row "
                    "per protocol × alignment.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--protocol", default=None, metavar="P[,P...]",
                   help="protocol(s) (default: the run's own; see `marigold-bench protocols`)")
    p.add_argument("--alignment", default=None, metavar="A[,A...]",
                   help="affine | scale | median | none, or a list (default: the run's own, or the "
                        "protocol's choice for the output space)")
    p.add_argument("--fit-space", choices=("depth", "disparity"), default=None,
                   help="space of the fit (default: the alignment's choice for the output space)")
    p.add_argument("--output-space", default=None, metavar="S",
                   help="what the cached predictions mean (default: what the run recorded)")
    p.add_argument("--boundary-f1", type=int, default=None, metavar="R",
                   help="add a boundary-F1 column of radius R (1, 2, 3; 0: none)")
    p.add_argument("--data-root", default=None, help="where the ground truth is (default: the run's)")
    p.add_argument("--split", default=None, help="split file (default: the run's)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples of the table")
    p.add_argument("--out", required=True, help="folder for the rescored run (or the table and its runs): new, "
                   "empty, or an earlier rescore of the same run of the same kind (one scoring, or a table), "
                   "which is replaced")
    p.add_argument("--uncertainty", action="store_true",
                   help="also score the ensemble spread by sparsification (AUSE, AURG; from the cached members, "
                        "no model): uncertainty.csv, summary.json's uncertainty entry, sparsification.png")
    p.set_defaults(func=run)


def run(args) -> int:
    from marigold_bench.eval.protocols import ALIGNMENTS, PROTOCOLS_BY_TASK, parse_list
    from marigold_bench.eval.rescore import Undefined, open_run, rescore_run, resolve_for_run
    from marigold_bench.eval.rundir import recorded_choices

    # any task's names here; the run's task decides which of them scores it (others are refused)
    known = list(dict.fromkeys(name for registry in PROTOCOLS_BY_TASK.values() for name in registry))
    protocols = parse_list(args.protocol, known, "protocol") or [None]
    alignments = parse_list(args.alignment, ALIGNMENTS, "alignment") or [None]
    if args.resamples < 1:
        raise BenchError("--resamples must be >= 1")
    cached = open_run(args.run_dir, args.data_root, args.split)
    try:
        # every combination is resolved (and refused) before any scoring or writing; in a table,
        # a pair a protocol does not define (moge: no scale fit of disparity) or the run's output
        # space cannot take (none on affine-invariant depth) is a marked row
        entries = []
        for p in protocols:
            for a in alignments:
                try:
                    entries.append(resolve_for_run(cached, p, a, args.fit_space, args.output_space,
                                                   args.boundary_f1))
                except BenchError as exc:  # UndefinedAlignmentError among them
                    if len(protocols) * len(alignments) == 1:
                        raise
                    entries.append(Undefined(p or recorded_choices(cached.summary)["protocol"], a, str(exc)))
        scorings = [e for e in entries if not isinstance(e, Undefined)]
        if args.uncertainty and len(entries) > 1:
            raise BenchError("--uncertainty scores one protocol at a time; give one --protocol and --alignment")
        if args.uncertainty:
            from marigold_bench.eval.uncertainty import check_ensemble
            check_ensemble(cached.summary)  # a run with one member is refused before anything is written
        if len(entries) == 1:
            summary = rescore_run(cached, scorings[0], args.out, progress=True)
            if args.uncertainty:
                summary = score_uncertainty(cached, scorings[0], args.out)
            from marigold_bench.commands.common import summary_table
            print(summary_table(summary))
            s = summary["scoring"]
            print(f"rescored under {s['protocol']} ({s['alignment']} in {s['fit_space']}): {args.out}")
            return 0
        if not scorings:
            raise BenchError("none of the asked combinations is defined: " + "; ".join(e.message for e in entries))
        from marigold_bench.report.sensitivity import render_sensitivity

        frame = sensitivity(cached, entries, args.out, n_resamples=args.resamples)
        print(render_sensitivity(frame, cached))
        print(f"table and one run folder per row: {args.out} (sensitivity.md, sensitivity.csv)")
        return 0
    finally:
        cached.close()


def sensitivity(cached, entries: list, out: str, n_resamples: int = 10_000, seed: int = 0):
    """Score ``cached`` under every defined entry (the run loop), then write one run folder per
    combination under ``out`` and the table (``sensitivity.md``, ``sensitivity.csv``); returns
    the table as a frame. ``entries`` are resolved scorings or ``Undefined`` rows, in table
    order. All scoring is done before anything is written."""
    from marigold_bench.eval.rescore import Undefined, check_out, combination_name, score_cached, write_combinations
    from marigold_bench.report.sensitivity import METRICS_BY_TASK, sensitivity_frame, write_sensitivity

    check_out(cached, out, table=True)
    scorings = [e for e in entries if not isinstance(e, Undefined)]
    names = [combination_name(s) for s in scorings]
    if len(set(names)) != len(names):
        raise BenchError("the same protocol and alignment is asked for twice")
    results, _ = score_cached(cached, scorings, progress=True)
    by_name = dict(zip(names, results))
    rows = [{"protocol": e.protocol, "alignment": e.alignment, "fit_space": "", "note": e.message}
            if isinstance(e, Undefined) else
            {"protocol": e.protocol, "alignment": e.alignment, "fit_space": e.fit_space,
             "records": by_name[combination_name(e)], "pooled": e.definition.pooled} for e in entries]
    frame = sensitivity_frame(rows, len(cached.dataset), n_resamples=n_resamples, seed=seed,
                              metrics=METRICS_BY_TASK[cached.summary.get("task") or "depth"])
    write_combinations(cached, out, scorings, results)
    write_sensitivity(frame, out, cached)
    return frame


def score_uncertainty(cached, scoring, out: str) -> dict:
    """Score the ensemble spread of a finished run (``--uncertainty`` of run and rescore), write
    ``uncertainty.csv``, the summary's ``uncertainty`` entry and ``sparsification.png``, print
    the means; returns the updated summary."""
    from marigold_bench.eval.rundir import SPARSIFICATION, load_run
    from marigold_bench.eval.uncertainty import score_run_uncertainty, write_uncertainty
    from marigold_bench.report.plots import sparsification_plot

    records, part = score_run_uncertainty(cached, scoring)
    write_uncertainty(out, records, part)
    summary = load_run(out).summary
    sparsification_plot(summary, os.path.join(out, SPARSIFICATION))
    means = ", ".join(f"{k} {v:.4g}" for k, v in part["metrics"].items())
    print(f"uncertainty ({part['ranking']}, {part['n']}/{part['n_total']} samples): {means}")
    return summary
