"""Training data: Hypersim / Virtual KITTI 2 loaders on fixtures in the official formats, the
Hypersim preprocessing facts, and the seeded mixing sampler with its augmentation."""

import io
import tarfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from marigold_bench.data import hypersim, vkitti
from marigold_bench.errors import DataRootError
from marigold_bench.train.data import (MicroBatchOrder, TrainingDataError, TrainingMixture, augment, make_loader,
                                       flip_horizontal, micro_batch_index, resize_to_cover)

# --- Hypersim preprocessing facts ----------------------------------------------------------


def test_planar_depth_from_distance_by_hand():
    f = 886.81
    distance = np.full((4, 6), 10.0)
    entity = np.zeros((4, 6), int)
    entity[3, 5] = -1
    depth = hypersim.planar_depth_from_distance(distance, f, entity)
    # pixel (row 0, col 0): centre offset u = 0.5 - 3 = -2.5, v = 0.5 - 2 = -1.5
    assert depth[0, 0] == pytest.approx(10.0 * f / np.sqrt(f**2 + 2.5**2 + 1.5**2), rel=1e-6)
    # pixel (row 2, col 3): u = 3.5 - 3 = 0.5, v = 2.5 - 2 = 0.5
    assert depth[2, 3] == pytest.approx(10.0 * f / np.sqrt(f**2 + 0.5), rel=1e-6)
    assert depth[3, 5] == 0.0  # no surface
    assert np.all(depth[:3] < 10.0)  # planar depth never exceeds the distance
    nan = hypersim.planar_depth_from_distance(np.full((2, 2), np.nan))
    assert np.all(nan == 0)


def test_tone_map_puts_the_90th_percentile_at_0_8():
    grey = np.full((4, 4, 3), 3.7)
    out = hypersim.tone_map(grey)  # brightness 3.7 everywhere -> scale 0.8**2.2 / 3.7
    np.testing.assert_allclose(out, 0.8, rtol=1e-9)
    assert hypersim.tone_map_scale(grey) == pytest.approx(0.8**2.2 / 3.7)
    # invalid pixels (entity -1) do not count in the percentile
    img = np.full((4, 4, 3), 2.0)
    img[0] = 1000.0
    entity = np.zeros((4, 4), int)
    entity[0] = -1
    np.testing.assert_allclose(hypersim.tone_map(img, entity)[1:], 0.8, rtol=1e-9)
    # dark image: p90 < 1e-4 -> scale 0 -> black; no valid pixel -> scale 1 (plain gamma)
    assert np.all(hypersim.tone_map(np.full((2, 2, 3), 1e-5)) == 0)
    none_valid = hypersim.tone_map(np.full((2, 2, 3), 0.25), np.full((2, 2), -1))
    np.testing.assert_allclose(none_valid, 0.25 ** (1 / 2.2))
    # brightness weights 0.3 R + 0.59 G + 0.11 B
    assert hypersim.tone_map_scale(np.broadcast_to([1.0, 0.0, 0.0], (2, 2, 3))) == pytest.approx(0.8**2.2 / 0.3)
    assert hypersim.to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 127, 255]


# --- loaders on fixtures ------------------------------------------------------------------------


