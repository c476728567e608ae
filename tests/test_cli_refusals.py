"""Requests a command would have silently ignored, half-honoured or answered with a traceback
(found by an audit of every sub-command): each is now a one-line error (exit 2) given before
any work starts, and leaves nothing behind."""

from __future__ import annotations

import argparse

import pytest

from marigold_bench.cli import main
from marigold_bench.errors import BenchError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-member depth run and a normals run, two samples each (compare needs two)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["run", "--dataset", "synthetic", "--max-samples", "2", "--steps", "1", "--ensemble", "2",
                 "--out", str(root / "depth")]) == 0
    assert main(["run", "--dataset", "synthetic", "--task", "normals", "--max-samples", "2", "--steps", "1",
                 "--out", str(root / "normals")]) == 0
    return root


def _refused(argv, capsys, *texts):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in texts:
        assert text in err, err
    return err


def test_metric_lists_are_checked_by_every_command_that_takes_them(runs, tmp_path, capsys):
    depth = str(runs / "depth")
    _refused(["leaderboard", "--models", "tiny", "--datasets", "synthetic", "--max-samples", "1", "--metrics",
              "bogus", "--out", str(tmp_path / "lb")], capsys, "unknown metric(s) bogus")
    assert not (tmp_path / "lb").exists()
    _refused(["compare", depth, depth, "--metrics", " , "], capsys, "--metrics is empty")
    _refused(["compare", depth, depth, "--metrics", "bogus"], capsys, "unknown metric(s) bogus")
    # asked for explicitly, a normals metric of two depth runs is refused, not swapped for defaults
    _refused(["compare", depth, depth, "--metrics", "mean_angle"], capsys, "these measure normals",
             "depth runs")
    _refused(["compare", depth, depth, "--resamples", "0"], capsys, "--resamples must be >= 1")
    _refused(["compare", depth, depth, "--seed", "-1"], capsys, "--seed must be >= 0")


def test_a_normals_pair_still_gets_its_own_defaults_under_the_default_metrics(runs, capsys):
    normals = str(runs / "normals")
    capsys.readouterr()
    assert main(["compare", normals, normals]) == 0
    assert "mean" in capsys.readouterr().out


def test_ablate_refuses_normals_and_flags_its_study_would_overwrite(tmp_path, capsys):
    out = str(tmp_path / "ab")
    common = ["ablate", "--seeds", "1", "--max-samples", "1", "--steps", "1", "--out", out]
    _refused(common + ["--study", "ensemble", "--model", "tiny-normals"], capsys, "tiny-normals predicts normals")
    _refused(common + ["--study", "ensemble", "--dataset", "synthetic-normals"], capsys,
             "synthetic-normals is the normals ground truth of synthetic")
    _refused(common + ["--study", "ensemble", "--values", ""], capsys, "--values is empty")
    _refused(["ablate", "--study", "ensemble", "--ensemble", "3", "--out", out], capsys,
             "the ensemble study varies ensemble itself")
    _refused(["ablate", "--study", "spacing", "--timestep-spacing", "leading", "--out", out], capsys,
             "runs every timestep_spacing")
    assert not (tmp_path / "ab").exists()


@pytest.mark.parametrize("study", ["ensemble", "steps", "spacing", "noise"])
def test_a_study_without_flags_is_not_refused(study):
    # the refusal compares each swept flag with the parser's own default: they must agree
    from marigold_bench.ablation import STUDIES
    from marigold_bench.commands import ablate

    parser = argparse.ArgumentParser()
    ablate.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ablate", "--study", study])
    ablate._refuse_ignored_flags(STUDIES[study], args)   # no BenchError


def test_a_task_s_own_benchmark_name_is_never_swapped_for_another_task():
    from marigold_bench.data.registry import get_benchmark

    with pytest.raises(BenchError, match="nyu-normals is the normals ground truth of nyu, not depth; "
                                         "for depth, name nyu"):
        get_benchmark("nyu-normals", task="depth")
    # a plain name still resolves by task
    assert get_benchmark("nyu", task="normals").name == "nyu-normals"
    assert get_benchmark("synthetic", task="normals").name == "synthetic-normals"


def test_export_checks_its_source_url_and_dataset_ids(runs, tmp_path, capsys):
    depth = str(runs / "depth")
    out = str(tmp_path / "ex")
    _refused(["export", depth, "--out", out, "--source-url", "http://x/{bogus}"], capsys, "unknown field(s) bogus")
    _refused(["export", depth, "--out", out, "--source-url", "http://x/{"], capsys, "Single '{'")
    _refused(["export", depth, "--out", out, "--dataset-id", "nyu=a/b"], capsys,
             "--dataset-id names nyu, which none of the runs scored")
    assert not (tmp_path / "ex").exists()


def test_gallery_names_the_task_of_a_normals_run(runs, capsys):
    _refused(["gallery", str(runs / "normals")], capsys, "is a normals run; the gallery draws depth runs only")


def test_small_flags(runs, tmp_path, capsys):
    _refused(["run", "--dataset", "synthetic", "--max-samples", "1", "--workers", "-1", "--out",
              str(tmp_path / "w")], capsys, "--workers must be >= 0")
    assert not (tmp_path / "w").exists()
    _refused(["benchmarks", "--json", "--format", "md"], capsys, "--json and --format md")
    _refused(["protocols", "--card", ""], capsys, "--card needs a protocol name")
    baseline = str(tmp_path / "b.json")
    assert main(["regress", str(runs / "depth"), "--baseline", baseline, "--update"]) == 0
    _refused(["regress", str(runs / "depth"), "--baseline", baseline, "--tolerance", "mean_angle=0.5"], capsys,
             "--tolerance mean_angle: the baseline does not check it")
    assert main(["regress", str(runs / "depth"), "--baseline", baseline, "--tolerance", "0.5"]) == 0


@pytest.mark.parametrize("error, caught", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 90000000000 bytes"), True),
    (MemoryError(), True),
    (RuntimeError("some other failure"), False),
])
def test_running_out_of_memory_is_one_line_and_other_errors_still_raise(monkeypatch, capsys, error, caught):
    from marigold_bench.commands import benchmarks

    def fail(args):
        raise error

    monkeypatch.setattr(benchmarks, "run", fail)
    if caught:
        _refused(["benchmarks"], capsys, "out of memory", "lower --processing-res")
    else:
        with pytest.raises(RuntimeError, match="some other failure"):
            main(["benchmarks"])


def test_a_point_map_under_marigold_is_sent_to_a_protocol_that_can_score_it(tmp_path, capsys):
    # da2k takes point maps too, but only on its own pair benchmark: it is no advice for synthetic
    err = _refused(["run", "--dataset", "synthetic", "--max-samples", "1", "--output-space", "points_metric",
                    "--out", str(tmp_path / "p")], capsys, "choose --protocol moge")
    assert "da2k" not in err


def test_leaderboard_names_its_list_flags_before_argparse_would(tmp_path, capsys):
    # run's single --dataset is refused in leaderboard's own words, not with argparse's usage dump
    _refused(["leaderboard", "--models", "tiny", "--dataset", "synthetic", "--out", str(tmp_path / "lb")], capsys,
             "--dataset does not apply to leaderboard; use --datasets")
    _refused(["leaderboard", "--models", "tiny", "--out", str(tmp_path / "lb")], capsys, "leaderboard needs --datasets")
    assert not (tmp_path / "lb").exists()
