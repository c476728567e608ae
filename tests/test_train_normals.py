"""Training the normals task: objective by hand, augmentations, training-set layouts, config, export.

Every expectation is rebuilt independently: the loss from SD-v2's betas written out and the
v-target formula, flips and crops by slicing, Sintel's sky rule by a per-pixel loop, angles from
vectors whose angle is known.
"""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_loss import Spy  # the depth loss test's call recorder

from marigold_bench.data import normals_training
from marigold_bench.errors import DataRootError, TrainConfigError
from marigold_bench.model.pipeline import inference_scheduler, training_scheduler
from marigold_bench.model.tiny import build_tiny_components
from marigold_bench.train import normals as normals_task
from marigold_bench.train import targets
from marigold_bench.train.config import TrainConfig, config_differences, config_from_dict, load_config
from marigold_bench.train.normals_augment import (NormalsAugmentation, augment_normals, color_jitter, flip_normals,
                                                  motion_kernel)

H, W, F = 16, 24, 4  # the tiny VAE halves twice: 4x6 latents
REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "marigold_bench" / "checkpoints" / "tiny-normals"


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- the objective ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    c = build_tiny_components(seed=3, in_channels=8)
    c["unet"].eval(), c["vae"].eval()
    ddpm = training_scheduler(dict(c["scheduler"].config))  # SD-v2's betas, leading, no zero-SNR
    embedding = torch.randn(1, 2, c["unet"].config.cross_attention_dim)
    return c["unet"], c["vae"], ddpm, embedding


def make_batch():
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (2, 3, H, W), dtype=np.uint8)
    normals = unit(rng.normal(size=(2, H, W, 3))).astype(np.float32).transpose(0, 3, 1, 2).copy()
    normals[0, :, :4, :4] = 0.0  # pixels without ground truth: still in the loss (no mask)
    valid = np.linalg.norm(normals, axis=1, keepdims=True) > 0
    return {"rgb": torch.from_numpy(rgb), "normals": torch.from_numpy(normals), "valid": torch.from_numpy(valid)}