def png_bytes(array, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def hypersim_root(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "hypersim" / "processed"
    lines = []
    for i in range(2):
        rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        depth_mm = rng.integers(500, 20000, (48, 64)).astype(np.uint16)
        depth_mm[0, :8] = 0          # invalid (no surface)
        depth_mm[1, :8] = 65535      # 65.535 m: beyond the 65 m range
        write(root / "train" / "ai_001_001" / f"rgb_cam_00_fr000{i}.png", png_bytes(rgb))
        write(root / "train" / "ai_001_001" / f"depth_plane_cam_00_fr000{i}.png", png_bytes(depth_mm))
        lines.append(f"ai_001_001/rgb_cam_00_fr000{i}.png ai_001_001/depth_plane_cam_00_fr000{i}.png")
    splits = tmp_path / "splits" / "hypersim_depth"
    splits.mkdir(parents=True)
    (splits / "filename_list_train_filtered.txt").write_text("\n".join(lines))  # no final newline, as upstream
    return tmp_path


def test_hypersim_loader_reads_the_official_format(hypersim_root, monkeypatch):
    monkeypatch.setenv("MARIGOLD_SPLITS", str(hypersim_root / "splits"))
    ds = hypersim.load(hypersim_root)  # base folder: finds hypersim/processed/train
    assert len(ds) == 2 and ds.ids[0] == "ai_001_001/rgb_cam_00_fr0000"
    item = ds[1]
    raw = np.asarray(Image.open(hypersim_root / "hypersim/processed/train/ai_001_001/depth_plane_cam_00_fr0001.png"))
    np.testing.assert_allclose(item["depth"], raw / 1000.0, rtol=1e-6)
    assert item["rgb"].dtype == np.uint8 and item["rgb"].shape == (48, 64, 3)
    assert not item["valid"][0, :8].any() and not item["valid"][1, :8].any()
    assert item["valid"][2:].all()
    # a split file given as a path, and the split folder given directly
    same = hypersim.load(hypersim_root / "hypersim/processed/train",
                         hypersim_root / "splits/hypersim_depth/filename_list_train_filtered.txt")
    assert same.ids == ds.ids


def test_hypersim_missing_root_names_the_layout(hypersim_root, monkeypatch, tmp_path):
    monkeypatch.setenv("MARIGOLD_SPLITS", str(hypersim_root / "splits"))
    monkeypatch.delenv("MARIGOLD_DATA", raising=False)
    with pytest.raises(DataRootError, match="rgb_cam_00_fr0000.png"):
        hypersim.load(tmp_path / "splits")
    with pytest.raises(DataRootError, match="does not exist"):
        hypersim.load(tmp_path / "nowhere")
    with pytest.raises(DataRootError, match="no data root"):
        hypersim.load(None)


def vkitti_files():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    depth_cm = rng.integers(100, 7000, (375, 1242)).astype(np.uint16)
    depth_cm[23:40, 13:200] = 65535  # sky: 655.35 m, beyond 80 m
    return {
        "rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg": png_bytes(rgb, "JPEG"),
        "depth/Scene01/clone/frames/depth/Camera_0/depth_00000.png": png_bytes(depth_cm),
    }, depth_cm


def vkitti_split(tmp_path):
    split = tmp_path / "vkitti_train.txt"
    split.write_text("rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg "
                     "depth/Scene01/clone/frames/depth/Camera_0/depth_00000.png")
    return split


def test_vkitti_loader_crops_and_scales(tmp_path):
    files, depth_cm = vkitti_files()
    for rel, data in files.items():
        write(tmp_path / "data" / "vkitti" / rel, data)
    ds = vkitti.load(tmp_path / "data", vkitti_split(tmp_path))
    item = ds[0]
    assert item["rgb"].shape == (352, 1216, 3) and item["depth"].shape == (352, 1216)
    # KITTI benchmark crop: bottom 352 rows, centred 1216 columns (top 23, left 13)
    np.testing.assert_allclose(item["depth"], depth_cm[23:, 13:13 + 1216] / 100.0, rtol=1e-6)
    assert not item["valid"][:17, :187].any()  # the sky block
    assert item["valid"][20:].all()


def test_vkitti_loader_reads_the_tar(tmp_path):
    files, depth_cm = vkitti_files()
    with tarfile.open(tmp_path / "vkitti.tar", "w") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo("./" + rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ds = vkitti.load(tmp_path, vkitti_split(tmp_path))  # finds <root>/vkitti.tar
    assert ds.source.kind == "archive"
    np.testing.assert_allclose(ds[0]["depth"][100], depth_cm[123, 13:13 + 1216] / 100.0, rtol=1e-6)


# --- augmentation and the mixture --------------------------------------------------------


def test_flip_moves_image_depth_and_mask_together():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[:, 0] = 255
    depth = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    valid = np.array([[True, False, False], [True, True, False]])
    r, d, v = flip_horizontal(rgb, depth, valid)
    assert (r[:, 2] == 255).all() and (r[:, :2] == 0).all()
    assert d.tolist() == [[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]
    assert v.tolist() == [[False, False, True], [False, True, True]]


class Columns:
    """Fake source: red channel and depth both encode the column, so flips must agree."""

    def __init__(self, n=10, h=12, w=16, invalid=()):
        self.n, self.h, self.w, self.invalid = n, h, w, set(invalid)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        cols = np.arange(self.w)
        rgb = np.zeros((self.h, self.w, 3), np.uint8)
        rgb[..., 0] = cols * 10
        rgb[..., 1] = i
        depth = np.broadcast_to(cols + 1.0, (self.h, self.w)).astype(np.float32)
        valid = np.full((self.h, self.w), i not in self.invalid)
        return {"id": f"s{i}", "rgb": rgb, "depth": depth, "valid": valid}


def test_mixture_flips_jointly_and_is_deterministic():
    mix = TrainingMixture({"a": Columns()}, {"a": 1.0}, micro_batch=4, seed=3, flip_p=0.5)
    flipped = 0
    for k in range(10):
        batch = mix[k]
        assert batch["rgb"].shape == (4, 3, 12, 16) and batch["depth"].shape == (4, 1, 12, 16)
        red, depth = batch["rgb"][:, 0].float(), batch["depth"][:, 0]
        assert ((red / 10 + 1) == depth).all()  # image and depth flipped together
        flipped += int((depth[:, 0, 0] == 16).sum())
        again = mix[k]
        assert all(np.array_equal(batch[x], again[x]) for x in ("rgb", "depth", "valid")) and batch["ids"] == again["ids"]
    assert 5 < flipped < 35  # about half of 40


def test_mixture_weights_and_one_source_per_micro_batch():
    mix = TrainingMixture({"hypersim": Columns(), "vkitti": Columns(h=6, w=20)},
                          {"hypersim": 0.9, "vkitti": 0.1}, micro_batch=2, seed=0)
    batches = [mix[k] for k in range(400)]
    counts = Counter(b["source"] for b in batches)
    assert 0.85 < counts["hypersim"] / 400 < 0.95
    # each micro-batch is drawn from one source, so sources of different sizes never mix
    sizes = {b["source"]: tuple(b["depth"].shape[2:]) for b in batches}
    assert sizes == {"hypersim": (12, 16), "vkitti": (6, 20)}


def test_samples_without_valid_depth_are_skipped_and_counted():
    mix = TrainingMixture({"a": Columns(n=4, invalid={0, 1, 2})}, {"a": 1.0}, micro_batch=3, seed=1)
    batch = mix[0]
    assert batch["ids"] == ["s3"] * 3 and batch["skipped"] > 0
    assert batch["valid"].all()
    dead = TrainingMixture({"a": Columns(n=2, invalid={0, 1})}, {"a": 1.0}, micro_batch=1, seed=1, max_redraws=5)
    with pytest.raises(TrainingDataError, match="without valid depth"):
        dead[0]


def test_resize_and_crop_to_training_resolution():
    item = Columns(h=24, w=40)[0]
    rng = np.random.default_rng(0)
    rgb, depth, valid = augment(item, rng, resolution=(12, 16), flip_p=0.0)
    assert rgb.shape == (12, 16, 3) and depth.shape == (12, 16) and valid.shape == (12, 16)
    assert set(np.unique(depth)) <= set(np.arange(1, 41, dtype=np.float32))  # nearest: real values only
    r2, d2, _ = resize_to_cover(item["rgb"], item["depth"], item["valid"], (48, 40))  # upscale x2
    assert d2.shape == (48, 80) and r2.shape == (48, 80, 3)


def test_data_position_follows_step_and_rank():
    assert micro_batch_index(3, 1, grad_accum=4) == 13
    assert micro_batch_index(3, 1, grad_accum=4, rank=1, world=2) == 27
    assert list(MicroBatchOrder(2, 4, grad_accum=2)) == [4, 5, 6, 7]
    assert len(MicroBatchOrder(2, 4, grad_accum=2)) == 4


def sample_numbers(batch) -> list[int]:
    return [int(i[1:]) for i in batch["ids"]]


def test_each_epoch_visits_every_sample_once_in_a_new_order():
    """One source of 12 samples, micro-batch 4: every 3 micro-batches are one epoch, without
    replacement (the official sampler's RandomSampler(replacement=False) + drop_last)."""
    mix = TrainingMixture({"a": Columns(n=12)}, {"a": 1.0}, micro_batch=4, seed=5, flip_p=0.0)
    epochs = [sum((sample_numbers(mix[k]) for k in range(3 * e, 3 * e + 3)), []) for e in range(3)]
    for e, order in enumerate(epochs):
        assert sorted(order) == list(range(12)), (e, order)
        assert [mix[k]["epoch"] for k in range(3 * e, 3 * e + 3)] == [e] * 3
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != epochs[2]
    assert epochs[0] != list(range(12))  # shuffled, not sequential


def test_drop_last_and_mixed_sources_keep_per_source_epochs():
    """Two sources, 10 and 7 samples, micro-batch 3: a source's epoch holds 3 and 2 micro-batches
    (the remainder is dropped), and the micro-batches that pick a source walk through its epochs
    whatever the other source does in between."""
    mix = TrainingMixture({"a": Columns(n=10), "b": Columns(n=7)}, {"a": 0.5, "b": 0.5}, micro_batch=3,
                          seed=2, flip_p=0.0)
    per_source = {"a": [], "b": []}
    for k in range(60):
        batch = mix[k]
        per_source[batch["source"]].append(sample_numbers(batch))
    for name, size, per_epoch in (("a", 10, 3), ("b", 7, 2)):
        seen = per_source[name]
        assert len(seen) >= 2 * per_epoch
        for e in range(len(seen) // per_epoch):
            epoch = sum(seen[e * per_epoch:(e + 1) * per_epoch], [])
            assert len(set(epoch)) == len(epoch) == per_epoch * 3 and set(epoch) <= set(range(size))


def test_data_order_resumes_exactly():
    """A fresh mixture (a resumed run, a data-loader worker) asked for micro-batch k alone gives
    what the uninterrupted one gave, including the epoch position across source blocks."""
    from marigold_bench.train import data as train_data

    sources, weights = {"a": Columns(n=9), "b": Columns(n=6)}, {"a": 0.7, "b": 0.3}
    straight = TrainingMixture(sources, weights, micro_batch=3, seed=4)
    expected = {k: straight[k] for k in range(0, 40)}
    for k in (39, 17, 0, 25):
        fresh = TrainingMixture(sources, weights, micro_batch=3, seed=4)
        got = fresh[k]
        assert got["ids"] == expected[k]["ids"] and got["epoch"] == expected[k]["epoch"]
        assert np.array_equal(got["rgb"].numpy(), expected[k]["rgb"].numpy())
    # across the boundary of a block of source draws as well
    k = train_data.SOURCE_BLOCK + 5
    a = TrainingMixture(sources, weights, micro_batch=3, seed=4)
    [a.position(i) for i in range(k)]
    assert TrainingMixture(sources, weights, micro_batch=3, seed=4).position(k) == a.position(k)
    loader = list(make_loader(TrainingMixture(sources, weights, micro_batch=3, seed=4), 5, 8, grad_accum=2))
    assert [b["ids"] for b in loader] == [expected[k]["ids"] for k in range(10, 16)]
    other_seed = TrainingMixture(sources, weights, micro_batch=3, seed=5)
    assert [other_seed[k]["ids"] for k in range(10)] != [expected[k]["ids"] for k in range(10)]


def test_a_source_smaller_than_a_micro_batch_is_refused():
    with pytest.raises(TrainingDataError, match="fewer samples than one micro-batch"):
        TrainingMixture({"a": Columns(n=2)}, {"a": 1.0}, micro_batch=3, seed=0)
