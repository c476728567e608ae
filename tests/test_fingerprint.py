"""The cache identifies a model by the content of its checkpoint, not by where it lies."""

import shutil

import numpy as np
import pytest

from marigold_bench.data import load_dataset
from marigold_bench.errors import CacheMismatchError
from marigold_bench.eval.evaluator import run_predictor, split_settings
from marigold_bench.inference import load_predictor
from marigold_bench.model.load import weights_fingerprint


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_fingerprint_follows_content_not_location(tiny_checkpoint, tmp_path):
    original = weights_fingerprint(tiny_checkpoint)
    moved = _copy(tiny_checkpoint, tmp_path / "elsewhere" / "renamed")
    assert weights_fingerprint(moved) == original
    # a model card or a hidden file changes no prediction
    (moved / "README.md").write_text("# notes\n")
    (moved / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    assert weights_fingerprint(moved) == original
    # one changed weight byte (near the end: the tensor data, not the header) is another model
    weights = next((moved / "unet").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    assert weights_fingerprint(moved) != original
    # so is a renamed file, e.g. a component in another folder
    other = _copy(tiny_checkpoint, tmp_path / "other")
    (other / "scheduler" / "scheduler_config.json").rename(other / "scheduler" / "config.json")
    assert weights_fingerprint(other) != original


def test_fingerprint_covers_what_loading_reads_and_nothing_else(tiny_checkpoint, tmp_path):
    original = weights_fingerprint(tiny_checkpoint)
    extra = _copy(tiny_checkpoint, tmp_path / "extra")
    unet_weights = next((extra / "unet").glob("*.safetensors"))
    # another variant and another format beside the weights the loader picks, and a licence
    shutil.copy(unet_weights, extra / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    (extra / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"unused")
    (extra / "LICENSE").write_text("Apache-2.0\n")
    assert weights_fingerprint(extra) == original
    # a tokenizer file is read by loading (the empty prompt's token ids come from it)
    vocab = next(f for f in (extra / "tokenizer").iterdir() if f.is_file())
    vocab.write_bytes(vocab.read_bytes() + b" ")
    assert weights_fingerprint(extra) != original


def test_fingerprint_follows_a_linked_component_folder(tiny_checkpoint, tmp_path):
    # e.g. unet -> ../training/best/unet beside shared VAE and text encoder
    assembled = _copy(tiny_checkpoint, tmp_path / "assembled")
    trained = tmp_path / "training" / "unet"
    trained.parent.mkdir()
    shutil.move(str(assembled / "unet"), str(trained))
    (assembled / "unet").symlink_to(trained, target_is_directory=True)
    before = weights_fingerprint(assembled)
    assert before == weights_fingerprint(tiny_checkpoint)
    weights = next(trained.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    assert weights_fingerprint(assembled) != before


def test_fingerprint_follows_symbolic_links(tiny_checkpoint, tmp_path):
    # the hub cache stores each snapshot file as a link to a blob
    linked = tmp_path / "snapshot"
    for file in tiny_checkpoint.rglob("*"):
        if file.is_file():
            target = linked / file.relative_to(tiny_checkpoint)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(file)
    assert weights_fingerprint(linked) == weights_fingerprint(tiny_checkpoint)


class Counting:
    """A predictor wrapper that counts the images it is asked to predict."""

    def __init__(self, inner):
        self.inner, self.predicted = inner, 0
        self.settings = inner.settings

    def predict(self, jobs):
        self.predicted += len(jobs)
        return self.inner.predict(jobs)

    def merge(self, members, shape):
        return self.inner.merge(members, shape)


def test_run_directory_resumes_with_the_checkpoint_elsewhere(tiny_checkpoint, tmp_path, one_thread):
    dataset = load_dataset("synthetic").subset(3)
    out = tmp_path / "run"
    first = Counting(load_predictor(str(tiny_checkpoint), steps=1, processing_res=0))
    summary = run_predictor(dataset, first, str(out), progress=False)
    assert first.predicted == 3

    moved = _copy(tiny_checkpoint, tmp_path / "moved")
    second = Counting(load_predictor(str(moved), steps=1, processing_res=0))
    assert second.settings["model_path"] != first.settings["model_path"]
    assert split_settings(second.settings) == split_settings(first.settings)
    again = run_predictor(dataset, second, str(out), progress=False)
    assert second.predicted == 0                      # everything came from the cache
    assert again["metrics"] == summary["metrics"]
    assert again["settings"]["model_path"] == str(moved.resolve())   # the record says where it was now


def test_other_weights_are_refused_whatever_the_path(tiny_checkpoint, tmp_path, one_thread):
    dataset = load_dataset("synthetic").subset(2)
    out = tmp_path / "run"
    run_predictor(dataset, load_predictor(str(tiny_checkpoint), steps=1, processing_res=0), str(out),
                  progress=False)
    changed = _copy(tiny_checkpoint, tmp_path / "changed")
    weights = next((changed / "unet").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CacheMismatchError, match="weights_sha256"):
        run_predictor(dataset, load_predictor(str(changed), steps=1, processing_res=0), str(out), progress=False)


def test_models_without_a_fingerprint_keep_their_name_in_the_identity():
    # e.g. in-memory pipelines and training-time validation: the name is all there is
    settings = {"model": "validation@step100", "model_path": None, "weights_sha256": None, "steps": 1}
    members, _ = split_settings(settings)
    assert members["model"] == "validation@step100"
    np.testing.assert_equal(sorted(members), ["model", "model_path", "steps", "weights_sha256"])


def test_run_directories_of_version_0_1_keep_resuming(tiny_checkpoint, tmp_path, one_thread):
    # 0.1 identified the model by its path; such a cache is taken over when the path matches
    import h5py
    import json

    from marigold_bench.eval.evaluator import legacy_member_settings

    dataset = load_dataset("synthetic").subset(2)
    out = tmp_path / "run"
    first = load_predictor(str(tiny_checkpoint), steps=1, processing_res=0)
    summary = run_predictor(dataset, first, str(out), progress=False)
    old_identity = legacy_member_settings(first.settings)
    assert "weights_sha256" not in old_identity and old_identity["model_path"] == first.settings["model_path"]
    with h5py.File(out / "predictions.h5", "a") as f:
        f.attrs["settings"] = json.dumps(old_identity, sort_keys=True)

    again = Counting(load_predictor(str(tiny_checkpoint), steps=1, processing_res=0))
    assert run_predictor(dataset, again, str(out), progress=False)["metrics"] == summary["metrics"]
    assert again.predicted == 0
    with h5py.File(out / "predictions.h5", "r") as f:   # rewritten to the new identity
        assert json.loads(f.attrs["settings"]) == split_settings(again.settings)[0]

    # a 0.1 cache of a checkpoint elsewhere cannot be matched to these weights: refused
    with h5py.File(out / "predictions.h5", "a") as f:
        f.attrs["settings"] = json.dumps({**old_identity, "model_path": "/somewhere/else"}, sort_keys=True)
    with pytest.raises(CacheMismatchError):
        run_predictor(dataset, load_predictor(str(tiny_checkpoint), steps=1, processing_res=0), str(out),
                      progress=False)
