"""Regression verdicts: a run's numbers against a stored baseline, for CI.

A baseline (``results/baselines/*.json``) stores what a known-good run measured and what must
hold for a new run to be comparable::

    {
      "dataset": "synthetic",
      "package_version": "0.1.0",          # marigold_bench version that made the run
      "settings": {...},                    # inference settings that change numbers
      "sample_set": {...},                  # n_total and the resolved protocol (no local paths)
      "run_args": ["--dataset", ...],       # the `marigold-bench run` flags that reproduce it
      "n": 8,                               # samples scored ok
      "metrics": {"abs_rel": 0.37, ...},   # fractions, as in summary.json
      "tolerances": {"abs_rel": 0.002, ...} # absolute, per metric
    }

:func:`check` answers with a :class:`Verdict` whose exit code is 0 (equal within tolerance or
better), 1 (a metric worse than its tolerance allows, in its own direction: higher is better for
δ, lower for errors; or fewer samples scored) or 2 (settings, samples or package version differ:
the numbers are not comparable, and the differences are listed). A baseline or tolerance that
cannot judge (NaN or missing numbers, no ``n``, another shape) is bad input, also 2: never a
pass, and never 1, which CI reads as a regression. :func:`make_baseline` writes one from a run
on purpose (``regress --update``), never from a run that scored nothing.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from tabulate import tabulate

from marigold_bench.errors import BenchError
from marigold_bench.report.rundir import RunDir, recorded_choices, result_settings, sample_set
from marigold_bench.tasks import METRICS, display_value, higher_is_better

#: exit codes of `marigold-bench regress`
OK, REGRESSED, MISMATCH = 0, 1, 2

#: starting tolerances (absolute, in summary.json units) for a new baseline; edit the file to tune
DEFAULT_TOLERANCES = {
    "abs_rel": 0.002, "sq_rel": 0.01, "rmse": 0.02, "rmse_log": 0.005, "log10": 0.002,
    "delta1": 0.005, "delta2": 0.005, "delta3": 0.005, "i_rmse": 0.005, "silog_rmse": 0.5,
    # surface normals: degrees, and percentages already in percent
    "mean_angle": 0.05, "median_angle": 0.05, "rmse_angle": 0.05, "pct_5": 0.1, "pct_7_5": 0.1,
    "pct_11_25": 0.1, "pct_22_5": 0.1, "pct_30": 0.1,
}

#: `marigold-bench run` flag of each setting, to write a baseline's reproducing command
RUN_FLAGS = {"steps": "--steps", "ensemble": "--ensemble", "seed": "--seed",
             "timestep_spacing": "--timestep-spacing", "noise": "--noise",
             "processing_res": "--processing-res", "precision": "--precision",
             "ensembling": "--ensembling"}


def portable_settings(settings: dict) -> dict:
    """Settings that change numbers, with absolute paths reduced to their last component.

    A checkpoint lives at a different absolute path on every machine (the bundled one inside
    the install); its folder name is what identifies it across machines.
    """
    out = {}
    for key, value in result_settings(settings).items():
        if isinstance(value, str) and os.path.isabs(value):
            value = os.path.basename(os.path.normpath(value))
        out[key] = value
    return json.loads(json.dumps(out, default=str))


def run_version(run: RunDir) -> str | None:
    return (run.summary.get("versions") or {}).get("marigold_bench")


def parse_tolerances(text: str | None) -> dict[str, float]:
    """``"0.001"`` (every metric) or ``"abs_rel=0.001,delta1=0.002"`` -> ``{metric: tolerance}``.

    A tolerance must be a finite number >= 0: a NaN one passes every comparison (``gain < -nan``
    is never true), an infinite one accepts anything, a negative one fails equal numbers.
    """
    if not text:
        return {}
    try:
        if "=" not in text:
            out = dict.fromkeys(METRICS, float(text))
        else:
            pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
            out = {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise BenchError(f"--tolerance {text!r}: give one number or metric=number pairs, "
                         "e.g. abs_rel=0.001,delta1=0.002") from None
    unknown = [k for k in out if k not in METRICS]
    if unknown:
        raise BenchError(f"--tolerance: unknown metric(s) {', '.join(unknown)}")
    if not all(math.isfinite(v) and v >= 0 for v in out.values()):
        raise BenchError(f"--tolerance {text!r}: tolerances are absolute and must be finite numbers >= 0")
    return out


def _is_number(value) -> bool:
    # JSON true/false load as bool, a subclass of int: not a metric value
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def baseline_problem(baseline) -> str | None:
    """What makes ``baseline`` unable to judge a run (None: nothing).

    A baseline with NaN metrics, without ``n``, with no metrics or of another shape would
    otherwise pass real regressions (a NaN compares false with everything) or crash, which
    CI reads as a regression (exit 1); it is bad input (exit 2) instead.
    """
    if not isinstance(baseline, dict):
        return f"not a JSON object (got {type(baseline).__name__})"
    missing = [k for k in ("dataset", "settings", "metrics", "tolerances", "package_version", "n")
               if k not in baseline]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(baseline["dataset"], str):
        return "dataset must be a benchmark name"
    for key in ("settings", "tolerances") + tuple(k for k in ("sample_set", "scoring") if k in baseline):
        if not isinstance(baseline[key], dict):
            return f"{key} must be an object, got {type(baseline[key]).__name__}"
    n = baseline["n"]
    if not _is_number(n) or n != int(n) or n < 1:
        return f"n (samples scored) must be a whole number >= 1, got {n!r}"
    metrics = baseline["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        return "metrics must be a non-empty object of metric: number"
    for metric, value in metrics.items():
        if not _is_number(value) or not math.isfinite(value):
            return f"metric {metric} is {value!r}, not a finite number"
    for metric, value in baseline["tolerances"].items():
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            return f"tolerance of {metric} must be a finite number >= 0, got {value!r}"
    return None


def load_baseline(path: str | os.PathLike) -> dict:
    """Read and check a baseline file; any problem is a :class:`BenchError` naming it."""
    try:
        with open(path) as f:
            baseline = json.load(f)
    except FileNotFoundError:
        raise BenchError(f"baseline {path} not found; create it from a good run with --update") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"baseline {path}: cannot read it ({exc})") from None
    problem = baseline_problem(baseline)
    if problem:
        raise BenchError(f"baseline {path}: {problem}; rewrite it with --update from a good run")
    return baseline


def run_args(run: RunDir) -> list[str]:
    """`marigold-bench run` flags that reproduce the run's settings (the model left default)."""
    args = ["--dataset", run.dataset]
    max_samples = (run.summary.get("protocol") or {}).get("max_samples")
    if max_samples is not None:
        args += ["--max-samples", str(max_samples)]
    for key, flag in RUN_FLAGS.items():
        value = run.settings.get(key)
        if isinstance(value, dict):  # resolved ensembling settings: the flag takes the preset name
            value = value.get("preset")
        if value is not None:
            args += [flag, str(value)]
    return args


