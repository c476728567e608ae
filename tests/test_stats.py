"""Bootstrap intervals and paired comparisons: coverage, power, null behaviour, run handling."""

import numpy as np
import pytest

from fixtures_rundir import write_fake_run
from marigold_bench.cli import main
from marigold_bench.errors import BenchError
from marigold_bench.report.rundir import load_run
from marigold_bench.report.stats import bootstrap_ci, compare_runs, paired_comparison


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    # per-image AbsRel is skewed: draw from a log-normal whose mean is known exactly
    rng = np.random.default_rng(0)
    mu, sigma = np.log(0.06), 0.4
    true_mean = np.exp(mu + sigma**2 / 2)
    covered = sum(bootstrap_ci(rng.lognormal(mu, sigma, 60), n_resamples=2000, seed=i).covers(true_mean)
                  for i in range(100))
    assert covered >= 90


def test_bootstrap_interval_is_reproducible_and_handles_edge_cases():
    x = np.random.default_rng(1).normal(size=30)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    iv = bootstrap_ci(x)
    assert iv.low < x.mean() < iv.high and iv.n == 30
    assert bootstrap_ci([0.2, 0.2, 0.2]) == bootstrap_ci([0.2, 0.2, 0.2])  # no spread: the value itself
    assert bootstrap_ci([0.2, 0.2, 0.2]).low == pytest.approx(0.2)
    assert np.isnan(bootstrap_ci([0.5]).low)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.1, np.nan])


def test_paired_test_detects_a_known_shift_and_not_a_null_one():
    rng = np.random.default_rng(7)
    a = rng.lognormal(np.log(0.06), 0.4, 80)
    shifted = a + 0.004 + rng.normal(0, 0.004, 80)  # B's error is higher on most images
    result = paired_comparison(a, shifted, "abs_rel")
    assert result.t_p < 1e-6 and result.wilcoxon_p < 1e-6 and result.better == "A"
    assert result.difference.covers(0.004) and not result.difference.covers(0.0)
    null = paired_comparison(a, a + rng.normal(0, 0.004, 80), "abs_rel")
    assert null.t_p > 0.05 and null.wilcoxon_p > 0.05 and null.better is None
    assert null.difference.covers(0.0)
    # direction: for δ1 higher is better, so the same shift makes B the better run
    assert paired_comparison(a, shifted, "delta1").better == "B"
    same = paired_comparison(a, a.copy(), "abs_rel")
    assert (same.t_p, same.wilcoxon_p, same.better) == (1.0, 1.0, None)


def _write_run(folder, dataset, values, statuses=None):
    statuses = statuses or ["ok"] * len(values)
    records = [{"id": f"s{i:02d}", "abs_rel": v if st == "ok" else np.nan,
                "delta1": 1 - v if st == "ok" else np.nan, "status": st}
               for i, (v, st) in enumerate(zip(values, statuses))]
    return write_fake_run(folder, records, dataset=dataset, settings={"model": folder.name},
                          protocol={"fit_space": "depth"})


def test_compare_uses_only_samples_ok_in_both(tmp_path, capsys):
    rng = np.random.default_rng(3)
    base = rng.uniform(0.05, 0.15, 20)
    a = _write_run(tmp_path / "a", "nyu", base, ["ok"] * 18 + ["failed", "ok"])
    b = _write_run(tmp_path / "b", "nyu", base - 0.01, ["skipped"] + ["ok"] * 19)
    result = compare_runs(load_run(a), load_run(b), ["abs_rel"])
    assert (result.n_common, result.n_ok_a, result.n_ok_b) == (18, 19, 19)
    assert result.results[0].difference.mean == pytest.approx(-0.01) and result.results[0].better == "B"

    assert main(["compare", a, b, "--metric", "abs_rel,delta1", "--resamples", "2000"]) == 0
    out = capsys.readouterr().out
    assert "compared 18 samples ok in both runs (A: 19 of 20 ok, B: 19 of 20 ok" in out
    assert "B better" in out and "-1.000 [" in out  # AbsRel ×100: one point lower in B


def test_compare_refuses_runs_on_different_datasets(tmp_path, capsys):
    a = _write_run(tmp_path / "a", "nyu", [0.1, 0.2, 0.3])
    b = _write_run(tmp_path / "b", "kitti", [0.1, 0.2, 0.3])
    with pytest.raises(BenchError, match="different datasets"):
        compare_runs(load_run(a), load_run(b))
    assert main(["compare", a, b]) == 2
    assert "different datasets" in capsys.readouterr().err
    c = _write_run(tmp_path / "c", "nyu", [0.1, 0.2, 0.3], ["ok", "failed", "failed"])
    with pytest.raises(BenchError, match="only 1 sample"):
        compare_runs(load_run(a), load_run(c))
