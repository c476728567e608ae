"""``marigold-bench regress``: check a run against a stored baseline; exit 1 on a regression."""

from __future__ import annotations

import os
import sys

from marigold_bench.errors import BenchError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "regress", help="compare a run with a stored baseline (CI)",
        description="Exit codes: 0 no regression (equal within tolerance or better), 1 a metric "
                    "worse than its tolerance allows (higher is better for δ, lower for errors), "
                    "2 settings, samples or package version differ from the baseline's, or the baseline "
                    "or --tolerance cannot judge (NaN or missing numbers, another shape).")
    p.add_argument("--baseline", required=True, help="baseline JSON, e.g. results/baselines/synthetic-tiny.json")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--tolerance", default=None,
                   help="absolute tolerance for every metric (0.001) or per metric "
                        "(abs_rel=0.001,delta1=0.002); overrides the baseline's, stored with --update")
    p.add_argument("--update", action="store_true",
                   help="rewrite the baseline from this run (deliberately: its numbers become the reference)")
    p.set_defaults(func=run)


def _refuse_unchecked(tolerances: dict, baseline: dict) -> None:
    """A --tolerance for a metric the baseline does not check would be silently ignored."""
    unchecked = sorted(set(tolerances) - set(baseline.get("metrics") or {}))
    if unchecked:
        raise BenchError(f"--tolerance {', '.join(unchecked)}: the baseline does not check "
                         f"{'it' if len(unchecked) == 1 else 'them'} (it checks "
                         f"{', '.join(sorted(baseline.get('metrics') or {}))})")


def run(args) -> int:
    from marigold_bench.eval.outdir import check_writable_file
    from marigold_bench.report.regress import (check, format_verdict, load_baseline, make_baseline,
                                               parse_tolerances, write_baseline)
    from marigold_bench.report.rundir import load_run

    tolerances = parse_tolerances(args.tolerance)
    if args.update:  # the file it rewrites: a folder, under a file, read-only is said first
        check_writable_file(args.baseline, "--baseline")
    run_dir = load_run(args.run_dir)
    if args.update:
        previous = None
        if os.path.isfile(args.baseline):
            try:
                previous = load_baseline(args.baseline)
            except BenchError as exc:
                # --update is how a broken baseline is repaired: start afresh rather than keep
                # its (maybe NaN) tolerances or refuse the repair
                print(f"marigold-bench regress: ignoring the previous baseline ({exc}); writing a "
                      "fresh one with the default tolerances", file=sys.stderr)
        baseline = make_baseline(run_dir, previous, tolerances)
        write_baseline(args.baseline, baseline)
        print(f"baseline {args.baseline} {'rewritten' if previous else 'written'} from {args.run_dir} "
              f"({baseline['dataset']}, n={baseline['n']}, marigold_bench {baseline['package_version']})")
        return 0
    baseline = load_baseline(args.baseline)
    if args.tolerance and "=" in args.tolerance:   # one number applies to whatever the baseline checks
        _refuse_unchecked(tolerances, baseline)
    verdict = check(baseline, run_dir, tolerances)
    print(format_verdict(verdict))
    return verdict.code
