"""The docs' worked examples, run as a user would: a benchmark (``stairs``), a model family
(``flat``) and a protocol (``median-scale``), each one spec file in ``docs/examples/``, added
with ``--include`` (and, in a child process, as an installed package's entry points) and run
through ``run``, ``rescore``, ``table`` and ``leaderboard`` without touching the package.

Every number is worked out here from the examples' stated ground truth (row ``r`` of image
``k`` lies at ``1 + k/2 + r // 2`` metres; the crop keeps rows 1..6 and columns 1..10), never
read back from the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import mean, median

import pandas as pd
import pytest

from marigold_bench import plugins
from marigold_bench.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"


@pytest.fixture(autouse=True)
def _no_includes(monkeypatch):
    # set, then delete: monkeypatch restores the variable although include() writes os.environ
    monkeypatch.setenv(plugins.INCLUDE_ENV, "")
    monkeypatch.delenv(plugins.INCLUDE_ENV)


def rows_in_crop(k: int) -> list[float]:
    """The depths of image k's scored rows (1..6; each row has 10 scored pixels, so rows weigh
    alike): steps of two rows at 1 + k/2, +1, +2, +3 metres."""
    return [1 + 0.5 * k + r // 2 for r in range(1, 7)]


def abs_rel(pred: float, rows: list[float]) -> float:
    return mean(abs(pred - g) / g for g in rows)


def delta1(pred: float, rows: list[float]) -> float:
    return mean(1.0 if max(pred / g, g / pred) < 1.25 else 0.0 for g in rows)


def test_the_hand_model_of_the_example_benchmark_is_the_benchmark():
    """The ground truth the numbers below are worked out from is what the example serves."""
    import numpy as np

    main(["--include", str(EXAMPLES), "benchmarks", "--json"])  # adds the folder
    from marigold_bench.data import load_dataset

    ds = load_dataset("stairs")
    assert len(ds) == 4
    for k, item in enumerate(ds):
        valid = item["valid"]
        assert valid.sum() == 60 and not valid[0].any() and not valid[:, 0].any() and not valid[:, -1].any()
        assert sorted(np.unique(item["depth"][valid]).tolist()) == sorted(set(rows_in_crop(k)))
        assert not item["mask"][0, 0] and item["mask"][0, 1]  # no measurement there; no crop in mask


def test_run_rescore_table_and_leaderboard_with_the_three_examples(tmp_path, capsys):
    inc = ["--include", str(EXAMPLES)]
    run = tmp_path / "run"
    assert main([*inc, "run", "--dataset", "stairs", "--model", "flat:2", "--out", str(run)]) == 0
    # metric depth under the marigold protocol: scored as predicted (2 m lies inside the range);
    # per_sample.csv keeps 8 significant digits
    frame = pd.read_csv(run / "per_sample.csv")
    assert list(frame["id"]) == [f"flight_{k}" for k in range(4)] and set(frame["status"]) == {"ok"}
    for k, row in frame.iterrows():
        assert row["abs_rel"] == pytest.approx(abs_rel(2.0, rows_in_crop(k)), rel=1e-6)
        assert row["delta1"] == pytest.approx(delta1(2.0, rows_in_crop(k)), rel=1e-7, abs=1e-9)
        assert row["n_valid"] == 60 and row["scale"] == 1 and row["shift"] == 0
    summary = json.loads((run / "summary.json").read_text())
    expected = mean(abs_rel(2.0, rows_in_crop(k)) for k in range(4))
    assert summary["metrics"]["abs_rel"] == pytest.approx(expected, rel=1e-6)
    assert summary["settings"]["family"] == "flat" and summary["protocol"]["eval_mask"] == "stairs_inner"

    # the same predictions under the example protocol: scaled to the ground truth's median
    out = tmp_path / "median"
    assert main([*inc, "rescore", str(run), "--protocol", "median-scale", "--out", str(out)]) == 0
    rescored = pd.read_csv(out / "per_sample.csv")
    assert list(rescored.columns[:3]) == ["id", "abs_rel", "delta1"]
    for k, row in rescored.iterrows():
        m = median([g for g in rows_in_crop(k) for _ in range(10)])  # 60 pixels: mean of the 30th, 31st
        assert m == pytest.approx(2.5 + 0.5 * k)
        assert row["scale"] == pytest.approx(m / 2.0, rel=1e-7)
        assert row["abs_rel"] == pytest.approx(abs_rel(m, rows_in_crop(k)), rel=1e-6)
        assert row["delta1"] == pytest.approx(delta1(m, rows_in_crop(k)), rel=1e-7, abs=1e-9)
    scoring = json.loads((out / "summary.json").read_text())["scoring"]
    assert scoring["protocol"] == "median-scale" and scoring["alignment"] == "median"
    capsys.readouterr()

    # both runs in one table: one column group, a row per scoring (csv: AbsRel x100, 4 decimals)
    assert main([*inc, "table", str(run), str(out), "--format", "csv"]) == 0
    import io

    table = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("alignment")
    first = mean(abs_rel(2.0, rows_in_crop(k)) for k in range(4))
    second = mean(abs_rel(2.5 + 0.5 * k, rows_in_crop(k)) for k in range(4))
    assert table.loc["none", "stairs_abs_rel"] == pytest.approx(100 * first, abs=1e-4)
    assert table.loc["median-scale: median in depth", "stairs_abs_rel"] == pytest.approx(100 * second, abs=1e-4)

    # a leaderboard of two flat models, under the example protocol
    board = tmp_path / "board"
    assert main([*inc, "leaderboard", "--models", "flat:2,flat:3", "--datasets", "stairs",
                 "--protocol", "median-scale", "--out", str(board), "--format", "csv"]) == 0
    cells = pd.read_csv(board / "leaderboard.csv").set_index("method")
    # median scaling makes any constant the same prediction: both rows equal the hand value
    by_hand = mean(abs_rel(2.5 + 0.5 * k, rows_in_crop(k)) for k in range(4))
    for method in ("flat:2, N=1", "flat:3, N=1"):
        assert cells.loc[method, "stairs_abs_rel"] == pytest.approx(100 * by_hand, abs=1e-4)
        assert cells.loc[method, "stairs_n"] == 4


DIST_INFO = """\
[marigold_bench.benchmarks]
stairs = mbdocs_stairs:SPEC

