"""The registry of known checkpoints, resolution through a (fake) local Hugging Face cache, and
``marigold-bench models``."""

import argparse
import shutil
import warnings

import pytest

from fixtures_transformers import make_tiny_depth_model
from marigold_bench.cli import main
from marigold_bench.errors import CheckpointError
from marigold_bench.inference.registry import KNOWN_MODELS, lookup

pytestmark = pytest.mark.usefixtures("one_thread")

REVISION = "0123456789abcdef0123456789abcdef01234567"


def _fake_cache(root, hub_id, source):
    """The layout huggingface_hub's cache has after a download: refs/main names the revision,
    snapshots/<revision>/ holds the files."""
    repo = root / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    shutil.copytree(source, repo / "snapshots" / REVISION)
    (repo / "blobs").mkdir()
    return repo / "snapshots" / REVISION


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    return cache


def _args(argv):
    from marigold_bench.commands.common import add_inference_flags

    parser = argparse.ArgumentParser()
    add_inference_flags(parser)
    parser.add_argument("--output-space", default=None)
    return parser.parse_args(argv)


def test_registry_holds_the_public_checkpoints_with_their_real_hub_ids():
    expected = {  # from the model cards
        "marigold-v1-0": "prs-eth/marigold-depth-v1-0", "marigold-v1-1": "prs-eth/marigold-depth-v1-1",
        "marigold-lcm-v1-0": "prs-eth/marigold-depth-lcm-v1-0", "marigold-e2e-ft": "GonzaloMG/marigold-e2e-ft-depth",
        "sd2-e2e-ft": "GonzaloMG/stable-diffusion-e2e-ft-depth",
        "depth-anything-v2-small": "depth-anything/Depth-Anything-V2-Small-hf",
        "depth-anything-v2-base": "depth-anything/Depth-Anything-V2-Base-hf",
        "depth-anything-v2-large": "depth-anything/Depth-Anything-V2-Large-hf",
        "depth-anything-v2-metric-indoor-small": "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
        "depth-anything-v2-metric-outdoor-large": "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf",
        "dpt-large": "Intel/dpt-large", "dpt-hybrid": "Intel/dpt-hybrid-midas",
        "zoedepth-nyu-kitti": "Intel/zoedepth-nyu-kitti", "depth-pro": "apple/DepthPro-hf",
        "glpn-nyu": "vinvino02/glpn-nyu", "glpn-kitti": "vinvino02/glpn-kitti"}
    for name, hub_id in expected.items():
        assert KNOWN_MODELS[name].hub_id == hub_id
    assert len({e.hub_id for e in KNOWN_MODELS.values()}) == len(KNOWN_MODELS) == 26
    spaces = {name: e.output_space for name, e in KNOWN_MODELS.items()}
    assert spaces["dpt-large"] == spaces["depth-anything-v2-small"] == "disparity_affine_invariant"
    assert spaces["depth-anything-v2-metric-indoor-base"] == spaces["glpn-nyu"] == spaces["depth-pro"] == "depth_metric"
    assert spaces["marigold-v1-1"] == "depth_affine_invariant"
    assert {e.name for e in KNOWN_MODELS.values() if e.recipe == "e2e-ft"} == {"marigold-e2e-ft", "sd2-e2e-ft"}
    assert KNOWN_MODELS["marigold-e2e-ft"].steps == 1 and KNOWN_MODELS["marigold-lcm-v1-0"].family == "marigold"
    # v1-1 is evaluated with one step (prs-eth/Marigold script/depth/eval/11_infer_nyu.sh)
    assert KNOWN_MODELS["marigold-v1-1"].steps == 1
    assert all(e.paper for e in KNOWN_MODELS.values())


def test_lookup_by_name_or_hub_id():
    assert lookup("depth-anything-v2-tiny") is None
    assert lookup("Depth-Anything-V2-Small").hub_id == "depth-anything/Depth-Anything-V2-Small-hf"
    assert lookup("DPT-Large").hub_id == "Intel/dpt-large"
    assert lookup("intel/DPT-large").name == "dpt-large"
    assert lookup("/some/folder") is None