def make_baseline(run: RunDir, previous: dict | None = None, tolerances: dict | None = None) -> dict:
    """A baseline from ``run``: its numbers, settings and version; tolerances are kept from
    ``previous`` (or the defaults) and then overridden by ``tolerances``.

    Raises:
        BenchError: the run scored no sample or has a metric that is not a finite number (a
            baseline of NaN means would pass every later run).
    """
    kept = (previous or {}).get("tolerances") or DEFAULT_TOLERANCES
    metrics = {k: v for k, v in run.metrics.items() if k in METRICS}
    if run.n < 1 or not metrics:
        raise BenchError(f"{run.path} scored {run.n} samples; a baseline must come from a run that "
                         "scored some (see its per_sample.csv)")
    bad = [k for k, v in metrics.items() if not _is_number(v) or not math.isfinite(v)]
    if bad:
        raise BenchError(f"{run.path}: {', '.join(bad)} not a finite number; a baseline must come from "
                         "a run whose every metric is")
    return {
        "description": (previous or {}).get("description",
                                            f"CI regression baseline on {run.dataset}; regenerate with "
                                            "`marigold-bench regress --baseline THIS RUN_DIR --update`"),
        "dataset": run.dataset,
        "package_version": run_version(run),
        "settings": portable_settings(run.settings),
        "sample_set": sample_set(run.summary),
        "scoring": recorded_choices(run.summary),
        "run_args": run_args(run),
        "n": run.n,
        "metrics": metrics,
        "tolerances": {k: float({**kept, **(tolerances or {})}.get(k, DEFAULT_TOLERANCES.get(k, 0.0))) for k in metrics},
    }


def write_baseline(path: str | os.PathLike, baseline: dict) -> None:
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(json.dumps(baseline, indent=2, sort_keys=False) + "\n")


@dataclass
class Verdict:
    """The outcome of :func:`check`: ``code`` is the exit status, ``rows`` the compared metrics."""

    code: int
    mismatches: list = field(default_factory=list)
    rows: list = field(default_factory=list)  # dicts: metric, baseline, run, delta, tolerance, status

    @property
    def regressed(self) -> list:
        return [r["metric"] for r in self.rows if r["status"] == "REGRESSED"]

    @property
    def improved(self) -> list:
        return [r["metric"] for r in self.rows if r["status"] == "improved"]


