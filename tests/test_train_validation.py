"""In-training validation: which sets (train/validation.py) and which checkpoint they select."""

import json
import warnings
from pathlib import Path

import pytest
from safetensors.torch import load_file

from fixtures_data import build_kitti, build_nyu
from marigold_bench.train import trainer
from marigold_bench.train.config import load_config
from marigold_bench.train.validation import ValidationSetWarning, validation_sets
from test_train import REPO, tiny_cfg


@pytest.fixture
def no_official_splits(tmp_path, monkeypatch):
    """Nothing in $MARIGOLD_SPLITS or the user cache: named splits cannot be found here."""
    monkeypatch.setenv("MARIGOLD_SPLITS", str(tmp_path / "no-splits"))
    monkeypatch.setenv("MARIGOLD_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.delenv("MARIGOLD_DATA", raising=False)


def test_the_sd2_config_validates_on_the_papers_sets():
    cfg = load_config(REPO / "configs" / "marigold-sd2.yaml").validation
    assert cfg.sets == [{"dataset": "nyu", "split": "train"}, {"dataset": "kitti", "split": "val_800"}]
    assert (cfg.steps, cfg.ensemble, cfg.every) == (1, 1, 500)


def test_bad_set_entries_are_config_errors(tmp_path):
    from marigold_bench.errors import TrainConfigError

    with pytest.raises(TrainConfigError, match="unknown dataset 'imagenet'"):
        tiny_cfg(tmp_path, **{"validation.sets": [{"dataset": "imagenet"}]})
    with pytest.raises(TrainConfigError, match=r"validation\.sets\[1\] must be a mapping.*unknown key splt"):
        tiny_cfg(tmp_path, **{"validation.sets": [{"dataset": "nyu", "splt": "train"}]})


def test_present_sets_come_in_order_under_their_protocols(tmp_path, no_official_splits):
    nyu, kitti = build_nyu(tmp_path), build_kitti(tmp_path)
    cfg = tiny_cfg(tmp_path / "run", **{"validation.sets": [
        {"dataset": "nyu", "split": str(nyu.split)},
        {"dataset": "kitti", "split": str(kitti.split), "max_samples": 1}], "validation.data_root": str(tmp_path)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationSetWarning)
        found = validation_sets(cfg.validation)
    assert [label for label, _ in found] == ["nyu-nyu_test", "kitti-kitti_test"]
    (_, nyu_set), (_, kitti_set) = found
    assert nyu_set.protocol.name == "nyu" and nyu_set.protocol.eval_mask == "eigen"
    assert kitti_set.protocol.name == "kitti" and len(kitti_set) == 1
    assert nyu_set.ids == [s.id for s in nyu.samples]


def test_absent_sets_are_skipped_and_synthetic_stands_in(tmp_path, no_official_splits):
    nyu = build_nyu(tmp_path)
    # the paper's named splits without split files, plus KITTI without data: only NYU's file is left
    cfg = tiny_cfg(tmp_path / "run", **{"validation.sets": [
        {"dataset": "nyu", "split": "train"}, {"dataset": "kitti", "split": "val_800"},
        {"dataset": "nyu", "split": str(nyu.split)}], "validation.data_root": str(tmp_path)})
    with pytest.warns(ValidationSetWarning) as caught:
        found = validation_sets(cfg.validation)
    assert [label for label, _ in found] == ["nyu-nyu_test"]
    messages = [str(w.message) for w in caught]
    assert any("nyu-train" in m and "filename_list_train.txt" in m for m in messages)
    assert any("kitti-val_800" in m for m in messages)
    # nothing present at all: the synthetic split, said so
    cfg = tiny_cfg(tmp_path / "run", **{"validation.sets": [{"dataset": "nyu", "split": "train"}],
                                        "validation.data_root": str(tmp_path / "empty"), "validation.max_samples": 3})
    with pytest.warns(ValidationSetWarning) as caught:
        found = validation_sets(cfg.validation)
    assert "synthetic val instead" in str(caught[-1].message)
    assert [label for label, _ in found] == ["synthetic-val"] and len(found[0][1]) == 3
    # no sets configured: synthetic without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationSetWarning)
        assert [label for label, _ in validation_sets(tiny_cfg(tmp_path / "r").validation)] == ["synthetic-val"]


def test_the_main_set_alone_selects_the_checkpoint_that_is_exported(tmp_path, monkeypatch, no_official_splits):
    """Scripted scores: the first (main) set is best at step 1, the second set at step 2 and the
    mean of both at step 0 -- so only selection by the main set picks step 1, and the exported
    UNet must be the one of step 1's checkpoint, not the last."""
    nyu, kitti = build_nyu(tmp_path), build_kitti(tmp_path)
    scripted = {("nyu-nyu_test", 0): 0.30, ("nyu-nyu_test", 1): 0.20, ("nyu-nyu_test", 2): 0.25,
                ("kitti-kitti_test", 0): 0.01, ("kitti-kitti_test", 1): 0.90, ("kitti-kitti_test", 2): 0.005}
    scored = []

    def fake_validate(predictor, dataset, out_dir):
        label, step = Path(out_dir).name, int(Path(out_dir).parent.name.split("_")[1])
        scored.append((label, step, dataset.protocol.name))
        return {"metrics": {"abs_rel": scripted[label, step], "delta1": 0.5}}

    monkeypatch.setattr(trainer, "validate", fake_validate)
    cfg = tiny_cfg(tmp_path / "run", max_steps=2, **{
        "validation.every": 1, "validation.at_start": True, "validation.data_root": str(tmp_path),
        "validation.sets": [{"dataset": "nyu", "split": str(nyu.split)}, {"dataset": "kitti", "split": str(kitti.split)}],
        "export.enabled": True, "export.dir": str(tmp_path / "export"), "export.card_splits": [],
        "export.select": "best", "export.default_denoising_steps": 1, "export.default_processing_resolution": 0})
    result = trainer.train(cfg, progress=False)
    assert sorted(scored) == sorted((label, step, label.split("-")[0]) for label, step in scripted)
    assert result["best"] == {"abs_rel": 0.20, "step": 1, "set": "nyu-nyu_test"}
    assert result["selected_step"] == 1 and result["validation_sets"] == ["nyu-nyu_test", "kitti-kitti_test"]
    assert result["validations"][2]["abs_rel"] == 0.25  # the main set's numbers are the logged ones
    assert result["validations_by_set"][2]["kitti-kitti_test"]["abs_rel"] == 0.005
    step1 = load_file(str(tmp_path / "run" / "checkpoints" / "step_0000001" / "state" / "model.safetensors"))
    step2 = load_file(str(tmp_path / "run" / "checkpoints" / "step_0000002" / "state" / "model.safetensors"))
    exported = load_file(str(tmp_path / "export" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert exported.keys() == step1.keys()
    assert all((exported[k] == step1[k]).all() for k in step1)
    assert any(not (step1[k] == step2[k]).all() for k in step1)  # step 2 differs, so this could fail
    assert "on nyu-nyu_test" in (tmp_path / "export" / "README.md").read_text()
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in metrics[1:]] == ["0", "1", "2"]
    json.dumps(result["best"])  # the trainer state stores it


def test_kittis_validation_archive_is_found_beside_the_test_archive(tmp_path, no_official_splits):
    # the official 800-frame validation set ships as kitti/kitti_sampled_val_800.tar
    from fixtures_data import make_tar
    from marigold_bench.data import load_dataset

    kitti = build_kitti(tmp_path / "src")
    make_tar(kitti.folder, tmp_path / "root" / "kitti" / "kitti_sampled_val_800.tar")
    dataset = load_dataset("kitti", tmp_path / "root", split=str(kitti.split))
    assert dataset.describe()["source"].endswith("kitti/kitti_sampled_val_800.tar")
    assert dataset.ids == [s.id for s in kitti.samples]
