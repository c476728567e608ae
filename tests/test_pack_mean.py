"""MoGe's pack in tables: each benchmark's column, then the mean over benchmarks (MoGe averages per
benchmark, then over benchmarks), over only the benchmarks every row has, with a note saying so."""

from __future__ import annotations

import pytest

from fixtures_rundir import write_fake_run
from marigold_bench.report.rundir import load_run
from marigold_bench.report.tables import MEAN_COLUMN, build_table, render

SCORING = {"protocol": "moge", "output_space": "depth_affine_invariant", "alignment": "affine", "fit_space": "depth"}


def _run(tmp_path, model, dataset, **metrics):
    folder = tmp_path / f"{model}-{dataset.replace('/', '_')}"
    return load_run(write_fake_run(folder, dataset=dataset, metrics=metrics, n=3,
                                   settings={"model": model, "ensemble": 1}, scoring=SCORING))


def test_mean_over_the_benchmarks_every_row_has(tmp_path):
    runs = [_run(tmp_path, "a", "moge/nyu", abs_rel=0.10, delta1=0.90),
            _run(tmp_path, "a", "moge/gso", abs_rel=0.20, delta1=0.70),
            _run(tmp_path, "a", "moge/kitti", abs_rel=0.60, delta1=0.20),
            _run(tmp_path, "b", "moge/nyu", abs_rel=0.30, delta1=0.80),
            _run(tmp_path, "b", "moge/gso", abs_rel=0.10, delta1=0.60)]  # b has no KITTI run
    table = build_table(runs, ("abs_rel", "delta1"))
    assert table.datasets == ["moge/nyu", "moge/kitti", "moge/gso", MEAN_COLUMN]
    a, b = table.rows
    # KITTI is left out of every row's mean: b has none; values in percent as displayed
    assert a.values[(MEAN_COLUMN, "abs_rel")] == pytest.approx(15.0)
    assert a.values[(MEAN_COLUMN, "delta1")] == pytest.approx(80.0)
    assert b.values[(MEAN_COLUMN, "abs_rel")] == pytest.approx(20.0)
    text = render(table, "md")
    assert "| Mean AbsRel↓ | Mean δ1↑ |" in text
    assert ("Mean (MoGe pack) of AbsRel, δ1: the mean over NYUv2 (MoGe), GSO (MoGe); left out, as not every "
            "row has it: KITTI (MoGe); not in this table: ETH3D (MoGe)") in text
    assert "mean_abs_rel" in render(table, "csv")


def test_a_metric_only_some_rows_have_is_averaged_over_those_rows(tmp_path):
    runs = [_run(tmp_path, "depth", "moge/nyu", abs_rel=0.1), _run(tmp_path, "depth", "moge/gso", abs_rel=0.3),
            _run(tmp_path, "points", "moge/nyu", abs_rel=0.2, rel_point_scale=0.04),
            _run(tmp_path, "points", "moge/gso", abs_rel=0.4, rel_point_scale=0.08)]
    table = build_table(runs, ("abs_rel", "rel_point_scale"))
    depth, points = table.rows
    assert (MEAN_COLUMN, "rel_point_scale") not in depth.values
    assert points.values[(MEAN_COLUMN, "rel_point_scale")] == pytest.approx(6.0)
    assert depth.values[(MEAN_COLUMN, "abs_rel")] == pytest.approx(20.0)


def test_no_mean_column_outside_a_pack_or_with_one_benchmark(tmp_path):
    one = build_table([_run(tmp_path, "a", "moge/nyu", abs_rel=0.1)], ("abs_rel",))
    assert one.datasets == ["moge/nyu"] and not one.mean_notes
    other = build_table([_run(tmp_path, "a", "nyu", abs_rel=0.1), _run(tmp_path, "a", "kitti", abs_rel=0.2)],
                        ("abs_rel",))
    assert MEAN_COLUMN not in other.datasets