def _mismatches(baseline: dict, run: RunDir) -> list[str]:
    lines = []
    if baseline["dataset"] != run.dataset:
        lines.append(f"dataset: baseline {baseline['dataset']!r} vs run {run.dataset!r}")
    if baseline["package_version"] != run_version(run):
        lines.append(f"package version: baseline made with marigold_bench {baseline['package_version']!r}, "
                     f"run with {run_version(run)!r}")
    for name, stored, now in (("setting", baseline["settings"], portable_settings(run.settings)),
                              ("sample set", baseline.get("sample_set"), sample_set(run.summary))):
        if stored is None:
            continue
        now = json.loads(json.dumps(now, default=str))
        for key in sorted(set(stored) | set(now)):
            if key != "dataset" and stored.get(key) != now.get(key):  # dataset: said above
                before, after = stored.get(key, "<absent>"), now.get(key, "<absent>")
                lines.append(f"{name} {key}: baseline {before!r} vs run {after!r}")
    # how the numbers were scored (protocol, alignment, ...); a baseline written before 0.3
    # recorded none and was scored as the marigold protocol scores depth predictions
    stored = baseline.get("scoring") or recorded_choices({"protocol": baseline.get("sample_set") or {},
                                                          "settings": baseline["settings"]})
    now = recorded_choices(run.summary)
    for key in sorted(set(stored) | set(now)):
        if stored.get(key) != now.get(key):
            lines.append(f"scoring {key}: baseline {stored.get(key, '<absent>')!r} vs run {now.get(key, '<absent>')!r}")
    missing = [m for m in baseline["metrics"] if m not in run.metrics and run.n > 0]
    if missing:
        lines.append(f"metrics missing from the run: {', '.join(missing)}")
    return lines


def _status(metric: str, stored: float, now: float, tolerance: float) -> str:
    if now is None or not math.isfinite(now):
        return "REGRESSED"
    gain = (now - stored) if higher_is_better(metric) else (stored - now)
    if gain < -tolerance:
        return "REGRESSED"
    return "improved" if gain > tolerance else "ok"


def check(baseline: dict, run: RunDir, tolerances: dict | None = None) -> Verdict:
    """Compare ``run`` with ``baseline``; ``tolerances`` override the stored ones.

    Raises:
        BenchError: a baseline that cannot judge (see `baseline_problem`).
    """
    problem = baseline_problem(baseline)
    if problem:
        raise BenchError(f"baseline: {problem}; rewrite it with --update from a good run")
    if not isinstance(run.summary.get("metrics"), dict) or not _is_number(run.summary.get("n")):
        raise BenchError(f"{run.path}/summary.json: metrics must be an object and n a number; "
                         "is this a run directory?")
    mismatches = _mismatches(baseline, run)
    if mismatches:
        return Verdict(MISMATCH, mismatches)
    tol = {**baseline["tolerances"], **(tolerances or {})}
    rows = []
    for metric, stored in baseline["metrics"].items():
        now = run.metrics.get(metric)
        t = float(tol.get(metric, DEFAULT_TOLERANCES.get(metric, 0.0)))
        rows.append({"metric": metric, "baseline": stored, "run": now,
                     "delta": None if now is None else now - stored, "tolerance": t,
                     "status": _status(metric, stored, now, t)})
    # a sample that stopped scoring is a regression even if the mean got better
    stored_n = int(baseline["n"])
    rows.append({"metric": "n", "baseline": stored_n, "run": run.n, "delta": run.n - stored_n,
                 "tolerance": 0, "status": "REGRESSED" if run.n < stored_n else
                 ("improved" if run.n > stored_n else "ok")})
    code = REGRESSED if any(r["status"] == "REGRESSED" for r in rows) else OK
    return Verdict(code, [], rows)


def format_verdict(verdict: Verdict) -> str:
    """The verdict as text: the differences, or a table of metrics (×100 where papers print so)."""
    if verdict.code == MISMATCH:
        return ("settings mismatch: the run is not comparable with the baseline:\n  "
                + "\n  ".join(verdict.mismatches)
                + "\nrerun with the baseline's settings, or regenerate the baseline with --update")
    table = []
    for r in verdict.rows:
        metric = r["metric"]
        if metric == "n":
            table.append(["n (ok samples)", "↑", r["baseline"], r["run"], f"{r['delta']:+d}", 0, r["status"]])
            continue
        scale = display_value(metric, 1.0)
        fmt = (lambda v: "nan" if v is None else f"{v * scale:.4f}")
        table.append([metric + (" ×100" if scale != 1 else ""), "↑" if higher_is_better(metric) else "↓",
                      fmt(r["baseline"]), fmt(r["run"]),
                      "nan" if r["delta"] is None else f"{r['delta'] * scale:+.4f}",
                      f"{r['tolerance'] * scale:.4f}", r["status"]])
    text = tabulate(table, headers=["metric", "better", "baseline", "run", "Δ", "tolerance", "status"],
                    tablefmt="github", disable_numparse=True)
    if verdict.regressed:
        text += f"\nREGRESSION: {', '.join(verdict.regressed)} worse than the baseline allows"
    elif verdict.improved:
        text += (f"\nno regression; improved beyond tolerance: {', '.join(verdict.improved)} "
                 "(use --update to make this the new baseline)")
    else:
        text += "\nno regression"
    return text
