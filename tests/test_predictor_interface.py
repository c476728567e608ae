"""Every predictor family follows the one Predictor interface (inference/interface.py)."""

import json
import warnings

import numpy as np
import pytest

from marigold_bench.inference.baseline import BaselinePredictor
from marigold_bench.inference.interface import Predictor, check_predictor, output_space_of

pytestmark = pytest.mark.usefixtures("one_thread")


def test_baseline_declares_its_space_and_merges_at_member_size():
    predictor = BaselinePredictor("ramp", ensemble=2)
    check_predictor(predictor)
    assert isinstance(predictor, Predictor)
    assert predictor.settings["family"] == "baseline"
    assert output_space_of(predictor) == "depth_affine_invariant"
    (members,) = predictor.predict([("a", np.zeros((6, 4, 3), np.uint8), [0, 1])])
    merged, _ = predictor.merge(members, None)
    assert merged.shape == (6, 4)
    # a ramp: 1 at the top row's centre, falling by 1/6 per row
    np.testing.assert_allclose(merged[:, 0], 1 - (np.arange(6) + 0.5) / 6, rtol=0, atol=1e-7)
    bigger, _ = predictor.merge(members, (12, 4))
    assert bigger.shape == (12, 4)


def test_marigold_declares_its_space_and_merge_none_keeps_member_size(tiny_checkpoint):
    from marigold_bench.inference import load_predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = load_predictor(str(tiny_checkpoint), device="cpu", processing_res=32, steps=1)
    check_predictor(predictor)
    assert predictor.settings["family"] == "marigold"
    assert predictor.output_space == "depth_affine_invariant"   # the tiny checkpoint predicts depth
    json.dumps(predictor.settings)
    rgb = np.random.default_rng(1).integers(0, 256, (24, 48, 3), dtype=np.uint8)
    (members,) = predictor.predict([("x", rgb, [0])])
    assert members.shape == (1, 16, 32)                           # long side 32
    kept, _ = predictor.merge(members, None)
    np.testing.assert_array_equal(kept, members[0])               # N = 1: the member, not resized
    full, _ = predictor.merge(members, (24, 48))
    assert full.shape == (24, 48)


def test_disparity_checkpoint_declares_disparity(tiny_checkpoint):
    from diffusers import MarigoldDepthPipeline

    from marigold_bench.inference.predictor import MarigoldPredictor

    pipe = MarigoldDepthPipeline.from_pretrained(tiny_checkpoint)
    pipe.register_to_config(prediction_type="disparity")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = MarigoldPredictor.from_pipeline(pipe, device="cpu", steps=1, processing_res=32)
    assert predictor.output_space == predictor.settings["output_space"] == "disparity_affine_invariant"
