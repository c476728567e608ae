"""Bad training inputs end in one line and exit 2, and nothing in a config or a checkpoint runs code.

Issue 18: python tags and duplicate keys in YAML configs (``train`` and ``ablate --train``),
numbers that cannot work (``checkpoint_every: 0``, ``lr: .nan``, a string weight, a negative
resolution, a bad validation ``max_samples``) refused when the config is read, a resume folder
with pickled state refused before anything in it is read, and a transformers checkpoint whose
``.bin`` is a crafted pickle refused in one line.
"""

import pickle
import shutil
import textwrap
from pathlib import Path

import pytest

from marigold_bench.cli import main
from marigold_bench.errors import TrainConfigError, TrainingError
from marigold_bench.train.config import config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]


class _CreatesMarker:
    """Unpickling this creates the file ``path``: proof that a pickle was executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_pickle(path: Path, marker: Path) -> None:
    """A file as ``torch.save`` writes one (what accelerate and transformers read back with
    ``torch.load``), holding an object whose unpickling creates ``marker``."""
    import torch

    torch.save({"state": _CreatesMarker(marker)}, path)


def one_error_line(capsys, command: str) -> str:
    """The CLI's stderr, checked to be exactly one ``marigold-bench <command>: error:`` line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"marigold-bench {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def write_config(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# --- YAML: python tags and duplicate keys --------------------------------------------------------

PYTHON_TAG = """
    name: attack
    output_dir: {out}
    optim:
      lr: !!python/object/apply:os.system ["touch {marker}"]
"""


