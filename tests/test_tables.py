"""Paper tables from hand-written run directories: exact Markdown and LaTeX, grouping, refusals."""

import io
import json

import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.errors import BenchError
from marigold_bench.report.rundir import load_run
from marigold_bench.report.tables import build_table, render

SETTINGS = {"model": "/ckpt/marigold_tiny", "steps": 1, "ensemble": 1, "timestep_spacing": "trailing",
            "noise": "gaussian", "seed": 1234, "processing_res": 0, "device": "cpu", "batch_size": 4}


def write_run(folder, dataset="nyu", metrics=None, n=654, n_total=654, protocol=None, **settings):
    """A run directory with only what tables read: summary.json."""
    folder.mkdir(parents=True)
    summary = {"dataset": dataset, "n": n, "n_total": n_total,
               "n_failed": n_total - n, "n_skipped": 0, "n_no_valid": 0,
               "metrics": metrics or {"abs_rel": 0.0612, "delta1": 0.9581, "rmse": 0.2345},
               "settings": {**SETTINGS, **settings},
               "protocol": {"name": dataset, "fit_space": "depth", "split": f"{dataset}:test",
                            "root": f"/data/{folder.name}", **(protocol or {})}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return str(folder)


@pytest.fixture
def two_runs(tmp_path):
    a = write_run(tmp_path / "a", metrics={"abs_rel": 0.0612, "delta1": 0.9581})
    b = write_run(tmp_path / "b", metrics={"abs_rel": 0.05749, "delta1": 0.9533}, steps=4, ensemble=5,
                  device="cuda", batch_size=16)  # runtime-only settings do not split rows
    return a, b


def test_markdown_of_two_runs(two_runs):
    table = build_table([load_run(p) for p in two_runs])
    expected = (
        "| Method | NYUv2 AbsRel↓ | NYUv2 δ1↑ |\n"
        "|:---|---:|---:|\n"
        "| marigold_tiny, 1 step, N=1 | 6.1 | **95.8** |\n"
        "| marigold_tiny, 4 steps, N=5 | **5.7** | 95.3 |\n"
        "\n"
        "AbsRel, δ1 in percent (×100).\n")
    assert render(table, "md") == expected


def test_latex_of_two_runs(two_runs):
    table = build_table([load_run(p) for p in two_runs])
    expected = (
        "\\begin{tabular}{lcc}\n"
        "\\toprule\n"
        " & \\multicolumn{2}{c}{NYUv2} \\\\\n"
        "\\cmidrule(lr){2-3}\n"
        "Method & AbsRel$\\downarrow$ & $\\delta_1\\uparrow$ \\\\\n"
        "\\midrule\n"
        "marigold\\_tiny, 1 step, N=1 & 6.1 & \\textbf{95.8} \\\\\n"
        "marigold\\_tiny, 4 steps, N=5 & \\textbf{5.7} & 95.3 \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
        "% AbsRel, δ1 in percent (x100).\n")
    assert render(table, "latex") == expected


def test_datasets_become_column_groups_and_settings_rows(tmp_path, capsys):
    runs = [write_run(tmp_path / "nyu1", "nyu"),
            write_run(tmp_path / "kitti1", "kitti", metrics={"abs_rel": 0.105, "delta1": 0.904},
                      processing_res=768),  # per-dataset resolution stays in the row
            write_run(tmp_path / "nyu4", "nyu", steps=4, metrics={"abs_rel": 0.055, "delta1": 0.964})]
    assert main(["table", *runs]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| Method | NYUv2 AbsRel↓ | NYUv2 δ1↑ | KITTI AbsRel↓ | KITTI δ1↑ |"
    assert lines[2] == "| marigold_tiny, 1 step, N=1 | 6.1 | 95.8 | 10.5 | 90.4 |"
    assert lines[3] == "| marigold_tiny, 4 steps, N=1 | **5.5** | **96.4** | – | – |"


def test_same_row_and_dataset_twice_is_refused(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", processing_res=512)
    assert main(["table", a, b]) == 2
    err = capsys.readouterr().err
    assert f"{a} and {b} both fill the row" in err and "processing_res" in err and "Traceback" not in err


def test_one_dataset_on_different_samples_or_protocols_is_refused(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", steps=4, protocol={"fit_space": "disparity"})
    with pytest.raises(BenchError, match="fit_space: .*'depth' vs .*'disparity'"):
        build_table([load_run(a), load_run(b)])
    c = write_run(tmp_path / "c", steps=4, n=100, n_total=100)  # a --max-samples run
    with pytest.raises(BenchError, match="different samples"):
        build_table([load_run(a), load_run(c)])


def test_run_with_failed_samples_is_marked_with_its_count(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", steps=4, n=650, metrics={"abs_rel": 0.05, "delta1": 0.97})
    text = render(build_table([load_run(a), load_run(b)]), "md")
    assert "| marigold_tiny, 4 steps, N=1 | **5.0** (650/654) | **97.0** (650/654) |" in text
    assert "(n/total): the run scored only n of its total samples" in text
    latex = render(build_table([load_run(a), load_run(b)]), "latex")
    assert r"\textbf{5.0} {\scriptsize(650/654)}" in latex


def test_reference_rows_are_quoted_with_their_source(tmp_path):
    a = write_run(tmp_path / "a")
    table = build_table([load_run(a)], reference=True)
    text = render(table, "md")
    assert ("| Marigold v1-0, 50 steps, N=10 [M] | 5.5 | 96.4 | 9.9 | 91.6 | 6.5 | 96.0 | 6.4 | 95.1 "
            "| 30.8 | 77.3 |") in text
    assert "| Lotus-D [L] | **5.1** | **97.2** |" in text
    assert "[M] quoted from Marigold, CVPR 2024, Table 1." in text
    assert text.splitlines()[-6].startswith("| marigold_tiny, 1 step, N=1 | 6.1 | 95.8 | – |")  # ours last
    frame = pd.read_csv(io.StringIO(render(table, "csv")))
    assert frame["quoted"].tolist() == [True] * 11 + [False]
    assert frame.loc[11, "nyu_abs_rel"] == pytest.approx(6.12) and frame.loc[11, "nyu_n"] == 654


def test_any_metric_can_be_chosen(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    assert main(["table", a, "--metrics", "rmse,delta1", "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(frame.columns) == ["method", "quoted", "source", "nyu_rmse", "nyu_delta1", "nyu_n", "nyu_n_total"]
    assert frame.loc[0, "nyu_rmse"] == pytest.approx(0.2345)  # metres are not scaled
    assert main(["table", a, "--metrics", "abs_rel,accuracy"]) == 2
    assert main(["table", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "unknown metric(s) accuracy" in err and "no summary.json" in err
