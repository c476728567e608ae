"""``marigold-bench compare``: is run B better than run A? Paired tests on the same samples."""

from __future__ import annotations

import argparse
import math

from tabulate import tabulate

from marigold_bench.errors import BenchError
from marigold_bench.tasks import METRICS, display_value, metric_heading

#: what --metrics says when it is not given (a normals pair then gets its own defaults)
DEFAULT_METRICS = "abs_rel,delta1"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="paired comparison of two runs on the same samples",
        description="Compares run B with run A sample by sample on the samples scored ok in both: "
                    "each mean with its bootstrap 95% interval, the mean difference B − A with its "
                    "interval, a paired t-test and a Wilcoxon signed-rank test.")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--metrics", default=DEFAULT_METRICS, help="comma-separated metric keys")
    # table and leaderboard spell it --metrics; compare's old --metric stays accepted, undocumented
    p.add_argument("--metric", dest="metrics", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdict")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    p.set_defaults(func=run)


def _interval(metric: str, iv) -> str:
    if math.isnan(iv.low):
        return f"{display_value(metric, iv.mean):.3f}"
    return (f"{display_value(metric, iv.mean):.3f} [{display_value(metric, iv.low):.3f}, "
            f"{display_value(metric, iv.high):.3f}]")


def _difference(metric: str, iv) -> str:
    return (f"{display_value(metric, iv.mean):+.3f} [{display_value(metric, iv.low):+.3f}, "
            f"{display_value(metric, iv.high):+.3f}]")


def run(args) -> int:
    from marigold_bench.report.rundir import load_run
    from marigold_bench.report.stats import compare_runs

    from marigold_bench.commands.table import parse_metrics

    if not 0 < args.alpha < 1:
        raise BenchError("--alpha must lie between 0 and 1")
    if args.resamples < 1:
        raise BenchError("--resamples must be >= 1")
    if args.seed < 0:
        raise BenchError("--seed must be >= 0 (it seeds numpy's bootstrap generator)")
    metrics = parse_metrics(args.metrics)
    run_a, run_b = load_run(args.run_a), load_run(args.run_b)
    metrics = _metrics_of_task(run_a, run_b, metrics, asked=args.metrics != DEFAULT_METRICS)
    result = compare_runs(run_a, run_b, metrics, alpha=args.alpha, n_resamples=args.resamples, seed=args.seed)
    print(f"A: {run_a.path}\nB: {run_b.path}")
    # failed/skipped samples of either run, and samples only one run has, are left out
    out_a, out_b = result.n_total_a - result.n_common, result.n_total_b - result.n_common
    print(f"compared {result.n_common} samples ok in both runs "
          f"(A: {result.n_ok_a} of {result.n_total_a} ok, B: {result.n_ok_b} of {result.n_total_b} ok"
          + (f"; left out: {out_a} of A's samples, {out_b} of B's" if out_a or out_b else "") + ")")
    for line in result.protocol_differences:
        print(f"note: the runs differ in protocol: {line}")
    for name, one in (("A", run_a), ("B", run_b)):
        if one.summary.get("pooled"):  # per-image values are what can be paired; the summary pools
            print(f"note: {name}'s dataset metrics are pooled over pixels ({one.summary['pooled']}); the means "
                  "here are over its per-image values")
    _print_identities(run_a.summary, run_b.summary)
    if result.unranked:
        print("note: no winner is named: the runs were scored under different protocols ("
              + "; ".join(result.unranked) + "), so their numbers differ by how they were scored, "
              "not only by their predictions; score both alike (e.g. `marigold-bench rescore`) to rank them")
    rows = []
    for r in result.results:
        verdict = "no significant difference" if r.better is None else f"{r.better} better"
        if result.unranked:
            verdict = "not ranked (scored differently)"
        scaled = " ×100" if r.metric in METRICS and METRICS[r.metric].percent else ""
        rows.append([metric_heading(r.metric) + scaled, _interval(r.metric, r.a), _interval(r.metric, r.b),
                     _difference(r.metric, r.difference), f"{r.t_p:.3g}", f"{r.wilcoxon_p:.3g}", verdict])
    print(tabulate(rows, headers=["metric", "A mean [95% CI]", "B mean [95% CI]", "B − A [95% CI]",
                                  "paired t p", "Wilcoxon p", f"verdict (α={args.alpha:g})"],
                   tablefmt="github", disable_numparse=True))
    return 0


def _metrics_of_task(run_a, run_b, metrics: list[str], asked: bool = False) -> list[str]:
    """The metrics compared: runs of two tasks are refused; runs of a task none of the default
    metrics measures get that task's defaults (normals under the default abs_rel,delta1), while
    metrics the user ``asked`` for that do not measure the runs are refused."""
    from marigold_bench.report.tables import metrics_for_task, run_task

    task_a, task_b = run_task(run_a), run_task(run_b)
    if task_a != task_b:
        raise BenchError(f"{run_a.path} scores {task_a} and {run_b.path} {task_b}: their samples have no metric "
                         "in common, so they cannot be compared")
    if metrics and all(m in METRICS and METRICS[m].task != task_a for m in metrics):
        if asked:
            raise BenchError(f"--metrics {','.join(metrics)}: these measure {METRICS[metrics[0]].task}, and the "
                             f"runs are {task_a} runs (e.g. --metrics {','.join(metrics_for_task(task_a, []))})")
        return metrics_for_task(task_a, [])
    return metrics


def _print_identities(a: dict, b: dict) -> None:
    """Both runs' protocol id and hash, and every hash input that differs (in full)."""
    from marigold_bench.eval.identity import hash_differences, hash_label, hash_was_computed, identity

    ia, ib = identity(a), identity(b)
    if ia["protocol_hash"] == ib["protocol_hash"]:
        print(f"protocol: {ia['protocol_id']}, hash {ia['protocol_hash']} for both (comparable by construction)"
              + "".join(f"; {side}'s {hash_label(i)}" for side, i in (("A", ia), ("B", ib))
                        if hash_was_computed(i)))
        return
    print(f"protocol: A {ia['protocol_id']} {hash_label(ia)}, B {ib['protocol_id']} {hash_label(ib)}; "
          "the hashes differ in:")
    for line in hash_differences(a, b):
        print(f"  {line}")