def test_normals_loss_equals_the_recipe_recomputed_by_hand(monkeypatch, parts):
    unet, vae, ddpm, embedding = parts
    noise_spy = Spy(targets.make_noise)   # the shared v-prediction step draws the noise
    monkeypatch.setattr(targets, "make_noise", noise_spy)
    add_spy, velocity_spy = Spy(ddpm.add_noise), Spy(ddpm.get_velocity)
    monkeypatch.setattr(ddpm, "add_noise", add_spy)
    monkeypatch.setattr(ddpm, "get_velocity", velocity_spy)
    seen = []
    hook = unet.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args), with_kwargs=True)
    batch = make_batch()
    try:
        with torch.no_grad():
            loss = normals_task.normals_loss(unet, vae, ddpm, embedding, batch, torch.Generator().manual_seed(5),
                                             "annealed", 0.9)
    finally:
        hook.remove()

    t = torch.randint(0, 1000, (2,), generator=torch.Generator().manual_seed(5))
    (noise_args, noise_kwargs, noise), = noise_spy.calls
    assert noise_args[0] == "annealed" and noise_kwargs["strength"] == 0.9
    assert torch.equal(noise_kwargs["timesteps"], t)
    (add_args, _, noisy_seen), = add_spy.calls
    assert add_args[1] is noise and torch.equal(add_args[2], t)

    with torch.no_grad():
        sf = vae.config.scaling_factor
        rgb = batch["rgb"].numpy()
        rgb_latent = vae.encode(torch.from_numpy(rgb / 127.5 - 1.0).float()).latent_dist.mean * sf
        # the normal map itself, 3 channels in [-1, 1]: no normalisation of any kind
        x0 = vae.encode(batch["normals"].float()).latent_dist.mean * sf
    torch.testing.assert_close(add_args[0], x0, rtol=1e-5, atol=1e-5)

    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    abar = torch.from_numpy(np.cumprod(1.0 - betas)[t.numpy()]).float().reshape(-1, 1, 1, 1)
    noisy = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    v = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    torch.testing.assert_close(noisy_seen, noisy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(velocity_spy.calls[0][2], v, rtol=1e-5, atol=1e-5)
    (unet_args,) = seen
    torch.testing.assert_close(unet_args[0], torch.cat([rgb_latent, noisy], dim=1), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        pred = unet(torch.cat([rgb_latent, noisy], dim=1), t, embedding.expand(2, -1, -1)).sample
        swapped = unet(torch.cat([noisy, rgb_latent], dim=1), t, embedding.expand(2, -1, -1)).sample
    expected = ((pred - v) ** 2).mean()  # every latent element: the official config has no loss mask
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(((swapped - v) ** 2).mean()) - float(loss)) > 1e-3 * float(loss)
    masked = ~torch.nn.functional.max_pool2d((~batch["valid"]).float(), F, F).bool().repeat(1, 4, 1, 1)
    assert abs(float(((pred - v)[masked] ** 2).mean()) - float(loss)) > 1e-5 * float(loss)


# --- augmentations ---------------------------------------------------------------------------

def test_flip_negates_x_and_only_x():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    normals = unit(rng.normal(size=(5, 7, 3))).astype(np.float32)
    mask = rng.random((5, 7)) > 0.3
    before = normals.copy()
    frgb, fn, fmask = flip_normals(rgb, normals, mask)
    assert np.array_equal(normals, before)  # the caller's array is not negated in place
    for r in range(5):
        for c in range(7):
            src = 7 - 1 - c
            assert (frgb[r, c] == rgb[r, src]).all() and fmask[r, c] == mask[r, src]
            assert fn[r, c, 0] == -normals[r, src, 0]
            assert fn[r, c, 1] == normals[r, src, 1] and fn[r, c, 2] == normals[r, src, 2]


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_the_mixture_flips_with_x_negated(flip_p):
    from marigold_bench.data.synthetic import NORMALS_SPEC, SyntheticNormalsDataset

    data = SyntheticNormalsDataset("val:4", NORMALS_SPEC)
    aug = NormalsAugmentation(flip_p=flip_p, color_jitter_p=0.0)
    mixture = normals_task.NormalsMixture({"synthetic": data}, {"synthetic": 1.0}, 2, seed=1, augmentation=aug)
    batch = mixture[0]
    for b, sample_id in enumerate(batch["ids"]):
        item = data[data.ids.index(sample_id)]
        want = item["normals"].transpose(2, 0, 1)
        if flip_p:
            want = want[:, :, ::-1] * np.array([-1.0, 1.0, 1.0], np.float32)[:, None, None]
            assert np.array_equal(batch["rgb"][b].numpy(), item["rgb"][:, ::-1].transpose(2, 0, 1))
        assert np.array_equal(batch["normals"][b].numpy(), want)


def test_blurs_touch_only_hypersim_size_frames():
    rng = np.random.default_rng(1)
    aug = NormalsAugmentation(flip_p=0.0, color_jitter_p=0.0, gaussian_blur_p=1.0, motion_blur_p=1.0)
    normals = np.zeros((72, 16, 3), np.float32)
    small = rng.integers(0, 256, (72, 16, 3), dtype=np.uint8)
    out, n_out, _ = augment_normals(small, normals, normals[..., 0] == 0, np.random.default_rng(2), aug)
    assert np.array_equal(out, small)
    big = rng.integers(0, 256, (768, 16, 3), dtype=np.uint8)
    big_normals = np.zeros((768, 16, 3), np.float32)
    out, n_out, _ = augment_normals(big, big_normals, big_normals[..., 0] == 0, np.random.default_rng(2), aug)
    assert not np.array_equal(out, big) and np.array_equal(n_out, big_normals)


def test_motion_kernel_and_hue_by_hand():
    k = motion_kernel(5, 0.0)
    assert k.sum() == pytest.approx(1.0)
    assert np.allclose(k[2], 0.2) and k[[0, 1, 3, 4]].sum() == 0  # horizontal: the middle row
    assert np.allclose(motion_kernel(5, 90.0)[:, 2], 0.2)  # vertical: the middle column
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    aug = NormalsAugmentation(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    assert np.array_equal(color_jitter(red, np.random.default_rng(0), aug), red)  # all factors 1, no shift


# --- training sets in the official layouts -----------------------------------------------------

def write_png(path: Path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def write_split(path: Path, lines):
    path.write_text("\n".join(lines))
    return str(path)


def test_sintel_sky_replacement_and_crop_by_hand(tmp_path):
    rng = np.random.default_rng(3)
    h, w = 6, 1024
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    normals = unit(rng.normal(size=(h, w, 3)))
    normals[0, 300] = [0.0, 0.0, 0.0]       # sky written as zero
    normals[1, 400] = [0.05, 0.05, 0.0]     # short: sky
    normals[2, 500] = [0.0, 0.1, 0.0]       # norm exactly 0.1: kept
    normals[3, 10] = [0.0, 0.0, 0.0]        # sky outside the crop
    root = tmp_path / "data"
    write_png(root / "sintel" / "alley_2" / "frame_0001_img.png", rgb)
    np.save(root / "sintel" / "alley_2" / "frame_0001_normal.npy", normals)
    split = write_split(tmp_path / "sintel.txt", ["alley_2/frame_0001_img.png alley_2/frame_0001_normal.npy"])
    item = normals_training.load("sintel", root, split)[0]

    want = normals.copy()
    for r in range(h):
        for c in range(w):
            if np.sqrt((want[r, c] ** 2).sum()) < 0.1:
                want[r, c] = [0.0, 0.0, 1.0]
    want = want[:, 221:1024 - 221]
    assert item["normals"].shape == (h, 582, 3) and item["rgb"].shape == (h, 582, 3)
    assert np.array_equal(item["rgb"], rgb[:, 221:803])
    np.testing.assert_array_equal(item["normals"], want.astype(np.float32))
    assert list(item["normals"][0, 300 - 221]) == [0.0, 0.0, 1.0] and list(item["normals"][1, 400 - 221]) == [0, 0, 1]
    assert item["normals"][2, 500 - 221, 1] == np.float32(0.1)
    assert item["mask"].all() and item["frame"] == "opengl"


def test_hypersim_from_a_tar_and_interiorverse_three_columns(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    normals = unit(rng.normal(size=(12, 16, 3)))  # float64, as the preprocessing saves it
    folder = tmp_path / "hypersim"
    write_png(folder / "train" / "ai_001_001" / "rgb_cam_00_fr0000.png", rgb)
    np.save(folder / "train" / "ai_001_001" / "normal_cam_cam_00_fr0000.npy", normals)
    with tarfile.open(tmp_path / "hypersim.tar", "w") as tar:
        tar.add(folder, arcname=".")
    split = write_split(tmp_path / "h.txt", ["train/ai_001_001/rgb_cam_00_fr0000.png "
                                             "train/ai_001_001/normal_cam_cam_00_fr0000.npy"])
    item = normals_training.load("hypersim", tmp_path / "hypersim.tar", split)[0]
    assert np.array_equal(item["rgb"], rgb)
    np.testing.assert_allclose(item["normals"], normals.astype(np.float32))

    scene = tmp_path / "iv" / "interiorverse" / "scenes_85" / "L3D"
    write_png(scene / "000_img.png", rgb)
    np.save(scene / "000_depth.npy", np.ones((12, 16), np.float32))
    np.save(scene / "000_normal.npy", normals[::-1].copy())
    split = write_split(tmp_path / "iv.txt", ["L3D/000_img.png L3D/000_depth.npy L3D/000_normal.npy"])
    item = normals_training.load("interiorverse", tmp_path / "iv", split)[0]
    np.testing.assert_allclose(item["normals"], normals[::-1].astype(np.float32))

    with pytest.raises(DataRootError, match="Sintel"):
        normals_training.load("sintel", tmp_path / "nowhere", split)


def test_hypersim_and_sintel_are_trained_at_480x640(tmp_path):
    rng = np.random.default_rng(5)
    normals = np.broadcast_to(unit([0.2, 0.3, 0.9]), (24, 32, 3)).copy()
    folder = tmp_path / "hypersim"
    write_png(folder / "train" / "a" / "rgb.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    np.save(folder / "train" / "a" / "n.npy", normals)
    split = write_split(tmp_path / "h.txt", ["train/a/rgb.png train/a/n.npy"])
    data = normals_training.load("hypersim", tmp_path, split)
    mixture = normals_task.NormalsMixture({"hypersim": data}, {"hypersim": 1.0}, 1, seed=0,
                                          augmentation=NormalsAugmentation(flip_p=0.0, color_jitter_p=0.0),
                                          sizes={"hypersim": normals_training.TRAIN_SIZE["hypersim"]})
    batch = mixture[0]
    assert tuple(batch["rgb"].shape) == (1, 3, 480, 640) and tuple(batch["normals"].shape) == (1, 3, 480, 640)
    # a constant field stays that constant vector through bilinear resizing
    np.testing.assert_allclose(batch["normals"][0, :, 100, 100].numpy(), unit([0.2, 0.3, 0.9]), atol=1e-6)
    assert normals_training.TRAIN_SIZE == {"hypersim": (480, 640), "interiorverse": None, "sintel": (480, 640)}


# --- angular error ---------------------------------------------------------------------------

def test_angular_error_by_known_angles():
    gt = np.array([[[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0]]], np.float32)
    pred = np.array([[[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]]], np.float32)
    err = normals_task.angular_errors(pred, gt)
    np.testing.assert_allclose(err, [90.0, 45.0, 0.0], atol=1e-5)  # the zero ground truth is left out
    s = normals_task.image_scores(pred, gt)
    assert s["mean_angular_error"] == pytest.approx(45.0) and s["median_angular_error"] == pytest.approx(45.0)
    assert s["a11_25"] == pytest.approx(100 / 3) and s["a30"] == pytest.approx(100 / 3)
    # per image, then averaged over images (not pooled): 45 and 0 -> 22.5 though pooling gives 30
    second = normals_task.image_scores(gt[:, 2:3], gt[:, 2:3])
    avg = normals_task.average_scores([s, second])
    assert avg["mean_angular_error"] == pytest.approx(22.5) and avg["n"] == 2


# --- config ------------------------------------------------------------------------------------

def test_task_is_validated_and_normals_takes_the_official_defaults(tmp_path):
    with pytest.raises(TrainConfigError, match="task must be depth or normals"):
        config_from_dict({"task": "segmentation"})
    with pytest.raises(TrainConfigError, match=r"data.sources must map some of hypersim, interiorverse, sintel, "
                                                r"synthetic to weights for task normals \(unknown: vkitti\)"):
        config_from_dict({"task": "normals", "data": {"sources": {"vkitti": 1.0}}})
    with pytest.raises(TrainConfigError, match="unknown: sintel"):
        config_from_dict({"data": {"sources": {"sintel": 1.0}}})  # depth has no Sintel
    with pytest.raises(TrainConfigError, match="normals_augment.color_jitter_p must be in"):
        config_from_dict({"task": "normals", "normals_augment": {"color_jitter_p": 1.5}})

    depth = config_from_dict({})
    assert depth.task == "depth" and depth.optim.lr == 3e-5 and depth.data.sources == {"hypersim": 0.9, "vkitti": 0.1}
    normals = config_from_dict({"task": "normals"})
    assert normals.optim.lr == 6e-5
    assert normals.data.sources == {"hypersim": 0.5, "interiorverse": 0.49, "sintel": 0.01}
    assert (normals.optim.warmup_steps, normals.optim.decay_steps, normals.optim.final_ratio) == (100, 25000, 0.01)
    assert normals.optim.micro_batch * normals.optim.grad_accum == 32
    assert normals.diffusion.noise == "annealed" and normals.diffusion.noise_strength == 0.9
    assert (normals.normals_augment.color_jitter_p, normals.normals_augment.gaussian_blur_p,
            normals.normals_augment.motion_blur_p, normals.data.flip_p) == (0.3, 0.3, 0.3, 0.5)
    kept = config_from_dict({"task": "normals", "optim": {"lr": 1.0e-4}, "data": {"sources": {"synthetic": 1.0}}})
    assert kept.optim.lr == 1e-4 and kept.data.sources == {"synthetic": 1.0}

    # the --task flag overrides the file's key
    path = tmp_path / "c.yaml"
    path.write_text("task: depth\ndata:\n  sources: {synthetic: 1.0}\n")
    assert load_config(path).task == "depth" and load_config(path, "normals").task == "normals"
    assert load_config(path, "normals").optim.lr == 6e-5
    assert load_config(REPO / "configs" / "tiny-normals.yaml").task == "normals"
    official = load_config(REPO / "configs" / "marigold-sd2-normals.yaml")
    assert (official.task, official.optim.lr, official.max_steps) == ("normals", 6e-5, 30000)
    assert official.data.sources == {"hypersim": 0.5, "interiorverse": 0.49, "sintel": 0.01}
    assert (official.optim.micro_batch, official.optim.grad_accum) == (2, 16)


def test_checkpoints_without_the_new_keys_still_resume():
    saved = TrainConfig().to_dict()
    saved.pop("task"), saved.pop("normals_augment")
    for key in ("interiorverse_root", "sintel_root", "hypersim_normals_split"):
        saved["data"].pop(key)
    assert config_differences(saved, TrainConfig()) == []
    changed = config_from_dict({"task": "normals", "data": {"sources": {"synthetic": 1.0}}})
    assert any(d.startswith("task:") for d in config_differences(saved, changed))


def test_train_command_refuses_an_unknown_task(capsys):
    from marigold_bench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", str(REPO / "configs" / "tiny-normals.yaml"), "--task", "albedo"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


# --- export ------------------------------------------------------------------------------------

def run_one_step(folder) -> np.ndarray:
    from diffusers import MarigoldNormalsPipeline

    pipe = MarigoldNormalsPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = pipe(image, num_inference_steps=1, ensemble_size=1, processing_resolution=0,
               generator=torch.Generator().manual_seed(0), output_type="np")
    return out.prediction


def test_export_loads_in_diffusers_marigold_normals_pipeline(tmp_path):
    from marigold_bench.model.convert import prepare_marigold_components

    c = build_tiny_components(seed=1, in_channels=4)
    schedule = dict(c.pop("scheduler").config)
    c["scheduler_config"] = schedule
    c = prepare_marigold_components(c, "do_not_pad")
    normals_task.export_normals_pipeline(tmp_path / "out", c["unet"], c["vae"], c["text_encoder"], c["tokenizer"],
                                         inference_scheduler(schedule, "trailing", True), 1, 0)
    index = json.loads((tmp_path / "out" / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldNormalsPipeline" and index["prediction_type"] == "normals"
    assert index["use_full_z_range"] is True
    pred = run_one_step(tmp_path / "out")
    assert pred.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(np.linalg.norm(pred, axis=-1), 1.0, atol=1e-4)


def test_bundled_tiny_normals_checkpoint():
    index = json.loads((BUNDLED / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldNormalsPipeline"
    assert index["prediction_type"] == "normals" and index["use_full_z_range"] is True
    assert "mean ↓" in (BUNDLED / "README.md").read_text(encoding="utf-8")
    size = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert size < 10 * 2**20
    assert run_one_step(BUNDLED).shape == (1, 32, 32, 3)


def test_bundled_tiny_normals_checkpoint_beats_the_camera_facing_constant():
    from diffusers import MarigoldNormalsPipeline

    from marigold_bench.data.synthetic import NORMALS_SPEC, SyntheticNormalsDataset

    pipe = MarigoldNormalsPipeline.from_pretrained(str(BUNDLED))
    pipe.set_progress_bar_config(disable=True)
    data = SyntheticNormalsDataset("val:6", NORMALS_SPEC)
    model = normals_task.score_pipeline(pipe, data, steps=1, ensemble=1, seed=0)
    constant = normals_task.score_constant(data)
    assert model["mean_angular_error"] < constant["mean_angular_error"] - 5.0
