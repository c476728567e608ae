"""Marigold training, top to bottom: SD-v2 (or the tiny stand-in) -> an affine-invariant depth model.

Read :func:`train` (its body, ``_train``) from start to end; it is the whole recipe (``configs/marigold-sd2.yaml`` holds its numbers):

1. checks that need no model: output folders writable, resume checkpoint made with this config,
   training data present;
2. model surgery: conv_in 4 -> 8 channels, VAE and text encoder frozen, empty-prompt embedding;
3. data: seeded mixture of Hypersim / Virtual KITTI / synthetic micro-batches (``train/data.py``);
4. (tiny scale only) a short fit of the random tiny VAE, then frozen -- see :func:`fit_tiny_vae`;
5. DDPM v-prediction objective with (annealed multi-resolution) noise, masked MSE,
   Adam with the official IterExponential schedule (train/lr_schedule.py), gradient
   accumulation, optional EMA;
6. periodic validation with the suite's evaluator (1 step, N = 1) on the paper's validation sets where
   present, the synthetic split otherwise; AbsRel of the first set selects the best;
7. checkpoints that resume exactly (model, optimiser, LR schedule, RNG states, data position),
   written and read without pickle (train/resume_state.py);
8. export as a diffusers ``MarigoldDepthPipeline`` with a model card.

Every random draw of step ``s`` comes from generators seeded by ``(seed, micro-batch number)``,
so k steps + resume + m steps reproduce k + m uninterrupted steps bit for bit (on CPU).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from marigold_bench.errors import ResumeMismatchError, TrainingError
from marigold_bench.model.convert import check_sd2_like, freeze, load_sd2_components, prepare_marigold_components
from marigold_bench.train import normals as normals_task
from marigold_bench.train import targets
from marigold_bench.train.config import TrainConfig, TrainConfigError, config_differences, save_config
from marigold_bench.train.data import TrainingMixture, build_sources, make_loader, micro_batch_index, torch_generator
from marigold_bench.train.export import export_pipeline, inference_scheduler, training_scheduler
from marigold_bench.train.lr_schedule import lr_factor
from marigold_bench.train.resume_state import check_checkpoint_files, load_training_state, save_training_state
from marigold_bench.train.validation import training_predictor, validate, validation_sets


#: random streams (see train/data.py): 0 data of the UNet stage, 1 data of the VAE fit,
#: 2 timesteps + noise of the UNet stage, 3 posterior samples of the VAE fit.
DATA, VAE_DATA, NOISE, VAE_NOISE = 0, 1, 2, 3
STATE_FILE = "trainer_state.json"
#: what a checkpoint's step means: the data order (epoch-wise, without replacement) and the LR
#: schedule (IterExponential, warm-up from 0) of 0.3; older checkpoints cannot resume exactly
RECIPE = "0.3"
METRIC_COLUMNS = ["step", "loss", "lr", "samples", "samples_per_s", "skipped", "unreadable",
                  "val_abs_rel", "val_delta1", "elapsed_s"]


# --- small helpers (used once each, kept out of the loop for reading) ---------------------------

def ensure_writable(folder: Path, what: str) -> None:
    """Prove that ``folder`` can be created and takes a file, before any expensive work; folders
    this check creates are removed again, so a run that fails later leaves nothing behind."""
    created, parent = [], folder
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None
    finally:
        for path in created:  # deepest first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def find_checkpoint(path) -> Path:
    """A checkpoint folder, or the latest complete checkpoint of a run folder."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    found = sorted((path / "checkpoints").glob("step_*/" + STATE_FILE)) if path.is_dir() else []
    if not found:
        raise TrainingError(f"no checkpoint to resume in {path} (expected {STATE_FILE} there or "
                            f"checkpoints/step_*/{STATE_FILE} below it)")
    return found[-1].parent


def load_base_components(cfg: TrainConfig) -> dict:
    """unet (4 channels), vae, text_encoder, tokenizer and the scheduler config of the base model."""
    if cfg.model.base == "tiny":
        from marigold_bench.model.tiny import build_tiny_components

        components = build_tiny_components(seed=cfg.model.init_seed, in_channels=4)
        components["scheduler_config"] = dict(components.pop("scheduler").config)
        check_sd2_like(components, cfg.model.prediction_type, cfg.model.allow_prediction_type_mismatch)
        return components
    return load_sd2_components(cfg.model.base, cfg.model.prediction_type,
                               cfg.model.allow_prediction_type_mismatch)