def test_python_tag_is_refused_with_file_and_line(tmp_path):
    marker = tmp_path / "executed"
    path = write_config(tmp_path, PYTHON_TAG.format(out=tmp_path / "run", marker=marker))
    with pytest.raises(TrainConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and "line 4" in message   # the tag is on the 4th line
    assert "python" in message
    assert not marker.exists()


def test_python_tag_through_train_cli_is_one_line(tmp_path, capsys):
    marker = tmp_path / "executed"
    path = write_config(tmp_path, PYTHON_TAG.format(out=tmp_path / "run", marker=marker))
    assert main(["train", "--config", str(path)]) == 2
    line = one_error_line(capsys, "train")
    assert str(path) in line and "line 4" in line
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_python_tag_through_ablate_train_is_one_line(tmp_path, capsys):
    marker = tmp_path / "executed"
    path = write_config(tmp_path, PYTHON_TAG.format(out=tmp_path / "run", marker=marker))
    code = main(["ablate", "--study", "noise", "--train", "--train-config", str(path),
                 "--values", "gaussian", "--out", str(tmp_path / "study")])
    assert code == 2
    line = one_error_line(capsys, "ablate")
    assert str(path) in line and "line 4" in line
    assert not marker.exists()


def test_ablate_train_reads_configs_like_train(tmp_path, capsys):
    """The same loader: duplicate keys are refused there too, naming the key and both lines."""
    path = write_config(tmp_path, """
        optim:
          lr: 1.0e-3
          lr: 2.0e-3
    """)
    code = main(["ablate", "--study", "noise", "--train", "--train-config", str(path),
                 "--values", "gaussian", "--out", str(tmp_path / "study")])
    assert code == 2
    line = one_error_line(capsys, "ablate")
    assert "optim.lr" in line and "line 3" in line and "line 2" in line


@pytest.mark.parametrize("text, key, line, first", [
    ("optim:\n  lr: 1.0e-3\n  lr: 2.0e-3\n", "optim.lr", 3, 2),
    ("max_steps: 10\nseed: 1\nmax_steps: 20\n", "max_steps", 3, 1),
    ("optim:\n  lr: 1.0e-3\ndata:\n  flip_p: 0.5\noptim:\n  micro_batch: 1\n", "optim", 5, 1),
    ("data:\n  sources: {synthetic: 1.0, synthetic: 2.0}\n", "data.sources.synthetic", 2, 2),
])
def test_duplicate_keys_are_refused(tmp_path, text, key, line, first):
    """Plain YAML keeps the last of two equal keys without a word; a config never does."""
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(TrainConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and "duplicate" in message
    assert f"key {key} " in message
    assert f"line {line}" in message and f"line {first}" in message and str(path) in message


def test_merge_keys_stay_allowed(tmp_path):
    """A YAML merge (``<<: *base``) with an override is not a duplicate: the override wins."""
    path = tmp_path / "merge.yaml"
    path.write_text("optim:\n  lr: 1.0e-3\n  micro_batch: 1\nvae_fit:\n  <<: {lr: 0.5, batch: 3}\n  lr: 0.25\n")
    cfg = load_config(path)
    assert cfg.vae_fit.lr == 0.25 and cfg.vae_fit.batch == 3 and cfg.optim.micro_batch == 1


def test_malformed_yaml_is_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("optim:\n  lr: [1, 2\nseed: 3\n")
    with pytest.raises(TrainConfigError) as err:
        load_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value) and "line" in str(err.value)


def test_a_config_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(TrainConfigError, match="mapping"):
        load_config(path)


# --- numbers, checked at load with the key path -------------------------------------------------

@pytest.mark.parametrize("values, key", [
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"checkpoint_every": -5}, "checkpoint_every"),
    ({"log_every": 0}, "log_every"),
    ({"optim": {"lr": float("nan")}}, "optim.lr"),
    ({"optim": {"lr": float("inf")}}, "optim.lr"),
    ({"optim": {"lr": 0}}, "optim.lr"),
    ({"optim": {"lr": -1e-4}}, "optim.lr"),
    ({"optim": {"ema_decay": 1.5}}, "optim.ema_decay"),
    ({"optim": {"final_ratio": float("nan")}}, "optim.final_ratio"),
    ({"diffusion": {"noise_strength": float("nan")}}, "diffusion.noise_strength"),
    ({"vae_fit": {"lr": float("inf")}}, "vae_fit.lr"),
    ({"vae_fit": {"batch": 0}}, "vae_fit.batch"),
    ({"data": {"sources": {"synthetic": "heavy"}}}, "data.sources.synthetic"),
    ({"data": {"sources": {"synthetic": True}}}, "data.sources.synthetic"),
    ({"data": {"sources": {"synthetic": float("nan")}}}, "data.sources.synthetic"),
    ({"data": {"sources": {"synthetic": None}}}, "data.sources.synthetic"),
    ({"data": {"resolution": [-32, 48]}}, "data.resolution"),
    ({"data": {"resolution": [32, 0]}}, "data.resolution"),
    ({"data": {"resolution": [32.5, 48]}}, "data.resolution"),
    ({"data": {"resolution": ["32", 48]}}, "data.resolution"),
    ({"data": {"num_workers": -1}}, "data.num_workers"),
    ({"vae_fit": {"crop": [-16, 16]}}, "vae_fit.crop"),
    ({"validation": {"max_samples": 0}}, "validation.max_samples"),
    ({"validation": {"max_samples": -1}}, "validation.max_samples"),
    ({"validation": {"every": -1}}, "validation.every"),
    ({"validation": {"steps": 0}}, "validation.steps"),
    ({"validation": {"ensemble": 0}}, "validation.ensemble"),
    ({"validation": {"sets": [{"dataset": "synthetic", "max_samples": 0}]}}, "validation.sets[1].max_samples"),
    ({"validation": {"sets": [{"dataset": "synthetic", "max_samples": -3}]}}, "validation.sets[1].max_samples"),
    ({"validation": {"sets": [{"dataset": "synthetic"}, {"dataset": "synthetic", "max_samples": "ten"}]}},
     "validation.sets[2].max_samples"),
    ({"validation": {"sets": [{"dataset": "synthetic", "max_samples": 2.5}]}}, "validation.sets[1].max_samples"),
    ({"validation": {"sets": [{"dataset": "synthetic", "max_samples": True}]}}, "validation.sets[1].max_samples"),
    ({"validation": {"sets": [{"dataset": "synthetic", "split": 3}]}}, "validation.sets[1].split"),
    # synthetic splits: a name the benchmark lacks or a count below 1 (was a ValueError once training began)
    ({"data": {"synthetic_split": "bogus"}}, "data.synthetic_split: unknown synthetic split"),
    ({"data": {"synthetic_split": "train:0"}}, "data.synthetic_split: synthetic split 'train:0'"),
    ({"validation": {"split": "val:abc"}}, "validation.split: synthetic split 'val:abc'"),
    ({"export": {"card_splits": ["val", "test:-3"]}}, "export.card_splits[2]: synthetic split 'test:-3'"),
    ({"export": {"card_splits": [7]}}, "export.card_splits[1] must be a synthetic split name"),
    ({"export": {"default_denoising_steps": 0}}, "export.default_denoising_steps"),
    ({"export": {"default_processing_resolution": -1}}, "export.default_processing_resolution"),
    ({"cpu_threads": 0}, "cpu_threads"),
])
def test_bad_numbers_are_refused_at_load(values, key):
    with pytest.raises(TrainConfigError) as err:
        config_from_dict(values)
    message = str(err.value)
    assert "\n" not in message
    assert key in message


