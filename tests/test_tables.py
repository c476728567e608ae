"""Paper tables from hand-written run directories: exact Markdown and LaTeX, grouping, refusals."""

import io
import json

import pandas as pd
import pytest

from fixtures_rundir import write_fake_run
from marigold_bench.cli import main
from marigold_bench.errors import BenchError
from marigold_bench.report.rundir import load_run
from marigold_bench.report.tables import build_table, render

SETTINGS = {"model": "/ckpt/marigold_tiny", "steps": 1, "ensemble": 1, "timestep_spacing": "trailing",
            "noise": "gaussian", "seed": 1234, "processing_res": 0, "device": "cpu", "batch_size": 4}


def write_run(folder, dataset="nyu", metrics=None, n=654, n_total=654, protocol=None, scoring=None,
              extra=None, **settings):
    """A run known by its summary (what tables read), written by the shared fixture."""
    return write_fake_run(folder, dataset=dataset, n=n, n_total=n_total,
                          metrics=metrics or {"abs_rel": 0.0612, "delta1": 0.9581, "rmse": 0.2345},
                          settings={**SETTINGS, **settings}, scoring=scoring,
                          protocol={"fit_space": "depth", "split": f"{dataset}:test",
                                    "root": f"/data/{folder.name}", **(protocol or {})}, **(extra or {}))


@pytest.fixture
def two_runs(tmp_path):
    a = write_run(tmp_path / "a", metrics={"abs_rel": 0.0612, "delta1": 0.9581})
    b = write_run(tmp_path / "b", metrics={"abs_rel": 0.05749, "delta1": 0.9533}, steps=4, ensemble=5,
                  device="cuda", batch_size=16)  # runtime-only settings do not split rows
    return a, b


def test_markdown_of_two_runs(two_runs):
    table = build_table([load_run(p) for p in two_runs])
    expected = (
        "| Method | Output space | Alignment | NYUv2 AbsRel↓ | NYUv2 δ1↑ |\n"
        "|:---|:---|:---|---:|---:|\n"
        "| marigold_tiny, 1 step, N=1 | affine-inv. depth | affine in depth | 6.1 | **95.8** |\n"
        "| marigold_tiny, 4 steps, N=5 | affine-inv. depth | affine in depth | **5.7** | 95.3 |\n"
        "\n"
        "AbsRel, δ1 in percent (×100).\n")
    assert render(table, "md") == expected