def _depth_target(batch: dict) -> torch.Tensor:
    return targets.normalize_depth(batch["depth"], batch["valid"]).repeat(1, 3, 1, 1)


def fit_tiny_vae(vae, mixture: TrainingMixture, vae_cfg, seed: int, progress: bool = True,
                 target_of=_depth_target) -> dict:
    """Tiny-scale deviation from the recipe: fit the random tiny VAE so it autoencodes RGB and depth.

    SD-v2's VAE is pretrained; the tiny one is random, and a random decoder cannot turn predicted
    latents into depth. So before the UNet stage the tiny VAE learns to reconstruct synthetic RGB
    images and their normalised depth maps (L1 on both, a small KL term); it is frozen afterwards,
    as SD-v2's VAE is. The latent scaling factor is then set to 1 / std of the posterior means
    (how SD chose its 0.18215), so latents enter diffusion with unit variance. ``target_of(batch)``
    gives the 3-channel map reconstructed besides the image (task normals: the normal map).
    """
    from tqdm.auto import tqdm

    vae.train().requires_grad_(True)
    optimizer = torch.optim.Adam(vae.parameters(), lr=vae_cfg.lr)
    losses = []
    for i in tqdm(range(vae_cfg.steps), desc="fit tiny VAE", disable=not progress):
        batch = mixture[i]
        rgb = targets.rgb_to_unit_range(batch["rgb"])
        depth = target_of(batch)
        x = torch.cat([rgb, depth])
        generator = torch_generator(seed, i, VAE_NOISE)
        if vae_cfg.crop:  # the VAE is convolutional: random windows train it at a fraction of the cost
            top = int(torch.randint(0, x.shape[2] - vae_cfg.crop[0] + 1, (), generator=generator))
            left = int(torch.randint(0, x.shape[3] - vae_cfg.crop[1] + 1, (), generator=generator))
            x = x[:, :, top:top + vae_cfg.crop[0], left:left + vae_cfg.crop[1]]
        rgb, depth = x.chunk(2)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        n = rgb.shape[0]
        loss_rgb = (recon[:n] - rgb).abs().mean()
        loss_depth = (recon[n:] - depth).abs().mean()
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = loss_rgb + vae_cfg.depth_weight * loss_depth + vae_cfg.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append((loss_rgb.item(), loss_depth.item()))
    freeze(vae)
    with torch.no_grad():
        means = []
        for i in range(4):
            batch = mixture[vae_cfg.steps + i]
            depth = target_of(batch)
            x = torch.cat([targets.rgb_to_unit_range(batch["rgb"]), depth])
            means.append(vae.encode(x).latent_dist.mean)
        scaling = float(1.0 / torch.cat(means).std())
    vae.register_to_config(scaling_factor=scaling)
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": vae_cfg.steps, "scaling_factor": scaling,
            "final_l1_rgb": sum(a for a, _ in tail) / len(tail),
            "final_l1_depth": sum(b for _, b in tail) / len(tail)}


def marigold_loss(unet, vae, noise_scheduler, empty_embedding, batch: dict, generator: torch.Generator,
                  noise_kind: str = "annealed", noise_strength: float = 0.9, autocast=nullcontext) -> torch.Tensor:
    """The training objective on one micro-batch (``batch`` as made by train/data.py).

    Depth is quantile-normalised, image and depth go through the frozen VAE, the depth latent is
    noised at uniform timesteps with ``noise_kind`` noise, the UNet predicts v from
    [image latent, noisy depth latent] and the empty prompt, and the MSE is taken over the latent
    pixels whose image pixels are all valid. ``generator`` (CPU) draws timesteps and noise.
    """
    device = empty_embedding.device
    valid = batch["valid"]
    depth_norm = targets.normalize_depth(batch["depth"], valid)
    with autocast():  # the frozen VAE keeps fp32 weights; mixed precision only speeds its compute
        rgb_latent = targets.encode(vae, targets.rgb_to_unit_range(batch["rgb"]).to(device)).float()
        depth_latent = targets.encode_depth(vae, depth_norm.to(device)).float()
    loss_mask = targets.latent_mask(valid, targets.vae_factor(vae), depth_latent.shape[1]).to(device)

    pred, target = targets.v_prediction_step(unet, noise_scheduler, rgb_latent, depth_latent, empty_embedding,
                                             generator, noise_kind, noise_strength, autocast)
    return targets.masked_mse(pred, target, loss_mask)


