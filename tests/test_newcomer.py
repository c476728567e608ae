"""A newcomer's first hour (issue 18): the commands the README gives work as written."""

from __future__ import annotations

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from marigold_bench.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]


def test_download_command_is_a_script_that_huggingface_hub_installs():
    from marigold_bench.model.hub import download_command

    command = download_command("depth-anything/Depth-Anything-V2-Small-hf")
    assert command == "hf download depth-anything/Depth-Anything-V2-Small-hf"
    # the program named must be one that the installed huggingface_hub really ships
    shipped = {e.name for e in entry_points(group="console_scripts") if e.value.startswith("huggingface_hub")}
    assert command.split()[0] in shipped


def test_base_checkpoint_message_names_hf_download(monkeypatch, tmp_path):
    from marigold_bench.model.convert import load_sd2_components

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"`hf download someone/absent-model`"):
        load_sd2_components("someone/absent-model")


def test_no_doc_or_message_says_huggingface_cli():
    files = [REPO / "README.md", *sorted((REPO / "marigold_bench").rglob("*.py"))]
    stale = [str(f.relative_to(REPO)) for f in files if "huggingface-cli download" in f.read_text(encoding="utf-8")]
    assert not stale


# --- flags: one line naming the flag meant ---------------------------------------------------

@pytest.mark.parametrize("argv, meant", [
    (["run", "--ensemble_size", "3"], "--ensemble"),          # official run.py spelling
    (["run", "--denoise_steps", "4"], "--steps"),             # official run.py spelling
    (["run", "--ensemble-size=3"], "--ensemble"),
    (["run", "--processing_res", "768"], "--processing-res"),
    (["predict", "--half_precision"], "--precision fp16"),
    (["run", "--max_samples", "3"], "--max-samples"),         # snake_case of one of ours
    (["run", "--ensembel", "3"], "--ensemble"),               # a typo
    (["data", "verify", "--datset", "nyu"], "--dataset"),     # a sub-sub-command's flags
])
def test_a_misspelt_flag_names_the_flag_meant_in_one_line(capsys, argv, meant):
    from marigold_bench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "usage:" not in err
    assert err.endswith(f"did you mean {meant}?")
    assert next(t.split("=")[0] for t in argv if t.startswith("--")) in err


def test_an_unknown_flag_with_no_near_match_points_at_help(capsys):
    from marigold_bench.cli import main

    with pytest.raises(SystemExit, match="2"):
        main(["run", "--zzzz"])
    err = capsys.readouterr().err.strip()
    assert err == "marigold-bench run: error: unknown flag --zzzz; `marigold-bench run --help` lists the flags"


def test_an_ambiguous_prefix_lists_the_candidates(capsys):
    from marigold_bench.cli import main

    with pytest.raises(SystemExit, match="2"):
        main(["run", "--ens", "2"])
    assert capsys.readouterr().err.strip() == "marigold-bench run: error: flag --ens is ambiguous: --ensemble or --ensembling?"


def test_known_flags_values_and_unique_prefixes_pass_the_check():
    from marigold_bench.cli import build_parser
    from marigold_bench.commands.flags import unknown_flag_message

    parser = build_parser()
    for argv in (["run", "--dataset", "synthetic", "--max-samples", "-1", "--ensemble=2"],
                 ["run", "--datas", "synthetic"],              # argparse takes unique prefixes
                 ["predict", "--input", "x", "--out", "y", "--", "--not-a-flag"]):
        assert unknown_flag_message(parser, argv) is None, argv


@pytest.mark.parametrize("command, extra", [("compare", ["a", "b"]), ("table", ["a"]), ("leaderboard", ["--models", "tiny", "--datasets", "synthetic"])])
def test_metrics_is_one_spelling_and_metric_still_works(command, extra):
    from marigold_bench.cli import build_parser

    parser = build_parser()
    for spelling in ("--metrics", "--metric"):
        args = parser.parse_args([command, *extra, spelling, "delta2,rmse"])
        assert args.metrics == "delta2,rmse", (command, spelling)
    sub = parser._subparsers._group_actions[0].choices[command]
    helptext = sub.format_help()
    assert "--metrics" in helptext and not re.search(r"--metric\b", helptext)  # one documented spelling


# --- predict: says what it wrote, colour bar, one colour convention ---------------------------