def test_latex_of_two_runs(two_runs):
    table = build_table([load_run(p) for p in two_runs])
    expected = (
        "\\begin{tabular}{lllcc}\n"
        "\\toprule\n"
        " &  &  & \\multicolumn{2}{c}{NYUv2} \\\\\n"
        "\\cmidrule(lr){4-5}\n"
        "Method & Output space & Alignment & AbsRel$\\downarrow$ & $\\delta_1\\uparrow$ \\\\\n"
        "\\midrule\n"
        "marigold\\_tiny, 1 step, N=1 & affine-inv. depth & affine in depth & 6.1 & \\textbf{95.8} \\\\\n"
        "marigold\\_tiny, 4 steps, N=5 & affine-inv. depth & affine in depth & \\textbf{5.7} & 95.3 \\\\\n"
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
    assert lines[0] == ("| Method | Output space | Alignment | NYUv2 AbsRel↓ | NYUv2 δ1↑ | KITTI AbsRel↓ "
                        "| KITTI δ1↑ |")
    assert lines[2] == "| marigold_tiny, 1 step, N=1 | affine-inv. depth | affine in depth | 6.1 | 95.8 | 10.5 | 90.4 |"
    assert lines[3] == "| marigold_tiny, 4 steps, N=1 | affine-inv. depth | affine in depth | **5.5** | **96.4** | – | – |"


def test_protocol_driven_geometry_stays_in_the_row(tmp_path):
    # the marigold protocol runs ETH3D at 756 without padding (official pipeline), NYU padded
    nyu = write_run(tmp_path / "nyu", "nyu", padding="replicate", resample_output="bilinear")
    eth3d = write_run(tmp_path / "eth3d", "eth3d", metrics={"abs_rel": 0.071, "delta1": 0.951}, processing_res=756,
                      padding="none", resample_output="bilinear-antialias")
    lines = render(build_table([load_run(nyu), load_run(eth3d)]), "md").splitlines()
    assert lines[2] == "| marigold_tiny, 1 step, N=1 | affine-inv. depth | affine in depth | 6.1 | 95.8 | 7.1 | 95.1 |"
    assert len(lines) == 5  # one row, then the blank line and the note


def test_same_row_and_dataset_twice_is_refused(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", processing_res=512)
    assert main(["table", a, b]) == 2
    err = capsys.readouterr().err
    assert f"{a} and {b} both fill the row" in err and "processing_res" in err and "Traceback" not in err


def test_one_dataset_on_different_samples_or_protocols_is_refused(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", steps=4, protocol={"min_depth": 0.5})
    with pytest.raises(BenchError, match="min_depth: .*<absent>"):
        build_table([load_run(a), load_run(b)])
    c = write_run(tmp_path / "c", steps=4, n=100, n_total=100)  # a --max-samples run
    with pytest.raises(BenchError, match="different samples"):
        build_table([load_run(a), load_run(c)])


def test_fit_space_is_a_row_choice_not_a_sample_set(tmp_path):
    # a 0.2 run fitted in disparity (--fit-space disparity) shares the column with a depth fit
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", protocol={"fit_space": "disparity"},
                  metrics={"abs_rel": 0.0849, "delta1": 0.9312})
    lines = render(build_table([load_run(a), load_run(b)]), "md").splitlines()
    # fitted in different spaces: shown side by side, never ranked (no bold across them)
    assert lines[2] == "| marigold_tiny, 1 step, N=1 | affine-inv. depth | affine in depth | 6.1 | 95.8 |"
    assert lines[3] == "| marigold_tiny, 1 step, N=1 | affine-inv. depth | affine in disparity | 8.5 | 93.1 |"
    assert lines[-1].startswith("Rows scored under different protocols are not ranked together")


def _scored(folder, scoring, dataset="nyu", **kwargs):
    """A 0.3 run: summary.json records how it was scored (`Scoring.to_dict` keys)."""
    return write_run(folder, dataset, scoring={"protocol": "marigold", "dataset": dataset, "fit": "...", **scoring},
                     **kwargs)


def test_rows_show_the_recorded_output_space_and_alignment(tmp_path):
    dpt = _scored(tmp_path / "dpt", {"output_space": "disparity_affine_invariant", "alignment": "affine",
                                     "fit_space": "disparity"},
                  model="/hub/dpt-large", output_space="disparity_affine_invariant")
    # the same predictions rescored under MoGe's protocol: another row, not a clash
    moge = _scored(tmp_path / "moge", {"protocol": "moge", "output_space": "disparity_affine_invariant",
                                       "alignment": "affine", "fit_space": "disparity"},
                   model="/hub/dpt-large", output_space="disparity_affine_invariant",
                   metrics={"abs_rel": 0.0712, "delta1": 0.9657})
    metric = _scored(tmp_path / "glpn", {"output_space": "depth_metric", "alignment": "none", "fit_space": "depth"},
                     model="/hub/glpn-nyu", metrics={"abs_rel": 0.1004, "delta1": 0.9003})
    lines = render(build_table([load_run(p) for p in (dpt, moge, metric)]), "md").splitlines()
    assert lines[2:5] == [  # three protocols: no row is ranked against another
        "| dpt-large, 1 step, N=1 | affine-inv. disparity | affine in disparity | 6.1 | 95.8 |",
        "| dpt-large, 1 step, N=1 | affine-inv. disparity | moge: affine in disparity | 7.1 | 96.6 |",
        "| glpn-nyu, 1 step, N=1 | metric depth | none | 10.0 | 90.0 |"]
    frame = pd.read_csv(io.StringIO(render(build_table([load_run(dpt), load_run(metric)]), "csv")))
    assert frame["output_space"].tolist() == ["disparity_affine_invariant", "depth_metric"]
    assert frame["alignment"].tolist() == ["affine in disparity", "none"]


def test_beside_reference_rows_ours_name_preset_steps_and_spacing(tmp_path):
    # as the Marigold predictor records it: the resolved preset with its parameters
    a = write_run(tmp_path / "a", ensembling={"preset": "official", "reduction": "median", "max_iter": 2})
    b = write_run(tmp_path / "b", ensembling="official", steps=4, timestep_spacing="leading",
                  metrics={"abs_rel": 0.0731, "delta1": 0.9402})
    plain = render(build_table([load_run(a)]), "md").splitlines()
    assert plain[2].startswith("| marigold_tiny, 1 step, N=1 | ")  # alone, nothing to tell apart
    labels = [line.split(" | ")[0] for line in render(build_table([load_run(a), load_run(b)], reference=True),
                                                         "md").splitlines() if line.startswith("| marigold_tiny")]
    assert labels == ["| marigold_tiny, 1 step, N=1, trailing, official ensembling",
                      "| marigold_tiny, 4 steps, N=1, leading, official ensembling"]
    assert main(["table", a, "--reference"]) == 0


def test_diode_subsets_fill_their_own_columns(tmp_path, capsys):
    folder = tmp_path / "diode"
    halves = {"all": {"n": 771, "metrics": {"abs_rel": 0.3, "delta1": 0.77}},
              "indoor": {"n": 325, "metrics": {"abs_rel": 0.1234, "delta1": 0.8912}},
              "outdoor": {"n": 446, "metrics": {"abs_rel": 0.4321, "delta1": 0.6789}}}
    write_run(folder, "diode", metrics={"abs_rel": 0.3, "delta1": 0.77}, n=771, n_total=771,
              extra={"subsets": halves})
    summary = json.loads((folder / "summary.json").read_text())
    text = render(build_table([load_run(folder)]), "md")
    assert text.splitlines()[0] == ("| Method | Output space | Alignment | DIODE AbsRel↓ | DIODE δ1↑ | DIODE indoor AbsRel↓ "
                                    "| DIODE indoor δ1↑ | DIODE outdoor AbsRel↓ | DIODE outdoor δ1↑ |")
    assert text.splitlines()[2].endswith("| 30.0 | 77.0 | 12.3 | 89.1 | 43.2 | 67.9 |")
    assert main(["table", str(folder), "--diode-subsets", "indoor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("| DIODE indoor AbsRel↓ | DIODE indoor δ1↑ |") and lines[2].endswith("| 12.3 | 89.1 |")
    assert main(["table", str(folder), "--diode-subsets", "kitchen"]) == 2
    # a run of the indoor half alone: no empty outdoor column
    summary["subsets"]["outdoor"] = {"n": 0, "n_total": 0, "metrics": {}}
    (folder / "summary.json").write_text(json.dumps(summary))
    assert "outdoor" not in render(build_table([load_run(folder)]), "md")


def test_run_with_failed_samples_is_marked_with_its_count(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", steps=4, n=650, metrics={"abs_rel": 0.05, "delta1": 0.97})
    text = render(build_table([load_run(a), load_run(b)]), "md")
    assert ("| marigold_tiny, 4 steps, N=1 | affine-inv. depth | affine in depth | **5.0** (650/654) "
            "| **97.0** (650/654) |") in text
    assert "(n/total): the run scored only n of its total samples" in text
    latex = render(build_table([load_run(a), load_run(b)]), "latex")
    assert r"\textbf{5.0} {\scriptsize(650/654)}" in latex


def test_reference_rows_are_quoted_with_their_source(tmp_path):
    a = write_run(tmp_path / "a")
    table = build_table([load_run(a)], reference=True)
    text = render(table, "md")
    # only the benchmark that was run (NYUv2): the published KITTI..DIODE columns stay out
    assert "| Marigold v1-0, 50 steps, N=10 [M] | – | – | 5.5 | 96.4 |\n" in text
    assert text.splitlines()[0] == "| Method | Output space | Alignment | NYUv2 AbsRel↓ | NYUv2 δ1↑ |"
    assert "| Lotus-D [L] | – | – | **5.1** | **97.2** |" in text
    assert "[M] quoted from Marigold, CVPR 2024, Table 1." in text
    # ours last; beside quoted rows it names its spacing and ensembling preset too
    assert text.splitlines()[-6].startswith(
        "| marigold_tiny, 1 step, N=1, trailing | affine-inv. depth | affine in depth | 6.1 | 95.8 |")
    frame = pd.read_csv(io.StringIO(render(table, "csv")))
    assert frame["quoted"].tolist() == [True] * 11 + [False]
    assert frame.loc[11, "nyu_abs_rel"] == pytest.approx(6.12) and frame.loc[11, "nyu_n"] == 654


def test_any_metric_can_be_chosen(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    assert main(["table", a, "--metrics", "rmse,delta1", "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(frame.columns) == ["method", "quoted", "source", "output_space", "alignment",
                                   "nyu_rmse", "nyu_delta1", "nyu_n", "nyu_n_total"]
    assert frame.loc[0, "nyu_rmse"] == pytest.approx(0.2345)  # metres are not scaled
    assert main(["table", a, "--metrics", "abs_rel,accuracy"]) == 2
    assert main(["table", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "unknown metric(s) accuracy" in err and "no summary.json" in err


def test_tied_rows_are_told_apart_only_by_what_differs_between_them():
    """Beside a model of another family (which lacks most settings), two Marigold rows with
    one label get only the setting that differs between those two."""
    from marigold_bench.report.tables import row_labels

    a = {"model": "tiny", "steps": 1, "ensemble": 1, "model_path": "/a", "compile": False,
         "scheduler": "DDIMScheduler", "timesteps": [999]}
    b = dict(a, model_path="/b")
    dpt = {"model": "dpt", "ensemble": 1, "architecture": "DPTForDepthEstimation"}
    assert row_labels([a, b, dpt]) == ["tiny, 1 step, N=1, model_path=/a", "tiny, 1 step, N=1, model_path=/b",
                                       "dpt, N=1"]
