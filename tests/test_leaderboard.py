"""`marigold-bench leaderboard`: reuse without a predictor, a hand-derived table, broken models,
the self-contained HTML page, and the issue's "done when" command on three kinds of model."""

import json
import re

import pandas as pd
import pytest

from fixtures_rundir import records_from_columns, write_fake_run
from marigold_bench.cli import build_parser, main
from marigold_bench.commands import leaderboard as command
from marigold_bench.commands.common import BUNDLED_TINY
from marigold_bench.report.leaderboard import cell_dir, model_slugs, request_of

ARGS = ["--datasets", "synthetic", "--max-samples", "2"]


class Counter:
    """Wraps `build_predictor`: counts constructions and predict calls, can break chosen models."""

    def __init__(self, monkeypatch, crash=()):
        self.built, self.predicted, self.crash = [], 0, set(crash)
        real = command.build_predictor

        def build(args, processing_res=None, **kwargs):  # kwargs: what run passes on (the benchmark's seed)
            predictor = real(args, processing_res=processing_res, **kwargs)
            self.built.append(args.model)
            inner = predictor.predict

            def predict(jobs):
                self.predicted += 1
                if args.model in self.crash:
                    raise RuntimeError("out of cheese")
                return inner(jobs)

            predictor.predict = predict
            return predictor

        monkeypatch.setattr(command, "build_predictor", build)


def test_second_launch_calls_no_predictor(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "lb")
    counter = Counter(monkeypatch)
    argv = ["leaderboard", "--models", "baseline:ramp,baseline:constant", *ARGS, "--out", out]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert counter.built == ["baseline:ramp", "baseline:constant"] and counter.predicted >= 2

    counter.built.clear()
    counter.predicted = 0
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert counter.built == [] and counter.predicted == 0
    assert captured.out == first  # the same table, read back from the run directories
    assert captured.err.count("finished before, reused") == 2

    # a changed flag that moves numbers is a new request: it runs again, in its own directory
    assert main(argv + ["--ensemble", "2"]) == 0
    assert counter.built == ["baseline:ramp", "baseline:constant"]
    # ... one that only says where scoring runs is not
    counter.built.clear()
    assert main(argv + ["--score-device", "cpu"]) == 0
    assert counter.built == []


def test_table_matches_markdown_written_by_hand(tmp_path, monkeypatch, capsys):
    out = tmp_path / "lb"
    models = ["/ckpt/marigold-tiny", "/hub/dpt-tiny"]
    argv = ["leaderboard", "--models", ",".join(models), *ARGS, "--out", str(out)]
    args = build_parser().parse_args(argv)
    slugs = model_slugs(models)
    depth = {"family": "marigold", "ensemble": 1, "ensembling": "diffusers", "steps": 1,
             "output_space": "depth_affine_invariant"}
    for model, settings, scoring, rows in [
        (models[0], {"model": models[0], **depth},
         {"output_space": "depth_affine_invariant", "alignment": "affine", "fit_space": "depth"},
         {"id": ["a", "b"], "abs_rel": [0.10, 0.20], "delta1": [0.90, 0.80], "status": ["ok", "ok"]}),
        (models[1], {"model": models[1], "family": "transformers", "ensemble": 1, "ensembling": None,
                     "output_space": "disparity_affine_invariant"},
         {"output_space": "disparity_affine_invariant", "alignment": "affine", "fit_space": "disparity"},
         {"id": ["a", "b"], "abs_rel": [0.125, None], "delta1": [0.875, None], "status": ["ok", "failed"]}),
    ]:
        request = request_of(command.cell_flags(args, model, "synthetic"))
        folder = tmp_path / "lb" / cell_dir("", slugs[model], "synthetic", request)
        # as a finished launch leaves it: its request recorded in the summary
        write_fake_run(folder, records_from_columns(rows), dataset="synthetic", settings=settings,
                       protocol={"min_depth": 0.001, "max_depth": 200.0},
                       scoring={"protocol": "marigold", **scoring}, leaderboard={"request": request})
    monkeypatch.setattr(command, "build_predictor", lambda *a, **k: pytest.fail("a finished cell was run again"))

    assert main(argv) == 0
    # worked out by hand: tiny AbsRel mean(0.10, 0.20) = 15.0, δ1 mean(0.90, 0.80) = 85.0;
    # dpt-tiny scored 1 of 2 samples: 12.5, 87.5; fitted in disparity, so not ranked (no bold)
    # against the depth fit (issue 18, item 7)
    expected = (
        "| Method | Output space | Alignment | Synthetic AbsRel↓ | Synthetic δ1↑ | Synthetic n |\n"
        "|:---|:---|:---|---:|---:|---:|\n"
        "| marigold-tiny, 1 step, N=1 | affine-inv. depth | affine in depth | 15.0 | 85.0 | 2 |\n"
        "| dpt-tiny, N=1 | affine-inv. disparity | affine in disparity | 12.5 | 87.5 | 1/2 |\n"
        "\n"
        "AbsRel, δ1 in percent (×100).\n"
        "n/total: the run scored only n of its total samples (failed, skipped or no valid pixel); "
        "see its per_sample.csv.\n"
        "Rows scored under different protocols are not ranked together: bold marks the best among rows "
        "scored alike (affine in depth; affine in disparity).\n")
    # then one line: the two rows were fitted in different spaces, so their protocol hashes differ
    printed = capsys.readouterr().out
    for text in (printed, (out / "leaderboard.md").read_text()):
        assert text.startswith(expected)
        (identity_line,) = text[len(expected):].splitlines()
        assert identity_line.startswith("Synthetic: rows were computed under 2 protocol hashes")
        assert 'they differ in scoring.fit_space: "depth" vs "disparity"' in identity_line
    latex = (out / "leaderboard.tex").read_text()
    assert r"dpt-tiny, N=1 & affine-inv. disparity & affine in disparity & 12.5 & 87.5 & 1/2 \\" in latex
    frame = pd.read_csv(out / "leaderboard.csv")
    assert frame["synthetic_abs_rel"].tolist() == pytest.approx([15.0, 12.5])
    assert frame["synthetic_n"].tolist() == [2, 1] and frame["synthetic_n_total"].tolist() == [2, 2]
    assert frame["alignment"].tolist() == ["affine in depth", "affine in disparity"]