@pytest.fixture
def one_image(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


def test_predict_says_where_it_wrote_what(one_image, tmp_path, capsys):
    from marigold_bench.cli import main

    out = tmp_path / "out"
    assert main(["predict", "--model", "baseline:ramp", "--input", str(one_image), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert str(out) in said
    named = re.findall(r"\S+\.(?:npy|png|json)", said)
    assert "photo_depth.npy" in named and "photo_depth_colorbar.png" in named
    assert {p.name for p in out.iterdir()} == set(named)  # every file named exists, none unnamed


def _warmth(rgb) -> float:
    """Red minus blue of a pixel: positive for Spectral's warm end, negative for its cool end."""
    return float(rgb[0]) - float(rgb[2])


@pytest.mark.parametrize("space, kind", [(None, "depth"), ("disparity_affine_invariant", "disparity")])
def test_near_is_warm_for_depth_and_disparity_models(one_image, tmp_path, space, kind):
    from PIL import Image

    from marigold_bench.cli import main

    out = tmp_path / kind
    argv = ["predict", "--model", "baseline:ramp", "--input", str(one_image), "--out", str(out)]
    assert main(argv + (["--output-space", space] if space else [])) == 0
    values = np.load(out / f"photo_{kind}.npy")
    # near is where depth is smallest, or where disparity is largest: decided from the raw values
    near = np.unravel_index(values.argmin() if kind == "depth" else values.argmax(), values.shape)
    far = np.unravel_index(values.argmax() if kind == "depth" else values.argmin(), values.shape)
    colored = np.asarray(Image.open(out / f"photo_{kind}_colored.png"))
    assert _warmth(colored[near]) > 50 and _warmth(colored[far]) < -50


@pytest.mark.parametrize("space, kind, unit", [("depth_metric", "depth", "depth (m)"),
                                               ("disparity_affine_invariant", "disparity", "disparity")])
def test_colour_bar_states_values_meaning_and_the_warm_end(monkeypatch, tmp_path, space, kind, unit):
    import matplotlib.figure

    from marigold_bench.commands.predict import save_colorbar_figure

    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    values = np.linspace(2.0, 9.0, 12).reshape(3, 4)  # metres, say: the bar must span these, not [0, 1]
    save_colorbar_figure(tmp_path / "x.png", values, kind, space, scaling="min-max")
    (fig,) = figures
    image_ax, bar_ax = fig.axes
    label = bar_ax.get_ylabel()
    assert unit in label and "warm = near" in label
    assert bar_ax.get_ylim() == pytest.approx((2.0, 9.0))
    cmap = image_ax.images[0].get_cmap()
    # the bar's near end is warm: small depth, or large disparity
    near_end = cmap(0.0 if kind == "depth" else 1.0)
    assert near_end[0] > near_end[2]


def test_predict_help_documents_the_colour_convention(capsys):
    from marigold_bench.cli import main

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "near is warm" in " ".join(capsys.readouterr().out.split())


# --- gallery: the best figure has a command ---------------------------------------------------

@pytest.fixture(scope="module")
def ramp_run(tmp_path_factory):
    from marigold_bench.cli import main

    run = tmp_path_factory.mktemp("gallery") / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "4",
                 "--out", str(run)]) == 0
    return run


def test_gallery_command_writes_the_figure_and_says_where(ramp_run, tmp_path, capsys):
    from PIL import Image

    from marigold_bench.cli import main

    capsys.readouterr()
    assert main(["gallery", str(ramp_run), "--out", str(tmp_path / "two.png"), "--n", "2"]) == 0
    said = capsys.readouterr().out
    assert str(tmp_path / "two.png") in said and str(tmp_path / "two.pdf") in said
    assert main(["gallery", str(ramp_run), "--out", str(tmp_path / "four"), "--n", "4"]) == 0
    two, four = (Image.open(tmp_path / f"{n}.png").size for n in ("two", "four"))
    assert four[1] > 1.5 * two[1]  # one row per sample: --n reaches the figure
    assert main(["gallery", str(ramp_run)]) == 0  # default: beside the run
    assert (ramp_run / "gallery.png").is_file() and (ramp_run / "gallery.pdf").is_file()


@pytest.mark.parametrize("argv, says", [(["--n", "0"], "--n must be >= 1"),
                                        (["--samples", "test/nothing"], "not in the dataset")])
def test_gallery_bad_input_is_one_line(ramp_run, capsys, argv, says):
    from marigold_bench.cli import main

    assert main(["gallery", str(ramp_run), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err


def test_gallery_of_a_folder_that_is_no_run(tmp_path, capsys):
    from marigold_bench.cli import main

    assert main(["gallery", str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err


# --- --reference: only the benchmarks run ---------------------------------------------------

def test_reference_on_a_synthetic_board_adds_no_published_columns(ramp_run, capsys):
    from marigold_bench.cli import main

    capsys.readouterr()
    assert main(["table", str(ramp_run), "--reference", "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    # nothing but the run's own columns: no paper reports the synthetic set
    assert [c for c in header if c.startswith(("nyu", "kitti", "eth3d", "scannet", "diode"))] == []
    assert any(c.startswith("synthetic") for c in header)


def test_reference_quotes_papers_only_on_the_benchmarks_run(tmp_path):
    import io

    import pandas as pd

    from marigold_bench.report.rundir import load_run
    from marigold_bench.report.tables import REFERENCE_CSV, build_table, render
    from test_tables import write_run

    runs = [load_run(write_run(tmp_path / "nyu", "nyu")), load_run(write_run(tmp_path / "kitti", "kitti"))]
    frame = pd.read_csv(io.StringIO(render(build_table(runs, reference=True), "csv")))
    quoted = frame[frame["quoted"]]
    published = pd.read_csv(REFERENCE_CSV)
    assert not [c for c in frame.columns if c.startswith(("eth3d", "scannet", "diode"))]
    # every paper row with a NYUv2 or KITTI number, and those numbers as published
    expected = published.dropna(subset=["nyu_abs_rel", "kitti_abs_rel"], how="all")
    assert len(quoted) == len(expected)
    assert quoted["nyu_abs_rel"].tolist() == pytest.approx(expected["nyu_abs_rel"].tolist(), nan_ok=True)
    assert quoted["kitti_delta1"].tolist() == pytest.approx(expected["kitti_delta1"].tolist(), nan_ok=True)


# --- progress: no loading bar, bars name the model, few redraws in logs ---------------------

def _fresh_process(code: str, env_extra: dict | None = None) -> str:
    """stderr of ``code`` run in a new interpreter without the test set-up's TQDM_DISABLE (tqdm
    reads its TQDM_* settings once, at import, so only a fresh process shows a user's bars)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code], env={**env, **(env_extra or {})}, cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_loading_a_model_draws_no_bar(tmp_path):
    import fixtures_transformers as ft

    folder = ft.make_tiny_depth_model(tmp_path / "dpt", "dpt")
    err = _fresh_process(
        "import sys\n"
        "from transformers.utils import logging as hf_logging\n"
        "from marigold_bench.inference import MarigoldPredictor\n"
        "from marigold_bench.inference.transformers_depth import TransformersDepthPredictor\n"
        f"TransformersDepthPredictor.from_pretrained({str(folder)!r})\n"
        "MarigoldPredictor.from_pretrained('tiny')\n"  # its text encoder is a transformers model: same bar
        "print('bars still on:', hf_logging.is_progress_bar_enabled(), file=sys.stderr)\n")
    assert "Loading weights" not in err and "%|" not in err
    assert "bars still on: True" in err  # the user's setting is left as it was


def test_run_bar_names_the_model(tmp_path, monkeypatch, capfd):
    from marigold_bench.data import load_dataset
    from marigold_bench.eval.evaluator import run_predictor
    from marigold_bench.inference.baseline import BaselinePredictor

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    dataset = load_dataset("synthetic")
    predictor = BaselinePredictor("constant")
    capfd.readouterr()
    run_predictor(dataset, predictor, str(tmp_path / "run"), progress=True)
    err = capfd.readouterr().err
    assert "baseline:constant on synthetic" in err


class _Log:
    """A log file as a batch job's stderr: no terminal."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return False


def test_bars_in_a_log_file_redraw_rarely(monkeypatch):
    import tqdm.std

    from marigold_bench.eval.progress import LOG_INTERVAL_S, progress

    clock = iter(range(10_000))  # one second passes per look at the clock
    monkeypatch.setattr(tqdm.std, "time", lambda: float(next(clock)))
    log = _Log()
    for _ in progress(range(300), desc="run x on y", file=log):
        pass
    redraws = log.text.count("\r")
    # ~300 seconds at one redraw per LOG_INTERVAL_S, not one per item as at tqdm's 0.1 s default
    assert redraws <= 300 / LOG_INTERVAL_S * 2 + 3, redraws
    assert "run x on y" in log.text and "300/300" in log.text  # the last state is still written


def _bar_interval_after_cli(env_extra: dict) -> float:
    """tqdm's default redraw interval in a fresh process after the CLI ran with stderr in a file."""
    err = _fresh_process("import io, sys\n"
                         "from marigold_bench import cli\n"
                         "cli.main(['protocols'])\n"
                         "from tqdm import tqdm\n"
                         "print(tqdm(range(1), file=io.StringIO()).mininterval, file=sys.stderr)\n", env_extra)
    return float(err.strip().splitlines()[-1])


def test_the_cli_slows_every_bar_when_stderr_is_a_log():
    from marigold_bench.eval.progress import LOG_INTERVAL_S

    # every bar of the process, libraries' included: tqdm's default is 0.1 s
    assert _bar_interval_after_cli({}) == LOG_INTERVAL_S
    assert _bar_interval_after_cli({"TQDM_MININTERVAL": "2"}) == 2.0  # the user's own choice wins



# --- numbers in the docs come from a script -------------------------------------------------

def _doc_numbers():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("doc_numbers", REPO / "benchmarks" / "doc_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["doc_numbers"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_marked_number_has_a_generator_and_every_generator_a_span():
    doc_numbers = _doc_numbers()
    names = []
    for path, found in doc_numbers.all_spans().items():
        text = path.read_text(encoding="utf-8")
        # every opening and closing marker belongs to a parsed span: none unclosed or misspelt
        assert text.count("<!-- num:") == text.count("<!-- /num -->") == len(found), path
        names += [name for name, _ in found]
    assert sorted(names) == sorted(doc_numbers.GENERATORS)  # each once, none without a generator
    # the numbers the issue found stale are marked, so the script owns them
    for name in ("sensitivity_table", "card_test_model_abs_rel", "card_test_model_delta1",
                 "ensemble_study_minutes"):
        assert name in names


def test_rewrite_replaces_only_the_marked_text():
    doc_numbers = _doc_numbers()
    text = "AbsRel <!-- num:a -->19.47<!-- /num --> and δ1 <!-- num:b -->70.71<!-- /num -->, 19.47 unmarked"
    assert doc_numbers.rewrite(text, {"a": "19.41"}) == (
        "AbsRel <!-- num:a -->19.41<!-- /num --> and δ1 <!-- num:b -->70.71<!-- /num -->, 19.47 unmarked")
    assert doc_numbers.spans(text) == [("a", "19.47"), ("b", "70.71")]


def test_model_card_baseline_scores_are_what_the_suite_computes(tmp_path):
    # the cheap spans (non-learned baselines), against an independent reading of the runs
    doc_numbers = _doc_numbers()
    names = [n for n, g in doc_numbers.GENERATORS.items() if g.tier == "fast"]
    assert len(names) == 8
    values = doc_numbers.compute(names, tmp_path)
    card = dict(doc_numbers.spans(doc_numbers.DOCS[1].read_text(encoding="utf-8")))
    for name in names:
        assert card[name] == values[name], name
    ramp = json.loads((tmp_path / "test-baseline-ramp" / "summary.json").read_text())
    assert ramp["n"] == 32 and values["card_test_ramp_abs_rel"] == f"{ramp['metrics']['abs_rel']:.4f}"


@pytest.mark.slow
def test_model_numbers_in_the_docs_are_what_the_script_computes(tmp_path):
    # the tiny model on the synthetic set, its rescore and the leaderboard: minutes on 2 cores
    doc_numbers = _doc_numbers()
    names = [n for n, g in doc_numbers.GENERATORS.items() if g.tier == "model" and not g.timing]
    values = doc_numbers.compute(names, tmp_path)
    marked = {name: text for path in doc_numbers.DOCS for name, text in doc_numbers.spans(path.read_text())}
    assert {n: marked[n] for n in names} == values