class MetricsLog:
    """``metrics.csv`` (one row per logged step) plus TensorBoard when it is installed."""

    def __init__(self, folder: Path, resume_step: int | None, enabled: bool, columns=METRIC_COLUMNS):
        self.path, self.enabled, self.writer = folder / "metrics.csv", enabled, None
        self.columns = columns
        if not enabled:
            return
        rows = []
        if resume_step is not None and self.path.is_file():  # drop rows past the checkpoint
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder / "tensorboard"))
        except ImportError:
            pass

    def write(self, **row) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow({k: row.get(k, "") for k in self.columns})
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --- the recipe ---------------------------------------------------------------------------------

def train(cfg: TrainConfig, resume=None, command: str | None = None, progress: bool = True) -> dict:
    """Train (or resume) according to ``cfg``; returns a summary dict (steps, losses, scores, paths).

    Raises :class:`TrainingError` / :class:`~marigold_bench.errors.BenchError` subclasses for
    problems a user can fix; nothing is written to a checkpoint after a non-finite loss.
    ``cfg.cpu_threads`` applies for the duration of the call only.
    """
    threads = torch.get_num_threads()
    try:
        if cfg.cpu_threads:
            torch.set_num_threads(cfg.cpu_threads)
        return _train(cfg, resume, command, progress)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, resume, command, progress) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    wall_start = time.time()
    cfg.validate()

    # 1. Checks that need no model. --------------------------------------------------------------
    out = Path(cfg.output_dir)
    ensure_writable(out, "output folder")
    export_dir = Path(cfg.export.dir) if cfg.export.dir else out / "export"
    if cfg.export.enabled:
        ensure_writable(export_dir, "export folder")
    resume_dir, resumed = (find_checkpoint(resume), None) if resume else (None, None)
    if resume_dir is None and any((out / "checkpoints").glob("step_*")):
        raise TrainingError(f"{out} already holds checkpoints of a run: pass --resume {out} to continue "
                            "it, or set another output_dir (or remove that folder) to start afresh")
    if resume_dir is not None:
        check_checkpoint_files(resume_dir)  # before any of its files is read: nothing there is unpickled
        try:
            resumed = json.loads((resume_dir / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrainingError(f"cannot resume {resume_dir}: {STATE_FILE} is not readable JSON ({exc})") from None
        if resumed.get("recipe") != RECIPE:
            raise ResumeMismatchError(
                f"refusing to resume {resume_dir}: it was written by marigold-bench before 0.3, whose "
                "data order (samples drawn with replacement) and learning-rate warm-up differ from this "
                "version's, so the run could not continue exactly; finish it with 0.2 or start afresh")
        differences = config_differences(resumed["config"], cfg)
        if differences:
            raise ResumeMismatchError(f"refusing to resume {resume_dir}: it was made with another "
                                      "configuration:\n  " + "\n  ".join(differences))

    depth = cfg.task == "depth"  # task normals: train/normals.py supplies data, loss, validation, export
    if depth:
        sources = build_sources(cfg.data)  # cheap: split files and the first sample's files only
    else:
        sources, source_sizes = normals_task.build_normals_sources(cfg.data)
    if cfg.optim.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise TrainConfigError("optim.mixed_precision fp16 needs a GPU; use bf16 or no on CPU")
    accelerator = Accelerator(mixed_precision=cfg.optim.mixed_precision)
    device, main = accelerator.device, accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    set_seed(cfg.seed)
    show = progress and main and not os.environ.get("TQDM_DISABLE")

    # 2. Model surgery. ---------------------------------------------------------------------------
    components = prepare_marigold_components(load_base_components(cfg), cfg.model.empty_prompt_padding)
    unet, vae, text_encoder, tokenizer = (components[k] for k in ("unet", "vae", "text_encoder", "tokenizer"))
    schedule = components["scheduler_config"]
    noise_scheduler = training_scheduler(schedule, cfg.diffusion.timestep_spacing, cfg.diffusion.zero_snr)

    # 3. Data (sources were opened in step 1). ---------------------------------------------------
    def make_mixture(micro_batch: int, stream: int) -> TrainingMixture:
        if depth:
            return TrainingMixture(sources, cfg.data.sources, micro_batch, cfg.seed,
                                   cfg.data.resolution, cfg.data.flip_p, stream=stream)
        augmentation = normals_task.NormalsAugmentation(flip_p=cfg.data.flip_p, **dataclasses.asdict(cfg.normals_augment))
        return normals_task.NormalsMixture(sources, cfg.data.sources, micro_batch, cfg.seed, cfg.data.resolution,
                                           augmentation, source_sizes, stream=stream)

    mixture = make_mixture(cfg.optim.micro_batch, DATA)
    # the paper's validation sets where present (the first selects), the synthetic split otherwise
    wanted = cfg.validation.every or cfg.validation.at_start
    val_sets = (validation_sets if depth else normals_task.normals_validation_sets)(cfg.validation) if wanted else []

    # 4. Tiny scale only: fit the VAE once, or take the fitted one from the checkpoint. -----------
    vae_fit = None
    if cfg.vae_fit.steps > 0:
        if resumed is not None:
            from safetensors.torch import load_file

            vae.load_state_dict(load_file(str(resume_dir / "vae.safetensors")))
            vae_fit = resumed["vae_fit"]
            vae.register_to_config(scaling_factor=vae_fit["scaling_factor"])
        else:
            t0 = time.time()
            vae_mixture = make_mixture(cfg.vae_fit.batch, VAE_DATA)
            vae_fit = fit_tiny_vae(vae, vae_mixture, cfg.vae_fit, cfg.seed, show,
                                   _depth_target if depth else normals_task.vae_target)
            vae_fit["wall_s"] = time.time() - t0

    # 5. Objective and optimisation. --------------------------------------------------------------
    vae.to(device)  # frozen modules stay fp32: the validation/export pipeline needs one dtype
    text_encoder.to(device)
    empty_embedding = components["empty_text_embedding"].to(device)
    if cfg.optim.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    optimizer = torch.optim.Adam(unet.parameters(), lr=cfg.optim.lr, weight_decay=0.0)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.optim))
    unet, optimizer = accelerator.prepare(unet, optimizer)
    ema = None
    if cfg.optim.ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(accelerator.unwrap_model(unet).parameters(), decay=cfg.optim.ema_decay)
        ema.to(device)
    # what a checkpoint holds besides the UNet (train/resume_state.py: safetensors + JSON, no pickle)
    state_parts = {"optimizer": optimizer, "lr_scheduler": lr_scheduler}
    if ema is not None:
        state_parts["ema"] = ema
    if accelerator.scaler is not None:
        state_parts["scaler"] = accelerator.scaler

    select_key = "abs_rel" if depth else "mean_angular_error"  # lower is better for both
    start_step, best, totals = 0, {select_key: math.inf, "step": None}, {"skipped": 0, "unreadable": 0, "samples": 0}
    wall_before = 0.0
    if resumed is not None:
        accelerator.step = load_training_state(resume_dir / "state", model=accelerator.unwrap_model(unet),
                                               parts=state_parts, rank=rank, world=world)
        if ema is not None:
            ema.to(device)  # its state dict loads on the CPU
        start_step, best, totals = resumed["step"], resumed["best"], resumed["totals"]
        wall_before = resumed["wall_s"]
        old_best = resume_dir.parent.parent / "best"
        if best["step"] is not None and old_best.resolve() != (out / "best").resolve() and old_best.is_dir():
            shutil.copytree(old_best, out / "best", dirs_exist_ok=True)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    log = MetricsLog(out, start_step if resumed is not None else None, main,
                     METRIC_COLUMNS if depth else normals_task.METRIC_COLUMNS)

    def unwrapped():
        return accelerator.unwrap_model(unet)

    def run_validation(step: int) -> dict:
        model = copy.deepcopy(unwrapped())
        if ema is not None:
            ema.copy_to(model.parameters())
        if not depth:
            return run_normals_validation(step, model)
        predictor = training_predictor(
            model, vae, text_encoder, tokenizer,
            inference_scheduler(schedule, cfg.diffusion.timestep_spacing, cfg.diffusion.zero_snr),
            steps=cfg.validation.steps, ensemble=cfg.validation.ensemble, seed=cfg.validation.seed)
        by_set = {label: validate(predictor, dataset, str(out / "val" / f"step_{step:07d}" / label))["metrics"]
                  for label, dataset in val_sets}
        validations_by_set[step] = by_set
        main_label = val_sets[0][0]
        metrics = by_set[main_label]  # the main set alone selects, as in the official trainer
        if metrics.get("abs_rel", math.inf) < best["abs_rel"]:
            best.update(abs_rel=float(metrics["abs_rel"]), step=step, set=main_label)
            model.save_pretrained(str(out / "best" / "unet"), safe_serialization=True)
        return metrics

    def run_normals_validation(step: int, model) -> dict:
        pipe = normals_task.validation_pipeline(
            model, vae, text_encoder, tokenizer,
            inference_scheduler(schedule, cfg.diffusion.timestep_spacing, cfg.diffusion.zero_snr))
        by_set = {label: normals_task.score_pipeline(pipe, dataset, cfg.validation.steps, cfg.validation.ensemble,
                                                     cfg.validation.seed) for label, dataset in val_sets}
        validations_by_set[step] = by_set
        main_label = val_sets[0][0]
        metrics = by_set[main_label]
        if main:
            folder = out / "val" / f"step_{step:07d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "scores.json").write_text(json.dumps(by_set, indent=2))
        if metrics["mean_angular_error"] < best["mean_angular_error"]:
            best.update(mean_angular_error=metrics["mean_angular_error"], step=step, set=main_label)
            model.save_pretrained(str(out / "best" / "unet"), safe_serialization=True)
        return metrics

    def val_columns(metrics: dict) -> dict:
        if depth:
            return {"val_abs_rel": metrics["abs_rel"], "val_delta1": metrics["delta1"]}
        return {"val_mean_angular_error": metrics["mean_angular_error"],
                "val_median_angular_error": metrics["median_angular_error"]}

    def save_checkpoint(step: int) -> Path:
        root = out / "checkpoints"
        final, tmp = root / f"step_{step:07d}", root / f".tmp_step_{step:07d}"
        accelerator.wait_for_everyone()
        if main and tmp.exists():
            shutil.rmtree(tmp)
        accelerator.wait_for_everyone()  # no process writes into a folder still being removed
        save_training_state(tmp / "state", model=unwrapped(), parts=state_parts, rank=rank, world=world,
                            main=main, step=accelerator.step)
        accelerator.wait_for_everyone()  # every rank's RNG state is in before the folder is renamed
        if main:
            if vae_fit is not None:
                from safetensors.torch import save_file

                save_file({k: v.contiguous().cpu() for k, v in vae.state_dict().items()}, str(tmp / "vae.safetensors"))
            state = dict(step=step, recipe=RECIPE, config=cfg.to_dict(), best=best, totals=totals, vae_fit=vae_fit,
                         wall_s=wall_before + time.time() - wall_start,
                         empty_prompt_padding=cfg.model.empty_prompt_padding)
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))  # written last: marks it complete
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            for old in sorted(root.glob("step_*"))[:-max(1, cfg.keep_checkpoints)]:
                shutil.rmtree(old, ignore_errors=True)
        return final

    # 6. The loop: one optimiser step = grad_accum micro-batches on each process. ----------------
    accum = cfg.optim.grad_accum
    loader = make_loader(mixture, start_step, cfg.max_steps, accum, rank, world, cfg.data.num_workers)
    batches = iter(loader)
    losses, last_val, last_checkpoint, validations, validations_by_set = [], None, resume_dir, {}, {}
    if cfg.validation.at_start and resumed is None and main:
        last_val = validations[0] = run_validation(0)
        log.write(step=0, **val_columns(last_val), elapsed_s=time.time() - wall_start)
    bar = tqdm(range(start_step, cfg.max_steps), initial=start_step, total=cfg.max_steps,
               desc="train", disable=not show)
    t_log, samples_since = time.time(), 0
    for step in bar:
        step_loss = 0.0
        for micro in range(accum):
            batch = next(batches)
            k = micro_batch_index(step, micro, accum, rank, world)
            assert batch["index"] == k, "data order out of step"
            totals["skipped"] += batch["skipped"]
            totals["unreadable"] += batch["unreadable"]

            with accelerator.no_sync(unet) if micro < accum - 1 else nullcontext():
                loss = (marigold_loss if depth else normals_task.normals_loss)(
                    unet, vae, noise_scheduler, empty_embedding, batch, torch_generator(cfg.seed, k, NOISE),
                    cfg.diffusion.noise, cfg.diffusion.noise_strength, accelerator.autocast)
                if not torch.isfinite(loss):
                    kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else \
                        "no checkpoint was written yet"
                    raise TrainingError(
                        f"loss is {loss.item()} at step {step} (micro-batch {micro}, global batch {k}, "
                        f"source {batch['source']}, samples {', '.join(batch['ids'])}); training stopped, "
                        f"{kept}")
                accelerator.backward(loss / accum)
            step_loss += loss.item() / accum
            samples_since += batch["rgb"].shape[0] * world

        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(unwrapped().parameters())
        losses.append(step_loss)
        totals["samples"] += cfg.optim.micro_batch * accum * world
        done = step + 1

        row = None
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            now = time.time()
            row = dict(step=done, loss=step_loss, lr=lr_scheduler.get_last_lr()[0], samples=totals["samples"],
                       samples_per_s=samples_since / max(now - t_log, 1e-9), skipped=totals["skipped"],
                       unreadable=totals["unreadable"], elapsed_s=wall_before + now - wall_start)
            t_log, samples_since = now, 0
            bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{row['lr']:.2e}")
        if cfg.validation.every and (done % cfg.validation.every == 0 or done == cfg.max_steps) and main:
            last_val = validations[done] = run_validation(done)
            row = {**(row or dict(step=done, elapsed_s=wall_before + time.time() - wall_start)),
                   **val_columns(last_val)}
        if row is not None:
            log.write(**row)
        if done % cfg.checkpoint_every == 0 or done == cfg.max_steps:
            last_checkpoint = save_checkpoint(done)
    bar.close()
    log.close()
    wall_s = wall_before + time.time() - wall_start

    # 7. Export the selected weights as a MarigoldDepthPipeline with a model card. --------------
    result = dict(steps=cfg.max_steps, start_step=start_step, losses=losses, best=best, totals=totals,
                  last_validation=last_val, validations=validations, validations_by_set=validations_by_set,
                  validation_sets=[label for label, _ in val_sets], vae_fit=vae_fit, wall_s=wall_s, output_dir=str(out),
                  checkpoint=str(last_checkpoint) if last_checkpoint else None, export_dir=None)
    if cfg.export.enabled and main:
        model = copy.deepcopy(unwrapped()).to("cpu")
        if ema is not None:
            ema.copy_to(model.parameters())
        selected = cfg.max_steps
        if cfg.export.select == "best" and best["step"] is not None and best["step"] != cfg.max_steps:
            from diffusers import UNet2DConditionModel

            model = UNet2DConditionModel.from_pretrained(str(out / "best" / "unet"), use_safetensors=True)
            selected = best["step"]
        vae.to("cpu")
        text_encoder.to("cpu")
        if depth:
            export_pipeline(export_dir, model, vae, text_encoder, tokenizer, schedule,
                            cfg.diffusion.timestep_spacing, cfg.diffusion.zero_snr,
                            cfg.export.default_denoising_steps, cfg.export.default_processing_resolution,
                            cfg.export.dtype)
            scores = score_export(export_dir, cfg, out) if cfg.export.card_splits else {}
        else:
            normals_task.export_normals_pipeline(
                export_dir, model, vae, text_encoder, tokenizer,
                inference_scheduler(schedule, cfg.diffusion.timestep_spacing, cfg.diffusion.zero_snr),
                cfg.export.default_denoising_steps, cfg.export.default_processing_resolution, cfg.export.dtype)
            scores = normals_task.score_export(export_dir, cfg) if cfg.export.card_splits else {}
        write_model_card(export_dir, cfg, command, selected, wall_s, vae_fit, totals, scores,
                         val_sets[0][0] if val_sets else None)
        result.update(export_dir=str(export_dir), selected_step=selected, scores=scores)
    return result