def test_good_numbers_still_load():
    """The limits are not off by one: the smallest allowed values load, null stays allowed."""
    cfg = config_from_dict({"checkpoint_every": 1, "log_every": 1, "optim": {"lr": 1e-9, "ema_decay": 1.0},
                            "data": {"sources": {"synthetic": 1, "hypersim": 0}, "resolution": [1, 1]},
                            "validation": {"every": 0, "max_samples": 1, "sets": [
                                {"dataset": "synthetic", "max_samples": 1},
                                {"dataset": "synthetic", "split": "val", "max_samples": None}]},
                            "export": {"default_processing_resolution": 0}, "cpu_threads": None})
    assert cfg.checkpoint_every == 1 and cfg.data.sources == {"synthetic": 1, "hypersim": 0}
    assert cfg.validation.sets[0]["max_samples"] == 1


@pytest.mark.parametrize("text, key", [
    ("checkpoint_every: 0\n", "checkpoint_every"),
    ("optim:\n  lr: .nan\n", "optim.lr"),
    ("data:\n  sources: {synthetic: heavy}\n", "data.sources.synthetic"),
    ("data:\n  resolution: [-32, 48]\n", "data.resolution"),
    ("validation:\n  sets:\n    - {dataset: synthetic, max_samples: -1}\n", "validation.sets[1].max_samples"),
    ("optim:\n  lr: 1.0e-3\n  lr: 2.0e-3\n", "optim.lr"),
    ("data:\n  synthetic_split: test:0\n", "data.synthetic_split"),
    ("validation:\n  split: bogus\n", "validation.split"),
])
def test_train_cli_refuses_bad_configs_in_one_line(tmp_path, capsys, text, key):
    """Through ``marigold-bench train``: exit 2, one line naming the key, before anything is made."""
    out = tmp_path / "run"
    path = tmp_path / "bad.yaml"
    path.write_text(f"output_dir: {out}\nmodel: {{base: tiny}}\n" + text)
    assert main(["train", "--config", str(path)]) == 2
    line = one_error_line(capsys, "train")
    assert key in line
    assert not out.exists()


def test_shipped_configs_pass_the_stricter_checks():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)


# --- resume state: no pickle, ever --------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny run of one optimiser step (with EMA), checkpointed."""
    from test_train import tiny_cfg
    from marigold_bench.train.trainer import train

    out = tmp_path_factory.mktemp("trained") / "run"
    train(tiny_cfg(out, max_steps=1, **{"optim.ema": True}), progress=False)
    return out


def _copy_run(trained_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def test_state_is_written_without_pickle(trained_run):
    """Every file of a checkpoint is safetensors or JSON; none of them is a pickle stream."""
    checkpoint = trained_run / "checkpoints" / "step_0000001"
    files = [p for p in checkpoint.rglob("*") if p.is_file()]
    assert files and all(p.suffix in (".safetensors", ".json") for p in files), files
    for path in files:  # pickle protocol 2+ starts with b"\x80"; torch's zip format with b"PK"
        assert path.read_bytes()[:2] not in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK")


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "optimizer.bin", "random_states_0.pkl",
                                  "scheduler.pt"])
def test_a_pickle_in_the_state_folder_is_refused_and_never_run(trained_run, tmp_path, name):
    from test_train import tiny_cfg
    from marigold_bench.train.trainer import train

    out = _copy_run(trained_run, tmp_path)
    marker = tmp_path / "executed"
    write_pickle(out / "checkpoints" / "step_0000001" / "state" / name, marker)
    with pytest.raises(TrainingError) as err:
        train(tiny_cfg(out, max_steps=2, **{"optim.ema": True}), resume=out, progress=False)
    message = str(err.value)
    assert name in message and "\n" not in message
    assert not marker.exists()


