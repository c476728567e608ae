"""How sure is a number: bootstrap intervals of mean metrics and paired comparisons of runs.

A benchmark's number is the mean of a per-image metric over a few hundred images, so it carries
sampling noise. :func:`bootstrap_ci` gives the 95 % interval of such a mean by resampling images
(``scipy.stats.bootstrap``, fixed seed, so the same run always prints the same interval).

Two runs on the same images are best compared image by image: :func:`paired_comparison` takes
the per-image differences and reports their mean with a bootstrap interval, a paired t-test and
a Wilcoxon signed-rank test (which does not assume normal differences; per-image AbsRel is
skewed). :func:`compare_runs` does this for two run directories, on the samples ok in both.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from marigold_bench.errors import BenchError
from marigold_bench.eval.metrics import METRIC_KEYS
from marigold_bench.report.rundir import RunDir, differences, recorded_choices, sample_set
from marigold_bench.tasks import METRICS, higher_is_better

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0

# scipy 1.15 renamed ``random_state`` to ``rng``; the package supports scipy from 1.10
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def _constant(x: np.ndarray) -> bool:
    """All values equal up to float round-off (a difference of two shifted copies, say)."""
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))))


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval over ``n`` values."""

    mean: float
    low: float
    high: float
    n: int

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


def bootstrap_ci(values, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, method: str = "BCa") -> Interval:
    """Bootstrap confidence interval of the mean of ``values``.

    Args:
        values: 1-D per-sample values (NaNs are an error: drop failed samples first).
        confidence: two-sided level, 0.95 for a 95 % interval.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling, so an interval is reproducible.
        method: ``"BCa"`` (bias-corrected, the default), ``"percentile"`` or ``"basic"``.

    Returns:
        :class:`Interval`; with fewer than two values the bounds are NaN, and with identical
        values the interval is that value (no spread to resample).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(x).any():
        raise ValueError("values contain NaN; keep only scored samples")
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, math.nan, math.nan, 1)
    if _constant(x):
        return Interval(mean, mean, mean, int(x.size))
    with warnings.catch_warnings():
        # BCa warns on heavily tied data; its interval is still the best available there
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        result = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method=method, vectorized=True, axis=-1,
                                 **{_RNG_KEYWORD: np.random.default_rng(seed)})
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)) and method != "percentile":
        return bootstrap_ci(x, confidence, n_resamples, seed, method="percentile")
    return Interval(mean, low, high, int(x.size))


def metric_intervals(run: RunDir, metrics=METRIC_KEYS, **kwargs) -> dict[str, Interval]:
    """Bootstrap interval of each mean metric of a run, over its ok samples."""
    frame = run.ok_samples()
    return {m: bootstrap_ci(frame[m].to_numpy(), **kwargs) for m in metrics if m in frame}


@dataclass(frozen=True)
class PairedResult:
    """Run B against run A on one metric, over the same ``n`` samples.

    ``difference`` is mean(B − A) with its bootstrap interval; ``t_p`` and ``wilcoxon_p`` are
    two-sided p-values; ``better`` is ``"A"``, ``"B"`` or ``None`` (no significant difference
    at ``alpha`` by both tests), read in the metric's direction.
    """

    metric: str
    n: int
    a: Interval
    b: Interval
    difference: Interval
    t_p: float
    wilcoxon_p: float
    better: str | None


def _paired_p_values(d: np.ndarray) -> tuple[float, float]:
    if np.all(d == 0):
        return 1.0, 1.0  # identical results: nothing to test
    if _constant(d):
        # a constant non-zero shift: t is infinite (scipy would lose precision); Wilcoxon still ranks it
        t_p = 0.0
    else:
        t_p = float(stats.ttest_rel(d, np.zeros_like(d)).pvalue)
    w_p = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return t_p, w_p


def paired_comparison(a, b, metric: str = "abs_rel", alpha: float = 0.05, confidence: float = 0.95,
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> PairedResult:
    """Compare per-sample values ``b`` against ``a`` (same samples, same order).

    Raises:
        ValueError: different lengths, NaNs, or fewer than two pairs.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError("a paired comparison needs at least two samples")
    d = b - a
    kwargs = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    t_p, w_p = _paired_p_values(d)
    better = None
    if max(t_p, w_p) < alpha:
        b_higher = d.mean() > 0
        better = "B" if b_higher == higher_is_better(metric) else "A"
    return PairedResult(metric, int(a.size), bootstrap_ci(a, **kwargs), bootstrap_ci(b, **kwargs),
                        bootstrap_ci(d, **kwargs), t_p, w_p, better)


