"""`regress` exit codes: improved, equal, regressed, mismatched; --update and --tolerance."""

import copy
import json

import pytest

from fixtures_rundir import write_fake_run
from marigold_bench.cli import main
from marigold_bench.report.regress import check, make_baseline, parse_tolerances, portable_settings
from marigold_bench.report.rundir import load_run
from marigold_bench.errors import BenchError

METRICS = {"abs_rel": 0.100, "sq_rel": 0.05, "rmse": 0.40, "rmse_log": 0.12, "log10": 0.045,
           "delta1": 0.900, "delta2": 0.97, "delta3": 0.99, "i_rmse": 0.08, "silog_rmse": 11.0}
SUMMARY = {"dataset": "synthetic", "n": 8, "n_total": 8, "metrics": METRICS,
           "settings": {"model": "/opt/site-packages/marigold_bench/checkpoints/tiny", "steps": 1,
                        "ensemble": 1, "seed": 1234, "device": "cpu", "batch_size": "auto"},
           "protocol": {"name": "synthetic", "fit_space": "depth", "max_samples": 8, "root": None},
           "versions": {"marigold_bench": "0.1.0", "torch": "2.13.0"}}


def _run(tmp_path, name, metrics=None, n=8, settings=None, version="0.1.0"):
    summary = copy.deepcopy(SUMMARY)
    summary["metrics"].update(metrics or {})
    summary["settings"].update(settings or {})
    summary["n"], summary["versions"]["marigold_bench"] = n, version
    return _write(tmp_path / name, summary)


def _write(folder, summary):
    """``summary`` as a run directory, through the shared fixture."""
    fields = {k: v for k, v in summary.items() if k not in ("dataset", "protocol")}
    protocol = {k: v for k, v in summary["protocol"].items() if k != "name"}
    return write_fake_run(folder, dataset=summary["dataset"], protocol=protocol, **fields)


@pytest.fixture
def baseline(tmp_path):
    path = str(tmp_path / "baselines" / "b.json")
    assert main(["regress", "--baseline", path, _run(tmp_path, "good"), "--update"]) == 0
    return path


def test_exit_codes_of_equal_improved_regressed_and_mismatched_runs(tmp_path, baseline, capsys):
    equal = _run(tmp_path, "equal", {"abs_rel": 0.1015})  # within the 0.002 tolerance
    improved = _run(tmp_path, "improved", {"abs_rel": 0.090, "delta1": 0.93})
    worse_error = _run(tmp_path, "worse_error", {"abs_rel": 0.105})
    worse_delta = _run(tmp_path, "worse_delta", {"delta1": 0.89})
    fewer = _run(tmp_path, "fewer", {"abs_rel": 0.09}, n=7)  # better mean, but a sample stopped scoring
    other_settings = _run(tmp_path, "other", {"abs_rel": 0.2}, settings={"steps": 4, "model": "/x/big"})
    codes = {name: main(["regress", "--baseline", baseline, path]) for name, path in
             [("equal", equal), ("improved", improved), ("worse_error", worse_error),
              ("worse_delta", worse_delta), ("fewer", fewer), ("other", other_settings)]}
    assert codes == {"equal": 0, "improved": 0, "worse_error": 1, "worse_delta": 1, "fewer": 1, "other": 2}
    out = capsys.readouterr().out
    assert "improved beyond tolerance: abs_rel, delta1 (use --update" in out
    assert "REGRESSION: abs_rel worse than the baseline allows" in out
    assert "REGRESSION: delta1 worse" in out and "REGRESSION: n worse" in out
    assert "setting steps: baseline 1 vs run 4" in out and "setting model: baseline 'tiny' vs run 'big'" in out


def test_direction_is_per_metric(tmp_path, baseline):
    stored = json.loads(open(baseline).read())
    # higher δ1 and lower AbsRel are gains; the opposite are losses
    up = check(stored, load_run(_run(tmp_path, "up", {"delta1": 0.95, "abs_rel": 0.05})))
    down = check(stored, load_run(_run(tmp_path, "down", {"delta1": 0.85, "abs_rel": 0.15})))
    assert (up.code, up.improved, up.regressed) == (0, ["abs_rel", "delta1"], [])
    assert (down.code, down.regressed) == (1, ["abs_rel", "delta1"])


def test_baseline_of_another_version_or_sample_set_is_a_mismatch(tmp_path, baseline, capsys):
    newer = _run(tmp_path, "newer", version="0.2.0")
    assert main(["regress", "--baseline", baseline, newer]) == 2
    out = capsys.readouterr().out
    assert "package version: baseline made with marigold_bench '0.1.0', run with '0.2.0'" in out
    stored = json.loads(open(baseline).read())
    more = copy.deepcopy(SUMMARY)
    more["protocol"]["max_samples"], more["n_total"] = 16, 16
    verdict = check(stored, load_run(_write(tmp_path / "more", more)))
    assert verdict.code == 2 and "sample set max_samples: baseline 8 vs run 16" in verdict.mismatches
    # only the folder name of a checkpoint path counts, runtime settings not at all
    assert portable_settings({"model": "/a/b/tiny", "device": "cuda", "steps": 1}) == {"model": "tiny", "steps": 1}


def test_tolerance_flag_and_update(tmp_path, baseline, capsys):
    worse = _run(tmp_path, "worse", {"abs_rel": 0.105})
    assert main(["regress", "--baseline", baseline, worse, "--tolerance", "abs_rel=0.01"]) == 0
    assert main(["regress", "--baseline", baseline, worse, "--tolerance", "0.001"]) == 1
    # --update makes the worse run the reference on purpose; stored tolerances are kept
    before = json.loads(open(baseline).read())
    assert main(["regress", "--baseline", baseline, worse, "--update"]) == 0
    after = json.loads(open(baseline).read())
    assert after["metrics"]["abs_rel"] == 0.105 and after["tolerances"] == before["tolerances"]
    assert after["run_args"] == ["--dataset", "synthetic", "--max-samples", "8", "--steps", "1",
                                 "--ensemble", "1", "--seed", "1234"]
    assert main(["regress", "--baseline", baseline, worse]) == 0
    assert main(["regress", "--baseline", str(tmp_path / "none.json"), worse]) == 2
    assert main(["regress", "--baseline", baseline, worse, "--tolerance", "abs_rel=x"]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(BenchError, match="unknown metric"):
        parse_tolerances("accuracy=0.1")
    assert make_baseline(load_run(worse), tolerances={"abs_rel": 0.5})["tolerances"]["abs_rel"] == 0.5