# --- export helpers ---------------------------------------------------------------------------

def score_export(export_dir: Path, cfg: TrainConfig, out: Path) -> dict:
    """Scores of the exported checkpoint (loaded back from disk, as ``marigold-bench run`` loads it)
    and of the image-blind baselines, on the synthetic splits of ``cfg.export.card_splits``."""
    from marigold_bench.data.synthetic import SyntheticDataset
    from marigold_bench.eval.evaluator import run_predictor
    from marigold_bench.inference.baseline import BaselinePredictor
    from marigold_bench.inference.predictor import MarigoldPredictor

    steps = sorted({cfg.export.default_denoising_steps, 1}, reverse=True)
    predictors = {f"model ({n} step{'s' if n > 1 else ''}, N=1)": (f"model_{n}step", MarigoldPredictor.from_pretrained(
        str(export_dir), steps=n, ensemble=1, processing_res=0, precision="fp32", seed=0)) for n in steps}
    predictors["baseline:ramp"] = ("baseline_ramp", BaselinePredictor("ramp"))
    predictors["baseline:constant"] = ("baseline_constant", BaselinePredictor("constant"))
    scores = {}
    for split in cfg.export.card_splits:
        dataset = SyntheticDataset(split)
        scores[split] = {}
        for name, (folder, predictor) in predictors.items():
            summary = run_predictor(dataset, predictor, str(out / "card" / split / folder), progress=False)
            scores[split][name] = {"abs_rel": summary["metrics"]["abs_rel"], "delta1": summary["metrics"]["delta1"],
                                   "n": summary["n"]}
    return scores