def test_broken_model_is_a_marked_row_while_the_others_finish(tmp_path, monkeypatch, capsys):
    out = tmp_path / "lb"
    missing = str(tmp_path / "no-such-model")
    counter = Counter(monkeypatch, crash={"baseline:constant"})
    argv = ["leaderboard", "--models", f"baseline:ramp,{missing},baseline:constant", *ARGS, "--out", str(out)]
    assert main(argv) == 1  # finished, but not every cell
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[2].startswith("| baseline:ramp, N=1 | affine-inv. depth | affine in depth | ")
    assert lines[2].endswith(" | 2 |") and "failed" not in lines[2]
    broken = [line for line in lines if line.startswith("| no-such-model (failed: ")]
    crashed = [line for line in lines if line.startswith("| baseline:constant (failed: RuntimeError: out of cheese)")]
    assert len(broken) == 1 and broken[0].endswith("| – | – | failed | failed | – |")
    assert len(crashed) == 1 and crashed[0].endswith("| failed | failed | – |")
    assert "no-such-model" in captured.err and "2 failed" in captured.err
    record = json.loads((out / "leaderboard.json").read_text())
    assert [c["status"] for c in record["cells"]] == ["done", "failed", "failed"]
    assert record["cells"][2]["message"] == "RuntimeError: out of cheese"
    assert "out of cheese" in open(record["cells"][2]["run_dir"] + "/failed.txt").read()  # the traceback
    frame = pd.read_csv(out / "leaderboard.csv", keep_default_na=False)
    assert frame["failed"].tolist()[0] == "" and frame["failed"].tolist()[2] == "synthetic: RuntimeError: out of cheese"
    assert (out / "leaderboard.html").read_text().count('<tr class="failed">') == 2

    # fixed: the failed cells are tried again, the finished one is not
    counter.built.clear()
    counter.crash.clear()
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:constant", *ARGS, "--out", str(out)]) == 0
    assert counter.built == ["baseline:constant"]


def test_html_page_is_self_contained(tmp_path, capsys):
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:constant", *ARGS, "--out", str(out),
                 "--format", "html", "--metrics", "abs_rel,delta1,rmse", "--reference"]) == 0
    page = capsys.readouterr().out
    assert page == (out / "leaderboard.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<svg") == 3  # one chart per metric
    assert page.count("<table>") == 1 and "<td>baseline:ramp, N=1</td>" in page
    # --reference quotes papers only on the benchmarks run: none of them reports the synthetic set
    assert "Lotus-D [L]" not in page and "NYUv2" not in page
    figures = page.split("<figure>")[1:]
    assert "AbsRel↓ (lower is better)" in figures[0] and "δ1↑ (higher is better)" in figures[1]
    # each chart draws a bar for every row with a value: ours only
    assert figures[0].count("<rect") == 2 and figures[2].count("<rect") == 2