def test_a_pickle_beside_the_state_is_refused_through_the_cli(trained_run, tmp_path, capsys):
    """Also one level up (the checkpoint folder itself), and as the CLI shows it: one line, exit 2."""
    out = _copy_run(trained_run, tmp_path)
    marker = tmp_path / "executed"
    write_pickle(out / "checkpoints" / "step_0000001" / "extra_state.pkl", marker)
    config = tmp_path / "config.yaml"
    shutil.copy(out / "config.yaml", config)
    assert main(["train", "--config", str(config), "--resume", str(out)]) == 2
    line = one_error_line(capsys, "train")
    assert "extra_state.pkl" in line
    assert not marker.exists()


def test_resume_reads_no_pickle(trained_run, tmp_path, monkeypatch):
    """Resume with every unpickling entry point disabled: it still continues (nothing is unpickled)."""
    import torch

    from test_train import tiny_cfg
    from marigold_bench.train.trainer import train

    out = _copy_run(trained_run, tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("resume unpickled something")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    result = train(tiny_cfg(out, max_steps=2, **{"optim.ema": True}), resume=out, progress=False)
    assert result["start_step"] == 1 and len(result["losses"]) == 1


# --- a transformers checkpoint whose weights are a crafted pickle ------------------------------

def test_transformers_checkpoint_with_a_crafted_bin_is_one_line(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from fixtures_transformers import make_tiny_depth_model

    model = make_tiny_depth_model(tmp_path / "model", "dpt")
    for weights in model.glob("*.safetensors"):
        weights.unlink()
    marker = tmp_path / "executed"
    write_pickle(model / "pytorch_model.bin", marker)
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    code = main(["predict", "--model", str(model), "--input", str(image), "--out", str(tmp_path / "out")])
    assert code == 2
    line = one_error_line(capsys, "predict")
    assert "pytorch_model.bin" in line or "pickle" in line
    assert not marker.exists()


# --- the pickle-free state format itself --------------------------------------------------------

def _same(a, b) -> bool:
    """Equal values of equal types all the way down (tensors: equal dtype, shape and bits)."""
    import numpy as np
    import torch

    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_state_round_trips_through_json_and_safetensors(tmp_path):
    """Adam's state (int keys, tuple betas, 0-dim step tensors), LambdaLR's and the RNG states come
    back with the same types and bits after JSON text and a safetensors file."""
    import json

    import torch
    from safetensors.torch import load_file, save_file

    from marigold_bench.train.resume_state import pack, rng_state, unpack

    param = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    optimizer = torch.optim.Adam([param], lr=1e-3, betas=(0.8, 0.99))
    param.grad = torch.full_like(param, 0.5)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda n: 0.5)
    original = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()}
    tensors = {}
    text = json.dumps(pack(original, tensors, "x"))
    save_file(tensors, str(tmp_path / "t.safetensors"))
    back = unpack(json.loads(text), load_file(str(tmp_path / "t.safetensors")))
    assert _same(original, back)
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.99)
    assert list(back["optimizer"]["state"]) == [0]
    assert back["optimizer"]["state"][0]["step"].shape == ()
    with pytest.raises(ValueError):  # plain JSON objects are not state: only tagged entries are
        unpack({"__reduce__": ["os.system", "x"]}, {})


def test_restored_random_states_continue_the_same_draws(tmp_path):
    import random

    import numpy as np
    import torch

    from marigold_bench.train.resume_state import load_training_state, save_training_state

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = tmp_path / "checkpoint" / "state"
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    save_training_state(state, model=model, parts={"optimizer": optimizer}, step=5)
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    assert load_training_state(state, model=model, parts={"optimizer": optimizer}) == 5
    drawn = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    assert torch.equal(expected[0], drawn[0]) and np.array_equal(expected[1], drawn[1]) and expected[2] == drawn[2]


@pytest.mark.parametrize("damage", ["training.json", "training.safetensors", "rng_0.json", "missing"])
def test_damaged_state_is_one_line(trained_run, tmp_path, damage):
    from test_train import tiny_cfg
    from marigold_bench.train.trainer import train

    out = _copy_run(trained_run, tmp_path)
    state = out / "checkpoints" / "step_0000001" / "state"
    if damage == "missing":
        (state / "training.safetensors").unlink()
    else:
        (state / damage).write_bytes(b"{\"format\": 1, \"parts\": ")
    with pytest.raises(TrainingError) as err:
        train(tiny_cfg(out, max_steps=2, **{"optim.ema": True}), resume=out, progress=False)
    named = {"missing": "state/training.safetensors is missing", "rng_0.json": "rng_0.json"}.get(damage, damage)
    assert "\n" not in str(err.value) and named in str(err.value)