@dataclass
class RunComparison:
    """:func:`compare_runs`' answer: one :class:`PairedResult` per metric and the sample counts."""

    results: list
    n_common: int
    n_ok_a: int
    n_ok_b: int
    n_total_a: int
    n_total_b: int
    protocol_differences: list
    #: how the runs' scoring differs (protocol, alignment, fit space); when it does, no
    #: result names a winner (``better`` is None): the numbers differ by how they were scored
    unranked: list = field(default_factory=list)


def ranking_protocol(summary: dict) -> dict:
    """What must be equal for two runs' numbers to be ranked: the evaluation protocol, the
    alignment and the space it is fitted in (none without an alignment)."""
    choices = recorded_choices(summary)
    return {"protocol": choices["protocol"], "alignment": choices["alignment"],
            "fit_space": None if choices["alignment"] == "none" else choices["fit_space"]}


def compare_runs(run_a: RunDir, run_b: RunDir, metrics=("abs_rel",), **kwargs) -> RunComparison:
    """Paired comparison of two runs of one dataset on the samples that are ok in both.

    Raises:
        BenchError: different datasets, an unknown metric, or fewer than two common samples.
        Runs scored under different protocols (`ranking_protocol`) are compared, but no
        result names a winner and ``unranked`` says why.
    """
    if run_a.dataset != run_b.dataset:
        raise BenchError(f"the runs are on different datasets ({run_a.path}: {run_a.dataset}, "
                         f"{run_b.path}: {run_b.dataset}); a paired comparison needs the same samples")
    ok_a, ok_b = run_a.ok_samples(), run_b.ok_samples()
    # the metrics of both runs' protocols (a moge run scores abs_rel and delta1, maybe boundary_f1)
    known = [m for m in METRICS if m in ok_a.columns and m in ok_b.columns]
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise BenchError(f"unknown metric(s) {', '.join(unknown)}; known in both runs: {', '.join(known)}")
    common = [sid for sid in ok_a.index if sid in ok_b.index]
    if len(common) < 2:
        raise BenchError(f"only {len(common)} sample(s) are ok in both runs; a paired comparison needs two or more")
    results = [paired_comparison(ok_a.loc[common, m].to_numpy(), ok_b.loc[common, m].to_numpy(), m, **kwargs)
               for m in metrics]
    # the same dataset under another protocol (fit space, crop) is allowed but worth saying
    protocol_diff = [line for line in differences(sample_set(run_a.summary), sample_set(run_b.summary), "A", "B")
                     if not line.startswith(("n_total", "max_samples"))]
    protocol_diff += [f"scoring {line}" for line in differences(recorded_choices(run_a.summary),
                                                                recorded_choices(run_b.summary), "A", "B")
                      if not line.startswith("fit_space")]  # fit_space: already in the sample set
    unranked = differences(ranking_protocol(run_a.summary), ranking_protocol(run_b.summary), "A", "B")
    if unranked:
        # identical predictions scored two ways would otherwise come out "B better"
        results = [replace(r, better=None) for r in results]
    return RunComparison(results, len(common), len(ok_a), len(ok_b),
                         len(run_a.per_sample()), len(run_b.per_sample()), protocol_diff, unranked)
