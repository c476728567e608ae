"""Ablation studies: member reuse across N, resume after an interruption, specs and the command."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from marigold_bench.ablation import STUDIES, parse_values, plan
from marigold_bench.ablation.report import aggregate, study_markdown, write_study_report
from marigold_bench.ablation.runner import run_study
from marigold_bench.ablation.training import find_trainer, train_noise_checkpoints
from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.errors import BenchError
from marigold_bench.eval.evaluator import run_predictor

BASE = {"model": "fake", "steps": 4, "ensemble": 1, "seed": 1234, "timestep_spacing": "trailing",
        "noise": "gaussian", "ensembling": None}


class _Recorder:
    """Shared log of every predicted member, and an optional interruption after k images."""

    def __init__(self, die_after=None):
        self.members, self.images, self.built, self.die_after = [], 0, [], die_after

    def factory(self, settings):
        self.built.append(dict(settings))
        return _FakePredictor(settings, self)


class _FakePredictor:
    """A ramp plus member noise seeded by (seed, sample, member): members differ, merging helps."""

    def __init__(self, settings, recorder):
        self.recorder = recorder
        self.settings = {k: settings[k] for k in BASE}

    def predict(self, jobs):
        out = []
        for sample_id, rgb, members in jobs:
            if self.recorder.die_after is not None and self.recorder.images >= self.recorder.die_after:
                raise KeyboardInterrupt
            self.recorder.images += 1
            h, w = rgb.shape[:2]
            ramp = np.repeat(np.linspace(1, 0, h, dtype=np.float32)[:, None], w, axis=1)
            stack = []
            for m in members:
                self.recorder.members.append((self.settings["seed"], self.settings["steps"],
                                              self.settings["timestep_spacing"], sample_id, m))
                rng = np.random.default_rng([self.settings["seed"], m, sum(map(ord, sample_id))])
                amplitude = 0.2 / self.settings["steps"]
                stack.append(np.clip(ramp + amplitude * rng.standard_normal((h, w)), 0, 1).astype(np.float32))
            out.append(np.stack(stack))
        return out

    def merge(self, members, shape):
        return members.mean(axis=0), None


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic", split="test:4")


def test_ensemble_study_predicts_each_member_once(tmp_path, dataset):
    study = STUDIES["ensemble"]
    runs = plan(study, values=(1, 2, 3), seeds=2)
    assert [r.labels["ensemble"] for r in runs[:3]] == [3, 2, 1]  # the largest N first
    recorder = _Recorder()
    frame = run_study(study, runs, dataset, str(tmp_path / "s"), recorder.factory, BASE, progress=False, log=None)

    # every (seed, sample, member) predicted exactly once although five N are scored per seed
    assert len(recorder.members) == len(set(recorder.members)) == 2 * len(dataset) * 3
    assert sorted(frame["ensemble"]) == [1, 1, 2, 2, 3, 3]
    # a smaller N re-merged from the shared members equals an independent run with that N
    alone = run_predictor(dataset, _Recorder().factory({**BASE, "ensemble": 2, "seed": 1235}),
                          str(tmp_path / "alone"), progress=False)
    row = frame[(frame["ensemble"] == 2) & (frame["seed"] == 1235)].iloc[0]
    assert row["abs_rel"] == pytest.approx(alone["metrics"]["abs_rel"], rel=1e-9)
    # averaging members removes noise: the study shows it
    means = aggregate(frame, study).set_index("ensemble")["abs_rel_mean"]
    assert means[3] < means[1] and list(aggregate(frame, study)["seeds"]) == [2, 2, 2]

    # a second call finds everything done: no predictor is even built
    again = _Recorder()
    run_study(study, runs, dataset, str(tmp_path / "s"), again.factory, BASE, progress=False, log=None)
    assert again.built == [] and again.members == []


def test_interrupted_study_continues_where_it_stopped(tmp_path, dataset):
    study = STUDIES["steps"]
    runs = plan(study, values=(1, 2), seeds=1)  # 4 runs x 4 samples = 16 images
    full = run_study(study, runs, dataset, str(tmp_path / "full"), _Recorder().factory, BASE,
                     progress=False, log=None)
    out = str(tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        run_study(study, runs, dataset, out, _Recorder(die_after=10).factory, BASE, progress=False, log=None)
    resumed = _Recorder()
    frame = run_study(study, runs, dataset, out, resumed.factory, BASE, progress=False, log=None)
    assert resumed.images == 6  # the 2 unfinished samples of run 3 and all of run 4
    assert [(s["steps"], s["timestep_spacing"]) for s in resumed.built] == [(1, "leading"), (2, "leading")]
    columns = ["key", "steps", "timestep_spacing", "abs_rel", "delta1", "n"]
    pd.testing.assert_frame_equal(frame[columns], full[columns])


def test_steps_and_spacing_studies_cover_both_spacings(tmp_path, dataset):
    recorder = _Recorder()
    study = STUDIES["spacing"]
    frame = run_study(study, plan(study, values=(1, 10)), dataset, str(tmp_path / "sp"), recorder.factory,
                      BASE, progress=False, log=None)
    assert {(s["steps"], s["timestep_spacing"]) for s in recorder.built} == {
        (1, "trailing"), (10, "trailing"), (1, "leading"), (10, "leading")}
    text = study_markdown(aggregate(frame, study), study)
    assert "| DDIM steps | trailing AbsRel↓ | leading AbsRel↓ | Δ trailing − leading |" in text
    assert text.count("\n| 1 |") == 1 and text.count("\n| 10 |") == 1
    paths = write_study_report(frame, STUDIES["steps"], str(tmp_path / "sp"))
    assert all(os.path.getsize(p) > 0 for p in paths["plot"])
    assert pd.read_csv(paths["table_csv"])["timestep_spacing"].tolist() == ["trailing"] * 2 + ["leading"] * 2


def test_noise_studies_pass_settings_and_checkpoints(tmp_path, dataset):
    recorder = _Recorder()
    study = STUDIES["noise"]
    run_study(study, plan(study, parse_values(study, "gaussian,zeros")), dataset, str(tmp_path / "n"),
              recorder.factory, BASE, progress=False, log=None)
    assert [s["noise"] for s in recorder.built] == ["gaussian", "zeros"]

    made = []

    def fake_trainer(config, overrides):
        made.append(overrides["diffusion.noise"])
        os.makedirs(overrides["export.dir"])
        open(os.path.join(overrides["export.dir"], "model_index.json"), "w").close()

    checkpoints = train_noise_checkpoints(str(tmp_path / "t"), {"name": "x"}, trainer=fake_trainer, log=None)
    assert made == ["gaussian", "multires", "annealed"]
    assert train_noise_checkpoints(str(tmp_path / "t"), {}, trainer=fake_trainer, log=None) == checkpoints
    assert made == ["gaussian", "multires", "annealed"]  # exported checkpoints are not retrained
    runs = plan(STUDIES["train_noise"], checkpoints=checkpoints)
    assert [r.settings["model"] for r in runs] == list(checkpoints.values())
    assert [r.labels["train_noise"] for r in runs] == ["gaussian", "multires", "annealed"]


def test_missing_training_module_is_a_clear_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "marigold_bench.train.trainer", None)  # import now fails
    with pytest.raises(BenchError, match="training module not available"):
        find_trainer()


def test_values_are_checked():
    assert parse_values(STUDIES["ensemble"], "1,2,20") == (1, 2, 20)
    for text, message in (("0,2", r"\[1, 20\]"), ("21", r"\[1, 20\]"), ("a", "int"), ("2,2", "repeats")):
        with pytest.raises(BenchError, match=message):
            parse_values(STUDIES["ensemble"], text)
    with pytest.raises(BenchError, match="unknown noise"):
        parse_values(STUDIES["noise"], "gaussian,pink")
    with pytest.raises(BenchError, match="needs checkpoints"):
        plan(STUDIES["train_noise"])


def test_ablate_command_writes_a_study_directory(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["ablate", "--study", "ensemble", "--model", "baseline:ramp", "--max-samples", "3",
            "--values", "1,2", "--seeds", "1", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| N | AbsRel↓ | δ1↑ | seeds | n |" in printed and "| 2 |" in printed
    assert {"study.json", "table.md", "table.csv", "results.csv", "plot.png", "plot.pdf"} <= set(os.listdir(out))
    summary = json.loads((out / "runs" / "ensemble-2_seed-1234" / "summary.json").read_text())
    assert summary["settings"]["ensemble"] == 2 and summary["ablation"]["labels"] == {"ensemble": 2, "seed": 1234}
    # the same directory refuses another study; bad values are one clear line
    assert main(["ablate", "--study", "noise", "--model", "baseline:ramp", "--max-samples", "3",
                 "--out", str(out)]) == 2
    assert main(args[:-2] + ["--values", "0,5", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "holds another study" in err and "[1, 20]" in err and "Traceback" not in err


def test_ablate_command_passes_study_settings_to_the_model_loader(tmp_path, monkeypatch, capsys):
    """The learned-model path: `load_predictor` receives each run's steps, spacing, noise, model."""
    import sys

    import marigold_bench.inference as inference

    loaded = []

    def fake_load_predictor(model, **kwargs):
        loaded.append({"model": model, **kwargs})
        settings = {**BASE, "model": model, **{k: kwargs[k] for k in BASE if k in kwargs}}
        settings["steps"] = settings["steps"] or 1  # None: "the checkpoint's default"
        return _FakePredictor(settings, _Recorder())

    monkeypatch.setattr(inference, "load_predictor", fake_load_predictor)
    # the folders only have to be recognised as Marigold checkpoints (the loader is faked)
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (tmp_path, a, b):
        folder.mkdir(exist_ok=True)
        (folder / "model_index.json").write_text('{"_class_name": "MarigoldDepthPipeline"}')
    common = ["--max-samples", "2", "--seeds", "1"]
    assert main(["ablate", "--study", "spacing", "--model", str(tmp_path), "--values", "1,2",
                 "--out", str(tmp_path / "sp"), *common]) == 0
    assert [(c["steps"], c["timestep_spacing"]) for c in loaded] == [
        (1, "trailing"), (2, "trailing"), (1, "leading"), (2, "leading")]
    loaded.clear()
    assert main(["ablate", "--study", "noise", "--checkpoints", f"gaussian={a},annealed={b}",
                 "--out", str(tmp_path / "tn"), *common]) == 0
    assert [c["model"] for c in loaded] == [str(a), str(b)] and {c["noise"] for c in loaded} == {"gaussian"}
    assert "| training noise | AbsRel↓ |" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "marigold_bench.train.trainer", None)
    assert main(["ablate", "--study", "noise", "--train", "--out", str(tmp_path / "tr"), *common]) == 2
    assert "training module not available" in capsys.readouterr().err


def test_run_options_reach_every_run(tmp_path, dataset):
    # ablate's --skip-missing and --score-device go to each run_predictor call
    study = STUDIES["ensemble"]
    runs = plan(study, values=(1,), seeds=1)
    with pytest.raises(BenchError, match="not a device"):
        run_study(study, runs, dataset, str(tmp_path / "bad"), _Recorder().factory, BASE, progress=False,
                  log=None, run_options={"score_device": "gpu0"})

    class Broken:
        """The synthetic samples, the second of which cannot be read."""
        protocol, ids = dataset.protocol, dataset.ids

        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            if i == 1:
                from marigold_bench.errors import SampleError
                raise SampleError(f"{dataset.ids[1]}: file missing")
            return dataset[i]

        def describe(self):
            return dataset.describe()

    with pytest.raises(BenchError, match="file missing"):
        run_study(study, runs, Broken(), str(tmp_path / "stop"), _Recorder().factory, BASE, progress=False,
                  log=None)
    frame = run_study(study, runs, Broken(), str(tmp_path / "skip"), _Recorder().factory, BASE, progress=False,
                      log=None, run_options={"skip_missing": True})
    assert frame["n_skipped"].tolist() == [1] and frame["n"].tolist() == [len(dataset) - 1]
