"""The procedural benchmark: determinism, contract dtypes and exact geometry."""

import numpy as np
import pytest

from marigold_bench.cli import main
from marigold_bench.data import load_dataset
from marigold_bench.data.synthetic import (HEIGHT, WIDTH, _hit_box, _hit_plane, _hit_sphere, _indoor_objects,
                                           parse_split, render_scene)
from marigold_bench.errors import SplitNotFoundError


def test_same_seed_same_scene_and_splits_disjoint():
    a, b = render_scene(7), render_scene(7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    test, val = load_dataset("synthetic"), load_dataset("synthetic", split="val")
    assert len(test) == 32 and len(val) == 16
    assert not np.array_equal(test[0]["rgb"], val[0]["rgb"])


def test_items_follow_the_contract():
    ds = load_dataset("synthetic", split="test:4")
    assert len(ds) == 4
    for i, item in enumerate(ds):
        assert item["id"] == ds.ids[i]
        assert item["rgb"].dtype == np.uint8 and item["rgb"].shape == (72, 96, 3)
        assert item["depth"].dtype == np.float32 and item["valid"].dtype == bool
        d = item["depth"][item["valid"]]
        assert d.min() > 1e-3 and d.max() < 200
        assert np.all(item["depth"][~item["valid"]] == 0)


def test_indoor_and_outdoor_ranges():
    _, indoor, valid_in = render_scene(0, "indoor")
    _, outdoor, valid_out = render_scene(1, "outdoor")
    assert valid_in.all() and indoor.max() < 12  # a closed room: every ray hits something
    assert not valid_out.all()  # the sky has no depth
    assert outdoor[valid_out].max() > 30


def test_ray_intersections_by_hand():
    dirs = np.array([[0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [0.3, 0.0, 1.0]])
    # plane z = 5 -> t = 5 for every ray with d_z = 1
    np.testing.assert_allclose(_hit_plane(dirs, 2, 5.0), [5, 5, 5])
    # floor y = 2 -> t = 2 / 0.5 = 4 for the second ray, none for rays parallel to it
    floor = _hit_plane(dirs, 1, 2.0)
    assert floor[1] == 4 and np.isinf(floor[0])
    # unit sphere at z = 3 on the optical axis -> first hit at t = 2
    assert _hit_sphere(dirs, np.array([0.0, 0.0, 3.0]), 1.0)[0] == pytest.approx(2.0)
    # box spanning z in [4, 6] around the axis -> t = 4; the slanted ray misses it (x = 1.2 at z 4)
    box = _hit_box(dirs, np.array([-1.0, -1.0, 4.0]), np.array([1.0, 1.0, 6.0]))
    assert box[0] == pytest.approx(4.0) and np.isinf(box[2])


def scene_layout(seed):
    """The focal length and objects render_scene draws for an indoor ``seed`` (same draw order)."""
    rng = np.random.default_rng(seed)
    focal = WIDTH * rng.uniform(0.75, 1.1)
    return focal, _indoor_objects(rng)


@pytest.mark.parametrize("seed", [0, 4])
def test_planar_depth_of_a_frontal_wall_is_constant(seed):
    """Rendered depth is camera z, not ray length: every pixel that sees the back wall (the plane
    z = c) reads exactly c, though its ray length, worked out here from the pixel and the focal
    length, varies by several per cent across the wall."""
    focal, objects = scene_layout(seed)
    (axis, c), normal = objects[4][1], objects[4][2]
    assert axis == 2 and normal == (0.0, 0.0, -1.0)  # the back wall faces the camera
    _, depth, valid = render_scene(seed)
    wall = valid & (np.abs(depth - c) < 1e-4)
    rows, cols = np.nonzero(wall)
    assert wall.sum() > 500 and np.ptp(rows) > 20 and np.ptp(cols) > 40  # a large patch of the frame
    ray_length = c * np.sqrt(((cols + 0.5 - WIDTH / 2) / focal) ** 2 + ((rows + 0.5 - HEIGHT / 2) / focal) ** 2 + 1)
    assert ray_length.max() / ray_length.min() > 1.05  # so a ray-length depth would not be constant
    # and the floor (y = camera height): planar depth = h * f / (v - H/2), a function of the row only
    cam_h = objects[0][1][1]
    v = np.arange(HEIGHT) + 0.5 - HEIGHT / 2
    floor_depth = np.where(v > 0, cam_h * focal / np.where(v > 0, v, 1), np.inf)[:, None]
    on_floor = valid & (np.abs(depth - floor_depth) < 1e-4 * floor_depth)
    assert on_floor.sum() > 200 and len(np.unique(np.nonzero(on_floor)[0])) > 5


def test_unknown_split():
    with pytest.raises(SplitNotFoundError, match="known: test, val, train"):
        load_dataset("synthetic", split="nope")


@pytest.mark.parametrize("split", ["test:0", "test:-3", "test:abc", "val:", "train:1.5"])
def test_a_count_that_is_not_one_or_more_samples_is_refused(split):
    # test:0 and test:-3 once opened an empty benchmark (and `run` made an empty run folder)
    with pytest.raises(SplitNotFoundError, match="at least 1") as err:
        load_dataset("synthetic", split=split)
    assert repr(split) in str(err.value)


def test_good_counts_still_open():
    assert parse_split("test:1") == ("test", 1)
    assert parse_split("val") == ("val", 16)
    assert parse_split(None) == ("test", 32)
    assert len(load_dataset("synthetic", split="val:3")) == 3


def _runs_with_split(tmp_path, split):
    """Every command that opens the synthetic benchmark from ``--split``, with that split."""
    source = tmp_path / "source"
    assert main(["run", "--dataset", "synthetic", "--split", "test:2", "--model", "baseline:ramp",
                 "--out", str(source)]) == 0
    out = tmp_path / "out"
    return source, out, {
        "run": ["run", "--dataset", "synthetic", "--split", split, "--model", "baseline:ramp", "--out", str(out)],
        "evaluate": ["evaluate", "--dataset", "synthetic", "--split", split, "--predictions",
                     str(source / "predictions.h5"), "--out", str(out)],
        "rescore": ["rescore", str(source), "--split", split, "--out", str(out)],
        "leaderboard": ["leaderboard", "--models", "baseline:ramp", "--datasets", "synthetic", "--split", split,
                        "--out", str(out)],
        "ablate": ["ablate", "--study", "ensemble", "--values", "1", "--seeds", "1", "--model", "baseline:ramp",
                   "--split", split, "--out", str(out)],
    }


@pytest.mark.parametrize("split, says", [("bogus", "unknown synthetic split 'bogus'"),
                                         ("test:abc", "'test:abc'"), ("test:0", "at least 1")])
def test_a_bad_split_is_one_line_in_every_command(tmp_path, capsys, split, says):
    """Exit 2 with one line (was a ValueError traceback, or an empty run folder for test:0),
    before any output folder is made."""
    _, out, commands = _runs_with_split(tmp_path, split)
    for name, argv in commands.items():
        capsys.readouterr()
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (name, err)
        assert err.startswith(f"marigold-bench {name}: error: ") and says in err, (name, err)
        assert not out.exists(), name