def test_single_dataset_and_model_flags_are_refused(tmp_path, capsys):
    assert main(["leaderboard", "--models", "baseline:ramp", "--datasets", "synthetic", "--dataset", "nyu",
                 "--out", str(tmp_path)]) == 2
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:ramp", "--datasets", "synthetic",
                 "--out", str(tmp_path)]) == 2
    assert main(["leaderboard", "--models", "baseline:ramp", "--datasets", "synthetic,nyuv3",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "use --datasets" in err and "baseline:ramp given twice" in err and "unknown nyuv3; known: nyu," in err
    assert "Traceback" not in err
    # a benchmark that cannot be opened stops the launch before any model runs
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp", "--datasets", "synthetic,nyu",
                 "--data-root", str(tmp_path / "no-data"), "--out", str(out)]) == 2
    assert not out.exists() and "Traceback" not in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")
def test_bundled_tiny_transformers_and_baseline_in_one_table(tmp_path, capsys):
    from fixtures_transformers import make_tiny_depth_model

    dpt = make_tiny_depth_model(tmp_path / "tiny-dpt", "dpt")
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", f"{BUNDLED_TINY},{dpt},baseline:ramp", *ARGS, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("| Method |") == 1  # one table
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    assert [r.split(" | ")[0] for r in rows] == ["| tiny, 1 step, N=1", "| tiny-dpt, N=1", "| baseline:ramp, N=1"]
    assert rows[1].split(" | ")[1:3] == ["affine-inv. disparity", "affine in disparity"]
    assert all(r.endswith(" | 2 |") for r in rows)
    # every number in a row is its own cell's: the mean of that run's per-sample rows, x100
    record = json.loads((out / "leaderboard.json").read_text())
    for row, cell in zip(rows, record["cells"]):
        frame = pd.read_csv(f"{cell['run_dir']}/per_sample.csv")
        shown = [float(v.strip("*† ")) for v in row.split(" | ")[3:5]]
        assert shown == [round(100 * frame["abs_rel"].mean(), 1), round(100 * frame["delta1"].mean(), 1)]


def test_run_flags_reach_every_run_and_their_rows(tmp_path, capsys):
    # D's scoring flags come with run's dataset flags: the protocol applies to all runs and the
    # rows say so; the record keeps the flags
    out = tmp_path / "lb"
    assert main(["leaderboard", "--models", "baseline:ramp,baseline:constant", *ARGS, "--out", str(out),
                 "--protocol", "moge", "--alignment", "scale"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:4]
    assert all(r.split(" | ")[2] == "moge: scale in depth" for r in rows)
    for cell in json.loads((out / "leaderboard.json").read_text())["cells"]:
        summary = json.loads(open(cell["run_dir"] + "/summary.json").read())
        assert summary["scoring"]["protocol"] == "moge" and summary["scoring"]["alignment"] == "scale"
        assert summary["leaderboard"]["request"]["max_samples"] == 2


def test_a_marigold_only_flag_applies_to_marigold_rows_and_is_reported_for_the_others(tmp_path, capsys):
    out = tmp_path / "lb"
    argv = ["leaderboard", "--models", f"{BUNDLED_TINY},baseline:ramp", *ARGS, "--steps", "2", "--out", str(out)]
    assert main(argv) == 0  # neither row fails for a flag only one family takes
    captured = capsys.readouterr()
    assert "baseline:ramp: --steps 2 does not apply to this model" in captured.err
    settings = {}
    for summary in out.rglob("summary.json"):
        data = json.loads(summary.read_text())
        settings[data["settings"]["model"]] = data["settings"]
    assert settings[str(BUNDLED_TINY)]["steps"] == 2      # the Marigold row ran what was asked
    assert "steps" not in settings["baseline:ramp"]


def test_run_still_refuses_a_flag_the_model_cannot_take(tmp_path, capsys):
    code = main(["run", "--dataset", "synthetic", "--max-samples", "1", "--model", "baseline:ramp",
                 "--steps", "2", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "--steps 2 cannot apply" in capsys.readouterr().err