[marigold_bench.families]
flat = mbdocs_flat:FAMILY

[marigold_bench.protocols]
median-scale = mbdocs_median_scale:PROTOCOL
"""


def test_the_examples_as_an_installed_package_s_entry_points(tmp_path):
    """A child process with a dist-info folder on sys.path: no --include, the entry points alone."""
    site = tmp_path / "site"
    info = site / "mbdocs-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mbdocs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(DIST_INFO)
    for name in ("stairs", "flat", "median_scale"):
        shutil.copy(EXAMPLES / f"{name}.py", site / f"mbdocs_{name}.py")
    env = {k: v for k, v in os.environ.items() if k != plugins.INCLUDE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])

    def cli(*argv):
        done = subprocess.run([sys.executable, "-m", "marigold_bench.cli", *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    listed = {row["name"]: row for row in json.loads(cli("benchmarks", "--json"))}
    assert listed["stairs"]["origin"] == "plugin mbdocs (stairs = mbdocs_stairs:SPEC)"
    run, out = tmp_path / "run", tmp_path / "median"
    cli("run", "--dataset", "stairs", "--model", "flat:3", "--out", str(run))
    cli("rescore", str(run), "--protocol", "median-scale", "--out", str(out))
    ran = json.loads((run / "summary.json").read_text())
    assert ran["metrics"]["abs_rel"] == pytest.approx(mean(abs_rel(3.0, rows_in_crop(k)) for k in range(4)),
                                                      rel=1e-6)
    rescored = json.loads((out / "summary.json").read_text())
    assert rescored["metrics"]["abs_rel"] == pytest.approx(
        mean(abs_rel(2.5 + 0.5 * k, rows_in_crop(k)) for k in range(4)), rel=1e-6)
