"""The metric-depth protocol definitions as a run resolves them (resolve_scoring, scored_pixels,
align_and_score): default alignment of metric models, the refusal of affine-invariant ones,
per-dataset crop and range rows (KITTI's Garg, DIODE by subset), clipping, median scaling.

Needs the ``eval/protocols/`` package with zoedepth, unidepth and monodepth2 registered (skipped
without the package).
"""

import numpy as np
import pytest

pytest.importorskip("marigold_bench.eval.protocols.base")
# --- the protocol definitions (through resolve_scoring, as a run resolves them) ----------------

from marigold_bench.data.registry import get_benchmark
from marigold_bench.errors import BenchError, PredictionError
from marigold_bench.eval.protocols import get_evaluation_protocol, resolve_scoring
from marigold_bench.eval.scoring import align_and_score, scored_pixels
from marigold_bench.output_spaces import (DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE,
                                          DISPARITY_AFFINE)
from marigold_bench.tasks import METRICS


def _item(spec, depth):
    """An item as a loader makes it: mask = validity and the benchmark's range, valid = mask & its crop."""
    from marigold_bench.data.base import masks
    valid, mask = masks(depth.astype(np.float32), spec)
    return {"id": "x", "depth": depth.astype(np.float32), "valid": valid, "mask": mask}


@pytest.mark.parametrize("protocol", ["zoedepth", "unidepth"])
def test_metric_models_are_scored_unaligned_by_default(protocol):
    scoring = resolve_scoring(get_benchmark("nyu"), protocol, DEPTH_METRIC)
    assert (scoring.alignment, scoring.fit_space) == ("none", "depth") and not scoring.overrides


@pytest.mark.parametrize("protocol", ["zoedepth", "unidepth", "monodepth2"])
@pytest.mark.parametrize("space", [DEPTH_AFFINE, DISPARITY_AFFINE])
def test_affine_invariant_model_is_refused_with_the_allowed_alignments(protocol, space):
    with pytest.raises(BenchError, match=f"protocol {protocol} scores .*{space} predictions are only defined up "
                                         r"to a fit, so choose --alignment affine"):
        resolve_scoring(get_benchmark("nyu"), protocol, space)
    # an explicit fit is honoured (and recorded as the user's choice)
    chosen = resolve_scoring(get_benchmark("nyu"), protocol, space, alignment="affine")
    assert chosen.alignment == "affine" and "alignment" in chosen.overrides


def test_zoedepth_scores_nyu_inside_eigen_with_its_range():
    spec = get_benchmark("nyu")
    depth = np.full((480, 640), 2.0); depth[100, 100] = 12.0         # beyond 10 m: not scored
    item = _item(spec, depth)
    pred = np.full((480, 640), 2.0); pred[0, 0] = 100.0               # outside the crop: not scored
    pred[200, 200] = np.inf                                          # clipped to 10
    pred[201, 201] = np.nan                                          # clipped to 1e-3
    scoring = resolve_scoring(spec, "zoedepth", DEPTH_METRIC)
    rec = align_and_score("x", pred, item["depth"], scored_pixels(item, scoring), scoring)
    n = 426 * 560 - 1
    # two wrong pixels: 10 vs 2 (|e| = 4 relative) and 1e-3 vs 2 (0.9995)
    assert rec["abs_rel"] == pytest.approx((4.0 + (2 - 1e-3) / 2) / n)
    assert rec["delta1"] == pytest.approx((n - 2) / n)
    assert set(get_evaluation_protocol("zoedepth").metric_keys) <= set(rec)


def test_zoedepth_takes_kittis_garg_row_not_its_eigen_default():
    spec = get_benchmark("kitti")
    depth = np.full((352, 1216), 20.0)
    pred = np.full((352, 1216), 20.0)
    # row 340 is inside Garg (rows 143:349) but below KITTI's Eigen default (rows 117:321)
    pred[340, 600] = 40.0
    item = _item(spec, depth)
    scoring = resolve_scoring(spec, "zoedepth", DEPTH_METRIC)
    rec = align_and_score("x", pred, item["depth"], scored_pixels(item, scoring), scoring)
    n = (349 - 143) * (1172 - 43)
    assert rec["abs_rel"] == pytest.approx(1.0 / n)


def test_zoedepth_diode_row_by_subset():
    spec = get_benchmark("diode")
    depth = np.full((768, 1024), 30.0)        # 30 m: outside the indoor row (10 m), inside the outdoor (80 m)
    pred = np.full((768, 1024), 15.0)
    scoring = resolve_scoring(spec, "zoedepth", DEPTH_METRIC)
    item = _item(spec, depth)
    valid = scored_pixels(item, scoring)
    outdoor = spec.subsets["outdoor"]
    ids = {"outdoor": "val/outdoor/scene_00022/scan_00193/00022_00193_outdoor_000_010",
           "indoor": "val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010"}
    assert outdoor(ids["outdoor"]) and not outdoor(ids["indoor"])
    rec = align_and_score(ids["outdoor"], pred, depth, valid, scoring)
    assert rec["abs_rel"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no valid pixels"):
        align_and_score(ids["indoor"], pred, depth, valid, scoring)


def test_unidepth_is_not_clipped_and_uses_its_max_depth():
    spec = get_benchmark("ibims")
    depth = np.full((480, 640), 5.0)
    pred = np.full((480, 640), 5.0); pred[10, 10] = 50.0   # unclipped: ratio 10
    item = _item(spec, depth)
    scoring = resolve_scoring(spec, "unidepth", DEPTH_METRIC)
    rec = align_and_score("x", pred, item["depth"], scored_pixels(item, scoring), scoring)
    n = 480 * 640                                            # iBims-1 under UniDepth: no crop
    assert rec["abs_rel"] == pytest.approx(9.0 / n)
    assert rec["delta1"] == pytest.approx((n - 1) / n)


def test_unidepth_refuses_nan():
    spec = get_benchmark("ibims")
    depth = np.full((8, 8), 5.0); pred = depth.copy(); pred[1, 1] = np.nan
    item = _item(spec, depth)
    scoring = resolve_scoring(spec, "unidepth", DEPTH_METRIC)
    with pytest.raises(PredictionError, match="NaN or inf"):
        align_and_score("x", pred, item["depth"], scored_pixels(item, scoring), scoring)


def test_monodepth2_median_scales_then_clips():
    spec = get_benchmark("kitti")
    depth = np.full((352, 1216), 10.0); depth[200, 200] = 60.0
    pred = np.full((352, 1216), 1.0); pred[200, 200] = 20.0   # x10 by median scaling -> 200 -> clipped to 80
    item = _item(spec, depth)
    scoring = resolve_scoring(spec, "monodepth2", DEPTH_SCALE)
    assert scoring.alignment == "median"
    rec = align_and_score("x", pred, item["depth"], scored_pixels(item, scoring), scoring)
    n = (349 - 143) * (1172 - 43)
    assert rec["scale"] == pytest.approx(10.0)
    assert rec["abs_rel"] == pytest.approx((80 - 60) / 60 / n)


def test_metric_specs_know_the_new_keys():
    for key in ("silog_std", "medianlog", "d_auc", "delta_103", "d1_ssi"):
        assert key in METRICS
    assert METRICS["d_auc"].higher_is_better and METRICS["silog_std"].lower_is_better
    for name in ("zoedepth", "unidepth", "monodepth2"):
        for key in get_evaluation_protocol(name).metric_keys:
            assert name in METRICS[key].protocols, (name, key)