def write_model_card(export_dir: Path, cfg: TrainConfig, command, selected_step, wall_s, vae_fit, totals,
                     scores, selection_set: str | None = None) -> None:
    import diffusers

    selection_set = selection_set or f"synthetic-{cfg.validation.split}"
    if cfg.task == "normals":
        return _write_normals_card(export_dir, cfg, command, selected_step, wall_s, vae_fit, totals, scores,
                                   selection_set)

    lines = [
        f"# {cfg.name}",
        "",
        "A Marigold-style affine-invariant depth estimator (diffusers `MarigoldDepthPipeline`), "
        "trained by marigold-bench's own trainer.",
        "",
        "## How it was made",
        f"- command: `{command or 'marigold-bench train --config <config>'}`",
        f"- base model: `{cfg.model.base}`" + (f" (random init, seed {cfg.model.init_seed})" if cfg.model.base == "tiny" else "")
        + f"; conv_in 4 -> 8 channels (weight repeated, x0.5); VAE and text encoder frozen; empty-prompt "
        f"embedding computed once with tokenizer padding `{cfg.model.empty_prompt_padding}`",
        f"- seed: {cfg.seed}",
        f"- data: {', '.join(f'{k} {_split_of(cfg.data, k)} (weight {v})' for k, v in cfg.data.sources.items())}; "
        f"resolution "
        f"{cfg.data.resolution or 'native'}; horizontal flips p={cfg.data.flip_p}; "
        f"{totals['skipped']} samples skipped (no valid depth), {totals['unreadable']} unreadable",
        f"- steps: {cfg.max_steps} optimiser steps x batch {cfg.optim.micro_batch} x {cfg.optim.grad_accum} "
        f"accumulation; Adam lr {cfg.optim.lr:g}, {cfg.optim.lr_schedule} schedule, "
        f"{cfg.optim.warmup_steps} warm-up steps",
        f"- objective: v-prediction, DDPM {cfg.diffusion.timestep_spacing} spacing, zero-terminal-SNR "
        f"{cfg.diffusion.zero_snr}, {cfg.diffusion.noise} noise (strength {cfg.diffusion.noise_strength})",
        f"- exported weights: step {selected_step} ({cfg.export.select} by validation AbsRel on "
        f"{selection_set}, {cfg.validation.steps} DDIM step, ensemble {cfg.validation.ensemble})",
        f"- wall time: {wall_s / 60:.1f} min in total on {_device_name()}"
        + (f" (VAE fit {vae_fit['wall_s'] / 60:.1f} min)" if vae_fit and "wall_s" in vae_fit else ""),
        f"- software: torch {torch.__version__}, diffusers {diffusers.__version__}",
        f"- inference defaults: {cfg.export.default_denoising_steps} DDIM step(s), processing resolution "
        f"{cfg.export.default_processing_resolution or 'native'}",
    ]
    if vae_fit:
        lines += [
            "",
            "## Deviation from the recipe (tiny scale)",
            f"The tiny VAE starts random, unlike SD-v2's pretrained one, so it was first fitted for "
            f"{vae_fit['steps']} steps to reconstruct synthetic RGB images and normalised depth maps "
            f"(final L1: RGB {vae_fit['final_l1_rgb']:.3f}, depth {vae_fit['final_l1_depth']:.3f} on the "
            f"[-1, 1] scale), then frozen; its latent scaling factor was set to 1/std of the latents "
            f"({vae_fit['scaling_factor']:.4f}). Everything after that follows the Marigold recipe.",
        ]
    if scores:
        lines += ["", "## Scores (synthetic benchmark, least-squares fit in depth space)", "",
                  "| split | predictor | n | AbsRel | δ1 |", "|---|---|---|---|---|"]
        for split, rows in scores.items():
            for name, s in rows.items():
                lines.append(f"| {split} | {name} | {s['n']} | {s['abs_rel']:.4f} | {s['delta1']:.4f} |")
    lines += ["", "Lower AbsRel is better; δ1 is the share of pixels within a factor 1.25 of the truth.", ""]
    (export_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _write_normals_card(export_dir: Path, cfg: TrainConfig, command, selected_step, wall_s, vae_fit, totals,
                        scores, selection_set: str) -> None:
    import diffusers

    splits = ", ".join(f"{k} split {getattr(cfg.data, f'{k}_normals_split', cfg.data.synthetic_split)!r} (weight {v})"
                       for k, v in cfg.data.sources.items())
    lines = [
        f"# {cfg.name}",
        "",
        "A Marigold-style surface-normals estimator (diffusers `MarigoldNormalsPipeline`), trained by "
        "marigold-bench's own trainer."
        + (" A toy: a tiny random-init model trained for minutes on a CPU on procedural scenes; it exercises "
           "the recipe and the tooling end to end and is no use as a normals estimator." if cfg.model.base == "tiny" else ""),
        "",
        "## How it was made",
        f"- command: `{command or 'marigold-bench train --task normals --config <config>'}`",
        f"- base model: `{cfg.model.base}`" + (f" (random init, seed {cfg.model.init_seed})" if cfg.model.base == "tiny" else "")
        + "; conv_in 4 -> 8 channels (weight repeated, x0.5); VAE and text encoder frozen",
        f"- seed: {cfg.seed}",
        f"- data: {splits}; resolution {cfg.data.resolution or 'each source its own'}; "
        f"{totals['skipped']} samples skipped (no ground truth), {totals['unreadable']} unreadable",
        f"- steps: {cfg.max_steps} optimiser steps x batch {cfg.optim.micro_batch} x {cfg.optim.grad_accum} "
        f"accumulation; Adam lr {cfg.optim.lr:g}, {cfg.optim.lr_schedule} schedule, {cfg.optim.warmup_steps} "
        f"warm-up steps, decay to {cfg.optim.final_ratio:g} at step {cfg.optim.decay_steps}",
        f"- objective: v-prediction, DDPM {cfg.diffusion.timestep_spacing} spacing, zero-terminal-SNR "
        f"{cfg.diffusion.zero_snr}, {cfg.diffusion.noise} noise (strength {cfg.diffusion.noise_strength})",
        f"- validation: {cfg.validation.steps} DDIM step, ensemble {cfg.validation.ensemble}, native resolution, "
        f"every {cfg.validation.every} steps on {selection_set}",
        f"- wall time: {wall_s / 60:.1f} min in total on {_device_name()}"
        + (f" (VAE fit {vae_fit['wall_s'] / 60:.1f} min)" if vae_fit and "wall_s" in vae_fit else ""),
        f"- software: torch {torch.__version__}, diffusers {diffusers.__version__}",
        f"- inference defaults: {cfg.export.default_denoising_steps} DDIM step(s), processing resolution "
        f"{cfg.export.default_processing_resolution or 'native'}",
    ]
    lines += normals_task.card_lines(cfg, scores, selected_step, selection_set)
    if vae_fit:
        lines += [
            "",
            "## Deviation from the recipe (tiny scale)",
            f"The tiny VAE starts random, unlike SD-v2's pretrained one, so it was first fitted for "
            f"{vae_fit['steps']} steps to reconstruct synthetic RGB images and normal maps (final L1: RGB "
            f"{vae_fit['final_l1_rgb']:.3f}, normals {vae_fit['final_l1_depth']:.3f} on the [-1, 1] scale), then "
            f"frozen; its latent scaling factor was set to 1/std of the latents ({vae_fit['scaling_factor']:.4f}).",
        ]
    lines += [""]
    (export_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _split_of(data_cfg, source: str) -> str:
    return f"split {getattr(data_cfg, f'{source}_split', '?')!r}"


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads > 1 else ''}, {os.cpu_count()} cores)"


__all__ = ["TrainingError", "ResumeMismatchError", "train", "fit_tiny_vae", "lr_factor", "find_checkpoint"]
