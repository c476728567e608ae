"""The trainer (train/trainer.py), its config, CLI and export, on the tiny model (CPU)."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from marigold_bench.errors import BenchError
from marigold_bench.train import targets
from marigold_bench.train.config import TrainConfigError, config_from_dict, load_config
from marigold_bench.train.lr_schedule import lr_factor
from marigold_bench.train.resume_state import read_training_state
from marigold_bench.train.trainer import ResumeMismatchError, TrainingError, train

REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(out, **changes):
    """The tiny recipe at toy size: 32x48 crops, micro-batch 2 x 2 accumulation."""
    values = {
        "name": "test", "output_dir": str(out), "seed": 7, "max_steps": 2, "log_every": 1,
        "checkpoint_every": 1, "keep_checkpoints": 10, "cpu_threads": 1,
        "model": {"base": "tiny"},
        "data": {"sources": {"synthetic": 1.0}, "resolution": [32, 48]},
        "diffusion": {"zero_snr": True, "timestep_spacing": "trailing", "noise": "annealed"},
        "optim": {"lr": 1e-3, "micro_batch": 2, "grad_accum": 2, "warmup_steps": 2, "decay_steps": 10,
                  "final_ratio": 0.1},
        "vae_fit": {"steps": 2, "batch": 2, "crop": [16, 16]},
        "validation": {"every": 0},
        "export": {"enabled": False},
    }
    for key, value in changes.items():
        section, _, leaf = key.rpartition(".")
        (values.setdefault(section, {}) if section else values)[leaf] = value
    return config_from_dict(values)


def state_of(checkpoint: Path) -> dict:
    return load_file(str(checkpoint / "state" / "model.safetensors"))


def test_configs_in_the_repo_parse():
    tiny = load_config(REPO / "configs" / "tiny.yaml")
    assert tiny.model.base == "tiny" and tiny.export.dir == "marigold_bench/checkpoints/tiny"
    sd2 = load_config(REPO / "configs" / "marigold-sd2.yaml")
    assert (sd2.max_steps, sd2.optim.micro_batch, sd2.optim.grad_accum, sd2.optim.lr) == (18000, 2, 16, 3e-5)
    assert sd2.diffusion.noise == "annealed" and sd2.data.sources == {"hypersim": 0.9, "vkitti": 0.1}


def test_bad_config_files(tmp_path):
    with pytest.raises(TrainConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("optim:\n  lr: fast\n")
    with pytest.raises(TrainConfigError, match="optim.lr"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("optim:\n  learning_rate: 1.0e-4\n")
    with pytest.raises(TrainConfigError, match="optim.learning_rate"):
        load_config(tmp_path / "typo.yaml")


def test_lr_schedule_is_the_official_iter_exponential():
    """Values worked out by hand from IterExponential's definition (total 100, warm-up 10,
    final ratio 0.01): warm-up n / 10 from 0; then 0.01 ** ((n - 10) / 90); 0.01 from 100 on."""
    cfg = config_from_dict({"optim": {"warmup_steps": 10, "decay_steps": 100, "final_ratio": 0.01}}).optim
    f = lr_factor(cfg)
    assert f(0) == 0.0                               # the first optimiser step runs at lr 0
    assert f(5) == pytest.approx(0.5)
    assert f(10) == pytest.approx(1.0)               # warm-up done, decay not started
    assert f(28) == pytest.approx(10 ** -0.4)        # (28 - 10) / 90 = 0.2 of the way: 0.01 ** 0.2
    assert f(55) == pytest.approx(0.1)               # half-way in log space: 0.01 ** 0.5
    assert f(99) == pytest.approx(0.01 ** (89 / 90))
    assert f(100) == pytest.approx(0.01) and f(150) == pytest.approx(0.01)
    # Marigold's own numbers: 100 warm-up iterations, 1 % at 25K
    sd2 = lr_factor(load_config(REPO / "configs" / "marigold-sd2.yaml").optim)
    assert sd2(50) == pytest.approx(0.5) and sd2(12550) == pytest.approx(0.1) and sd2(30000) == pytest.approx(0.01)
    cfg.lr_schedule = "constant"
    f = lr_factor(cfg)
    assert f(5) == pytest.approx(0.5) and f(10) == 1.0 and f(5000) == 1.0


def test_lr_schedule_drives_the_optimiser_through_lambda_lr():
    """As the trainer uses it: LambdaLR, one scheduler step per optimiser step, state resumable."""
    cfg = config_from_dict({"optim": {"lr": 2e-3, "warmup_steps": 4, "decay_steps": 8, "final_ratio": 0.25}}).optim
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # by hand: 0, 1/4, 2/4, 3/4 of 2e-3; then 0.25 ** (k / 4) for k = 0..3; then 0.25
    expected = [0, 5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3 * 0.25 ** 0.25, 2e-3 * 0.5, 2e-3 * 0.25 ** 0.75, 5e-4, 5e-4]
    assert seen == pytest.approx(expected)
    fresh = torch.optim.lr_scheduler.LambdaLR(torch.optim.Adam([param], lr=cfg.lr), lr_factor(cfg))
    fresh.load_state_dict(scheduler.state_dict())
    assert fresh.last_epoch == 10 and fresh.get_last_lr() == pytest.approx([5e-4])


def test_resume_is_exact(tmp_path):
    """k = 2 steps, stop, resume m = 1 step == 3 uninterrupted steps, bit for bit (with EMA)."""
    only_final = {"optim.ema": True, "checkpoint_every": 100}
    straight = train(tiny_cfg(tmp_path / "a", max_steps=3, **only_final), progress=False)
    first = train(tiny_cfg(tmp_path / "b", max_steps=2, **only_final), progress=False)
    resumed = train(tiny_cfg(tmp_path / "b", max_steps=3, **only_final), resume=tmp_path / "b", progress=False)
    assert resumed["start_step"] == 2
    assert first["losses"] + resumed["losses"] == straight["losses"]
    a, b = state_of(Path(straight["checkpoint"])), state_of(Path(resumed["checkpoint"]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema_a = read_training_state(Path(straight["checkpoint"]) / "state")["parts"]["ema"]
    ema_b = read_training_state(Path(resumed["checkpoint"]) / "state")["parts"]["ema"]
    assert len(ema_a["shadow_params"]) == len(a) and ema_a["optimization_step"] == ema_b["optimization_step"] == 3
    assert all(torch.equal(x, y) for x, y in zip(ema_a["shadow_params"], ema_b["shadow_params"]))
    opt_a = read_training_state(Path(straight["checkpoint"]) / "state")["parts"]["optimizer"]["state"]
    opt_b = read_training_state(Path(resumed["checkpoint"]) / "state")["parts"]["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys() and all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])
    # the metrics log of the resumed run continues, without duplicated steps
    steps = [line.split(",")[0] for line in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3"]


def test_resume_with_another_config_is_refused(tmp_path):
    train(tiny_cfg(tmp_path, max_steps=1), progress=False)
    with pytest.raises(ResumeMismatchError) as err:
        train(tiny_cfg(tmp_path, max_steps=2, **{"optim.lr": 5e-4, "diffusion.noise": "gaussian"}),
              resume=tmp_path, progress=False)
    message = str(err.value)
    assert "optim.lr" in message and "diffusion.noise" in message and "max_steps" not in message
    # a checkpoint of 0.2 (no recipe mark: another data order and warm-up) is refused as such
    state_file = tmp_path / "checkpoints" / "step_0000001" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({k: v for k, v in state.items() if k != "recipe"}))
    with pytest.raises(ResumeMismatchError, match="before 0.3"):
        train(tiny_cfg(tmp_path, max_steps=2), resume=tmp_path, progress=False)
    state_file.write_text(json.dumps(state))
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(tiny_cfg(tmp_path / "new"), resume=tmp_path / "new", progress=False)
    with pytest.raises(TrainingError, match="already holds checkpoints"):  # a fresh run would mix with it
        train(tiny_cfg(tmp_path, max_steps=2), progress=False)


def test_unwritable_output_dir_fails_before_training(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr("marigold_bench.train.trainer.load_base_components",
                        lambda cfg: pytest.fail("the model was loaded before the output check"))
    with pytest.raises(TrainingError, match="not writable"):
        train(tiny_cfg(blocker / "run"), progress=False)


def test_nan_loss_stops_with_step_and_batch_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    real, calls = targets.masked_mse, []

    def poisoned(pred, target, mask):
        calls.append(1)
        loss = real(pred, target, mask)
        return loss * math.nan if len(calls) == 3 else loss  # step 1 (0-based), first micro-batch

    monkeypatch.setattr(targets, "masked_mse", poisoned)
    threads = torch.get_num_threads()
    with pytest.raises(TrainingError) as err:
        train(tiny_cfg(tmp_path, max_steps=3, cpu_threads=threads + 1), progress=False)
    assert torch.get_num_threads() == threads  # cpu_threads holds for the call only
    message = str(err.value)
    assert "step 1" in message and "micro-batch 0" in message and "train/" in message
    assert "step_0000001" in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000001"]


def test_missing_sd2_weights_and_data_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MARIGOLD_DATA", raising=False)
    cfg = load_config(REPO / "configs" / "marigold-sd2.yaml")
    cfg.output_dir = str(tmp_path / "run")
    with pytest.raises(BenchError, match="Hypersim|split file"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()  # a failed start leaves no empty run folder behind
    cfg = tiny_cfg(tmp_path / "run2", **{"model.base": str(tmp_path / "no-sd2")})
    with pytest.raises(BenchError, match="not found"):
        train(cfg, progress=False)
    cfg = tiny_cfg(tmp_path / "run3", **{"model.base": "stabilityai/stable-diffusion-2"})
    with pytest.raises(BenchError, match="not in the local Hugging Face cache"):
        train(cfg, progress=False)


def test_export_loads_in_diffusers_and_validation_runs(tmp_path):
    from diffusers import MarigoldDepthPipeline

    cfg = tiny_cfg(tmp_path / "run", max_steps=2, **{
        "validation.every": 2, "validation.at_start": True, "validation.max_samples": 2,
        "export.enabled": True, "export.dir": str(tmp_path / "export"), "export.card_splits": [],
        "export.default_denoising_steps": 1, "export.default_processing_resolution": 0})
    result = train(cfg, command="marigold-bench train --config test.yaml", progress=False)
    # two real validations (steps 0 and 2): the best is whichever scored lower, read from the files
    scores = {step: json.loads((tmp_path / "run" / "val" / f"step_{step:07d}" / "synthetic-val" / "summary.json")
                               .read_text())["metrics"]["abs_rel"] for step in (0, 2)}
    assert scores[0] != scores[2] and all(0 < v < 10 for v in scores.values())
    assert result["best"]["step"] == min(scores, key=scores.get)
    assert result["best"]["abs_rel"] == pytest.approx(min(scores.values()))
    assert result["last_validation"]["abs_rel"] == pytest.approx(scores[2])
    pipe = MarigoldDepthPipeline.from_pretrained(str(tmp_path / "export"))
    assert pipe.config.prediction_type == "depth"
    assert pipe.config.scale_invariant and pipe.config.shift_invariant
    assert pipe.config.default_denoising_steps == 1
    assert pipe.unet.config.in_channels == 8
    assert pipe.scheduler.__class__.__name__ == "DDIMScheduler"
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.scheduler.config.timestep_spacing == "trailing" and pipe.scheduler.config.rescale_betas_zero_snr
    # the fitted tiny VAE (not the random one) is what was exported
    assert pipe.vae.config.scaling_factor == pytest.approx(result["vae_fit"]["scaling_factor"])
    card = (tmp_path / "export" / "README.md").read_text()
    assert "marigold-bench train --config test.yaml" in card and "seed: 7" in card


def test_cli_train_parser_and_errors(tmp_path, capsys):
    from marigold_bench.cli import main

    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read training config" in capsys.readouterr().err


def test_shipped_tiny_checkpoint():
    folder = REPO / "marigold_bench" / "checkpoints" / "tiny"
    if not (folder / "model_index.json").is_file():
        pytest.skip("the tiny checkpoint has not been trained yet")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 10 * 2**20
    card = (folder / "README.md").read_text()
    assert "marigold-bench train --config configs/tiny.yaml" in card and "baseline:ramp" in card
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldDepthPipeline" and index["prediction_type"] == "depth"


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread is as fast and does not suffer on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_shipped_tiny_checkpoint_beats_the_ramp_baseline(one_thread):
    """Re-scored here through diffusers' own pipeline (not the suite's predictor that wrote the
    model card): 1 step, N=1 on 8 synthetic val scenes, the protocol's fit and clip, against a ramp."""
    folder = REPO / "marigold_bench" / "checkpoints" / "tiny"
    if not (folder / "model_index.json").is_file():
        pytest.skip("the tiny checkpoint has not been trained yet")
    from diffusers import MarigoldDepthPipeline

    from marigold_bench.data.synthetic import SyntheticDataset
    from marigold_bench.data.protocol import get_protocol
    from marigold_bench.eval.align import align_and_clip
    from marigold_bench.eval.metrics import compute_metrics
    from marigold_bench.inference.baseline import BaselinePredictor

    pipe = MarigoldDepthPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    model, ramp = [], []
    for item in (SyntheticDataset("val")[i] for i in range(8)):
        pred = pipe(item["rgb"], num_inference_steps=1, processing_resolution=0,
                    generator=torch.Generator().manual_seed(0)).prediction[0, ..., 0]
        guess = BaselinePredictor("ramp").predict([(item["id"], item["rgb"], [0])])[0][0]
        for out, p in ((model, pred), (ramp, guess)):
            aligned, _, _ = align_and_clip(p, item["depth"], item["valid"], get_protocol("synthetic"))
            out.append(compute_metrics(aligned, item["depth"], item["valid"])["abs_rel"])
    assert sum(model) / 8 < 0.75 * sum(ramp) / 8, (model, ramp)


@pytest.mark.slow
def test_a_few_hundred_steps_learn_depth(tmp_path):
    """Validation AbsRel after a few hundred tiny steps is clearly below the untrained model's."""
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.output_dir, cfg.export.enabled = str(tmp_path), False
    cfg.max_steps = cfg.optim.decay_steps = 300
    cfg.validation.every, cfg.validation.at_start, cfg.validation.max_samples = 300, True, 8
    result = train(cfg, progress=False)
    untrained, trained = result["validations"][0]["abs_rel"], result["validations"][300]["abs_rel"]
    assert trained < 0.75 * untrained, (untrained, trained)