def test_registry_name_resolves_through_the_local_cache(hf_cache, tmp_path):
    from marigold_bench.commands.common import build_predictor
    from marigold_bench.inference.transformers_depth import TransformersDepthPredictor

    source = make_tiny_depth_model(tmp_path / "src", "depth_anything")
    snapshot = _fake_cache(hf_cache, "depth-anything/Depth-Anything-V2-Small-hf", source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = build_predictor(_args(["--model", "depth-anything-v2-small", "--device", "cpu"]))
    assert isinstance(predictor, TransformersDepthPredictor)
    settings = predictor.settings
    assert settings["model"] == "depth-anything-v2-small" and settings["model_source"] == "hf-cache"
    assert settings["model_path"] == str(snapshot)
    assert settings["output_space"] == "disparity_affine_invariant"
    # the content identity does not depend on where the files lie
    direct = TransformersDepthPredictor.from_pretrained(str(source), device="cpu")
    assert direct.settings["weights_sha256"] == settings["weights_sha256"]


def test_e2e_ft_registry_entry_brings_its_recipe(hf_cache, tiny_checkpoint):
    from marigold_bench.commands.common import build_predictor

    snapshot = _fake_cache(hf_cache, "GonzaloMG/marigold-e2e-ft-depth", tiny_checkpoint)
    for model in ("marigold-e2e-ft", "GonzaloMG/marigold-e2e-ft-depth", str(snapshot)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            settings = build_predictor(_args(["--model", model, "--device", "cpu"]), processing_res=32).settings
        assert (settings["recipe"], settings["steps"], settings["timestep_spacing"], settings["noise"]) == \
            ("e2e-ft", 1, "trailing", "zeros")


def test_registry_name_not_in_the_cache_names_the_download_command(hf_cache):
    from marigold_bench.commands.common import build_predictor

    with pytest.raises(CheckpointError, match=r"depth-anything-v2-large.*"
                                              r"hf download depth-anything/Depth-Anything-V2-Large-hf"):
        build_predictor(_args(["--model", "depth-anything-v2-large"]))
    assert main(["run", "--dataset", "synthetic", "--model", "marigold-v1-1", "--max-samples", "1"]) == 2


def test_models_command_lists_the_registry_and_marks_cached_ones(hf_cache, tmp_path, capsys):
    _fake_cache(hf_cache, "Intel/dpt-large", make_tiny_depth_model(tmp_path / "dpt", "dpt"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert set(KNOWN_MODELS) <= set(lines)
    assert lines["dpt-large"].rstrip(" |").endswith("yes")
    assert lines["dpt-hybrid"].rstrip(" |").endswith("no")
    assert "1 of 26 in the local cache" in out and "hf download" in out

    assert main(["models", "--cached", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("name,family,output_space") and len(rows) == 2
    assert rows[1].startswith("dpt-large,transformers,disparity_affine_invariant,,384,,,Intel/dpt-large,True,")


def test_registry_recommendation_fills_what_the_flags_leave_open(hf_cache, tiny_checkpoint):
    from marigold_bench.commands.common import build_predictor

    _fake_cache(hf_cache, "prs-eth/marigold-depth-v1-0", tiny_checkpoint)   # its model_index says 1 step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = build_predictor(_args(["--model", "marigold-v1-0", "--device", "cpu"]), processing_res=32)
        chosen = build_predictor(_args(["--model", "marigold-v1-0", "--device", "cpu", "--steps", "2"]),
                                 processing_res=32)
    # the paper's 50 steps (prs-eth/Marigold script/depth/eval_old/11_infer_nyu.sh: --denoise_steps 50)
    assert default.settings["steps"] == KNOWN_MODELS["marigold-v1-0"].steps == 50
    assert chosen.settings["steps"] == 2
    assert default.settings["processing_res"] == 32            # the benchmark protocol's resolution wins
