"""Find and load Marigold checkpoints in diffusers format.

A checkpoint is a folder with ``model_index.json`` and one subfolder per component (``unet``,
``vae``, ``scheduler``, ``text_encoder``, ``tokenizer``), as written by
``MarigoldDepthPipeline.save_pretrained`` and published by the Marigold authors. ``--model`` may
name such a folder or a Hugging Face hub id; hub ids are looked up in the local cache only, so
nothing is downloaded behind the user's back and offline machines get a message saying how to
fetch the files.

Problems a user can fix are reported as `CheckpointError` with the component and file named,
before any weights are read.

From 0.3 a ``--model`` may also be a transformers depth estimator; `is_marigold_checkpoint` and
`is_transformers_checkpoint` tell the two apart from the files (``model_index.json`` naming a
Marigold pipeline; ``config.json`` with ``preprocessor_config.json``), never from the name. The
model families (`marigold_bench.inference.families`) claim checkpoints with them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .hub import cached_snapshot, download_command, hf_cache_dir, how_to_fetch, no_loading_bar

#: What inference needs, in the order it is checked.
REQUIRED_COMPONENTS = ("unet", "vae", "scheduler", "text_encoder", "tokenizer")

#: Marigold's UNet sees the image latent and the depth latent stacked: 2 x 4 channels.
MARIGOLD_IN_CHANNELS = 8

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_BUNDLED = Path(__file__).resolve().parents[1] / "checkpoints"


def resolve_checkpoint(model: str | os.PathLike) -> tuple[Path, str]:
    """Where the checkpoint ``model`` lives on this machine.

    Args:
        model: a folder, the name of a checkpoint bundled with the package
            (``marigold_bench/checkpoints/<name>``), or a hub id such as
            ``prs-eth/marigold-depth-v1-1`` already present in the Hugging Face cache. (Registry
            names are turned into hub ids a layer up, `marigold_bench.inference.registry.resolve`.)

    Returns:
        `(path, source)`, ``source`` being ``"local"``, ``"bundled"`` or ``"hf-cache"``.

    Raises:
        CheckpointError: when it is none of these; for a hub id the message says how to download it.
    """
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve(), "local"
    if path.exists():
        raise CheckpointError(f"--model {text!r} is a file; pass the checkpoint folder (the one holding model_index.json)")
    if "/" not in text and "\\" not in text and (_BUNDLED / text).is_dir():
        return _BUNDLED / text, "bundled"
    if _HUB_ID.match(text) and not text.startswith((".", "~")):
        return _from_hf_cache(text), "hf-cache"
    raise CheckpointError(f"--model {text!r}: no such checkpoint folder, registry name (`marigold-bench models` "
                          "lists them) or hub id like 'owner/name'")


def _from_hf_cache(repo_id: str) -> Path:
    path = cached_snapshot(repo_id)
    if path is None:
        raise CheckpointError(f"model {repo_id!r} is not a local folder and is not in the Hugging Face cache "
                              f"({hf_cache_dir()}); {how_to_fetch(repo_id)}, or pass the downloaded folder with "
                              "--model DIR.")
    return path


#: what ``detect_kind`` answers
KINDS = ("marigold", "transformers")

#: ``model_index.json`` classes of Marigold depth checkpoints: diffusers' port (prs-eth's
#: marigold-depth-*, and what the suite's trainer and converter export) and the original
#: Marigold code's (Bingxin/Marigold, prs-eth/marigold-v1-0)
MARIGOLD_PIPELINES = ("MarigoldDepthPipeline", "MarigoldPipeline")


#: ``model_index.json`` class of Marigold surface-normals checkpoints (diffusers' port, prs-eth's
#: marigold-normals-*, and the original code's class of the same name)
MARIGOLD_NORMALS_PIPELINES = ("MarigoldNormalsPipeline",)

#: the pipeline-level settings a Marigold ``model_index.json`` may hold (`MarigoldComponents`)
PIPELINE_CONFIG_KEYS = ("prediction_type", "scale_invariant", "shift_invariant", "default_denoising_steps",
                        "default_processing_resolution", "use_full_z_range")


def pipeline_class(path: str | os.PathLike) -> str | None:
    """The ``_class_name`` the folder's ``model_index.json`` names; None without a readable one."""
    return _diffusers_component(Path(path) / "model_index.json")


def is_marigold_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the folder holds a Marigold depth checkpoint, from its files alone.

    Yes for a `MARIGOLD_PIPELINES` class, and for a ``StableDiffusionPipeline`` whose UNet takes
    the image latent beside the noisy one (8 input channels): that is how E2E-FT's checkpoints
    (GonzaloMG/marigold-e2e-ft-depth, stable-diffusion-e2e-ft-depth) were saved. Any other
    pipeline (Lotus, Marigold normals, Stable Diffusion itself) is not a Marigold depth model.
    """
    path = Path(path)
    name = pipeline_class(path)
    if name in MARIGOLD_PIPELINES:
        return not is_marigold_normals_checkpoint(path)
    if name == "StableDiffusionPipeline":
        try:
            unet = json.loads((path / "unet" / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(unet, dict) and unet.get("in_channels") == MARIGOLD_IN_CHANNELS
    return False


def is_marigold_normals_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the folder holds a Marigold surface-normals checkpoint, from ``model_index.json``:
    a `MARIGOLD_NORMALS_PIPELINES` class, or a Marigold pipeline class that declares
    ``prediction_type: "normals"``. (`is_marigold_checkpoint` answers no for these.)"""
    path = Path(path)
    name = pipeline_class(path)
    if name in MARIGOLD_NORMALS_PIPELINES:
        return True
    if name in MARIGOLD_PIPELINES:
        try:
            index = json.loads((path / "model_index.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(index, dict) and index.get("prediction_type") == "normals"
    return False


def is_transformers_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the folder holds a transformers model with its image processor saved beside it."""
    path = Path(path)
    return (path / "config.json").is_file() and (path / "preprocessor_config.json").is_file()


def detect_kind(path: str | os.PathLike) -> str:
    """Which kind of checkpoint the folder ``path`` holds, from its files.

    Returns:
        ``"marigold"`` for a Marigold depth pipeline folder (`is_marigold_checkpoint`),
        ``"transformers"`` for a model folder with ``config.json`` and ``preprocessor_config.json``.

    Raises:
        CheckpointError: for anything else, saying what the folder holds (`why_unrecognised`).
    """
    if is_marigold_checkpoint(path):
        return "marigold"
    if is_transformers_checkpoint(path):
        return "transformers"
    raise CheckpointError(why_unrecognised(path))


def why_unrecognised(path: str | os.PathLike) -> str:
    """What a folder that is neither kind of checkpoint holds, and what it would need: the
    message of `detect_kind` (and of a model no family claims)."""
    path = Path(path)
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))
    except OSError:
        names = []
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "") if names else "nothing"
    if (path / "model_index.json").is_file():
        name = pipeline_class(path)
        if name == "StableDiffusionPipeline":
            return (f"{path} looks like a Stable Diffusion checkpoint: its UNet does not take the "
                    f"{MARIGOLD_IN_CHANNELS} input channels of a Marigold depth UNet (image latent + depth latent). "
                    "Convert it with marigold_bench.model.expand_conv_in and fine-tune it (marigold-bench train) first.")
        return (f"{path} is a diffusers checkpoint of a {name or 'unnamed'} pipeline, not a Marigold depth "
                f"pipeline ({', '.join(MARIGOLD_PIPELINES)} in model_index.json)")
    if (path / "config.json").is_file():
        component = _diffusers_component(path / "config.json")
        if component:
            return (f"{path} is one component ({component}) of a diffusers checkpoint, not a whole one: pass the "
                    f"folder that holds model_index.json (here probably {path.parent})")
        what = _config_summary(path / "config.json")
        return (f"{path} is not a diffusers (Marigold) checkpoint (no model_index.json) and has config.json ({what}) "
                f"but no preprocessor_config.json: a transformers depth model needs its image processor saved "
                f"beside it (image_processor.save_pretrained). Found: {shown}")
    return (f"{path} is neither a diffusers (Marigold) checkpoint, which has model_index.json, nor a transformers "
            f"depth model, which has config.json and preprocessor_config.json. Found: {shown}")


def _diffusers_component(config_file: Path) -> str | None:
    """The class a diffusers config names (``UNet2DConditionModel``), or None."""
    try:
        name = json.loads(config_file.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _config_summary(config_file: Path) -> str:
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return "unreadable"
    archs = ", ".join(config.get("architectures") or []) or "no architectures"
    return f"model_type {config.get('model_type')!r}, {archs}"


def check_transformers_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Check that ``path`` holds a transformers depth-estimation model, without loading weights.

    Returns:
        `dict`: its ``config.json``.

    Raises:
        CheckpointError: files missing, or the model is not one ``AutoModelForDepthEstimation``
        loads (e.g. an image classifier), naming what it is.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES

    path = Path(path)
    if not is_transformers_checkpoint(path):
        if (path / "model_index.json").is_file():
            raise CheckpointError(f"{path} is a diffusers checkpoint, not a transformers model")
        raise CheckpointError(why_unrecognised(path))
    try:
        config = json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON: {exc}") from exc
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    if model_type not in MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES or (
            archs and not any(a.endswith("ForDepthEstimation") for a in archs)):
        raise CheckpointError(
            f"{path} is a transformers model ({_config_summary(path / 'config.json')}) but not a depth estimator; "
            f"AutoModelForDepthEstimation loads: {', '.join(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES)}")
    weights = [f for f in path.iterdir() if f.name.removesuffix(".index.json").endswith((".safetensors", ".bin"))]
    if not weights:
        raise CheckpointError(f"transformers model {path} has no weights (*.safetensors or *.bin)")
    return config


def resolve_model(model: str | os.PathLike) -> tuple[Path, str, str]:
    """`resolve_checkpoint`, then `detect_kind`: ``(path, source, kind)``."""
    path, source = resolve_checkpoint(model)
    return path, source, detect_kind(path)


def _weights(folder: Path) -> tuple[bool, str | None]:
    """Whether ``folder`` holds weights, and the diffusers ``variant`` needed to load them.

    Published checkpoints sometimes carry only ``*.fp16.safetensors``; diffusers loads those only
    when asked for the variant by name.
    """
    found: set[str | None] = set()
    for file in folder.iterdir():
        variant, ext = _variant_and_format(file.name)
        if ext in ("safetensors", "bin") and variant in _VARIANTS:
            found.add(variant)
    if not found:
        return False, None
    return True, None if None in found else sorted(found)[-1]


def check_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Check that ``path`` is a complete Marigold checkpoint, without loading weights.

    Returns:
        `dict`: ``model_index.json``, plus ``"_variants"``: the weight variant found per component.

    Raises:
        CheckpointError: naming the missing component or file, or saying that the UNet has 4
        input channels (a Stable Diffusion checkpoint that has not been converted to Marigold).
    """
    path = Path(path)
    index_file = path / "model_index.json"
    if not index_file.is_file():
        if path.is_dir() and is_transformers_checkpoint(path):
            raise CheckpointError(f"{path} is a transformers model, not a diffusers (Marigold) checkpoint")
        if path.is_dir():   # say what the folder is instead
            raise CheckpointError(why_unrecognised(path))
        raise CheckpointError(f"{path} is not a diffusers checkpoint: model_index.json is missing")
    try:
        index = json.loads(index_file.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{index_file} is not valid JSON: {exc}") from exc
    variants: dict[str, str | None] = {}
    for name in REQUIRED_COMPONENTS:
        folder = path / name
        if not folder.is_dir():
            raise CheckpointError(f"checkpoint {path} has no '{name}' component (folder {folder} is missing)")
        if name == "scheduler":
            if not (folder / "scheduler_config.json").is_file():
                raise CheckpointError(f"checkpoint {path}: component 'scheduler' lacks scheduler_config.json")
            continue
        if name == "tokenizer":
            if not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()) \
                    and not (folder / "tokenizer.json").is_file():
                raise CheckpointError(
                    f"checkpoint {path}: component 'tokenizer' lacks its vocabulary (vocab.json + merges.txt)")
            continue
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"checkpoint {path}: component '{name}' lacks config.json")
        present, variants[name] = _weights(folder)
        if not present:
            raise CheckpointError(f"checkpoint {path}: component '{name}' has no weights (*.safetensors or *.bin) in {folder}")
    unet_config = json.loads((path / "unet" / "config.json").read_text())
    in_channels = unet_config.get("in_channels")
    if in_channels == 4:
        raise CheckpointError(
            f"{path} looks like a Stable Diffusion checkpoint: its UNet takes 4 input channels, Marigold's "
            f"takes {MARIGOLD_IN_CHANNELS} (image latent + depth latent). Convert it with "
            "marigold_bench.model.expand_conv_in and fine-tune it (marigold-bench train) first.")
    if in_channels != MARIGOLD_IN_CHANNELS:
        raise CheckpointError(
            f"{path}: the UNet takes {in_channels} input channels; a Marigold depth UNet takes {MARIGOLD_IN_CHANNELS}")
    return {**index, "_variants": variants}


#: file endings of weights in any framework's format; only the ones loading reads are hashed
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".msgpack", ".onnx", ".pb", ".h5", ".ckpt", ".pt", ".pth", ".gguf")
_fingerprints: dict[tuple, str] = {}


def weights_fingerprint(path: str | os.PathLike, components: tuple[str, ...] | None = None) -> str:
    """sha256 of what loading a checkpoint reads: relative paths and full contents.

    What identifies a model in the prediction cache, instead of where it lies: the same
    checkpoint at another path, on another node, behind a hub id or with extra files beside it
    (other weight variants or formats, model cards, hidden files) gives the same fingerprint; a
    changed weight, config or tokenizer file gives another. Hashed: ``model_index.json`` and,
    in each component folder, every file except weights, plus the weight files of the variant
    and format the loader picks (safetensors before bin). Symbolic links are followed, also to
    folders. SD-v2-size weights (about 5 GB) take a few seconds; the result is remembered per
    process while the files' sizes and times stay the same.

    Args:
        path: the checkpoint folder.
        components: the component folders to hash; default: those of a Marigold checkpoint.
            ``(".",)`` hashes a single-model folder such as a tiny autoencoder.
    """
    root = Path(path)
    folders = REQUIRED_COMPONENTS if components is None else components
    files = [root / "model_index.json"] if components is None else []
    for folder in folders:
        files += _loaded_files(root / folder)
    stats = [(f, f.stat()) for f in files]
    key = tuple((str(f), st.st_size, st.st_mtime_ns) for f, st in stats)
    if key not in _fingerprints:
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
            digest.update(b"\0")
        _fingerprints[key] = digest.hexdigest()
    return _fingerprints[key]


def _loaded_files(folder: Path) -> list[Path]:
    """The files of a component folder that loading reads, sorted (see `weights_fingerprint`)."""
    found, seen = [], set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:          # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(top) / n for n in names if not n.startswith(".") and not n.endswith(".md")]
    weights = {f: _variant_and_format(f.name) for f in found
               if f.name.removesuffix(".index.json").endswith(_WEIGHT_SUFFIXES)}
    _, variant = _weights(folder) if folder.is_dir() else (False, None)
    formats = {fmt for v, fmt in weights.values() if v == variant}
    picked = "safetensors" if "safetensors" in formats else "bin"
    chosen = [f for f, (v, fmt) in weights.items() if v == variant and fmt == picked]
    others = [f for f in found if f not in weights]
    return sorted(others + chosen, key=lambda f: f.relative_to(folder).as_posix())


#: weight variants the loader knows (None: the plain file); others (``model.ema.safetensors``,
#: ``a.b.c.bin``) are neither loaded nor hashed
_VARIANTS = (None, "fp16", "bf16")


def _variant_and_format(name: str) -> tuple[str | None, str]:
    """``diffusion_pytorch_model.fp16.safetensors`` -> ``("fp16", "safetensors")``; shards and
    their ``.index.json`` count as the weights they index. A name with more dots gives its
    whole middle part as the variant, which no `_VARIANTS` entry matches."""
    stem, _, ext = name.removesuffix(".index.json").rpartition(".")
    _, _, variant = stem.partition(".")
    return (variant or None), ext


@dataclass
class MarigoldComponents:
    """The loaded parts of a checkpoint and what its ``model_index.json`` says about it."""

    unet: Any
    vae: Any
    scheduler: Any
    text_encoder: Any
    tokenizer: Any
    path: Path
    source: str
    index: dict[str, Any] = field(default_factory=dict)

    @property
    def pipeline_config(self) -> dict[str, Any]:
        """The pipeline-level settings (prediction type, default steps and resolution)."""
        return {k: self.index.get(k) for k in PIPELINE_CONFIG_KEYS}


def load_components(model: str | os.PathLike, torch_dtype: torch.dtype = torch.float32) -> MarigoldComponents:
    """Resolve, check and load a Marigold checkpoint's components on the CPU.

    Components are loaded one by one with the diffusers/transformers classes rather than through
    ``MarigoldDepthPipeline.from_pretrained``, so that checkpoints saved by older Marigold code
    (``_class_name: MarigoldPipeline``, no default steps in the index) load the same way.

    Args:
        model: see `resolve_checkpoint`.
        torch_dtype: dtype of the UNet, VAE and text encoder.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    path, source = resolve_checkpoint(model)
    index = check_checkpoint(path)
    variants = index.pop("_variants")
    scheduler_class = json.loads((path / "scheduler" / "scheduler_config.json").read_text()).get("_class_name")
    # A consistency-distilled checkpoint (marigold-depth-lcm) runs its own LCMScheduler; the
    # others run DDIM, whatever class their config names.
    scheduler_type = LCMScheduler if scheduler_class == "LCMScheduler" else DDIMScheduler
    if scheduler_class not in (None, "DDIMScheduler", "LCMScheduler"):
        warnings.warn(f"{path}: the checkpoint's scheduler is {scheduler_class}; the Marigold recipe runs "
                      "DDIM, so its config is loaded into a DDIMScheduler", stacklevel=2)
    with warnings.catch_warnings():
        # Loading a config into another scheduler class lists the keys it ignores; not actionable.
        warnings.simplefilter("ignore")
        scheduler = scheduler_type.from_pretrained(path, subfolder="scheduler")
    try:
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch_dtype,
                                                    variant=variants.get("unet"))
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=torch_dtype,
                                            variant=variants.get("vae"))
        with no_loading_bar():  # transformers draws a "Loading weights" bar for the text encoder
            text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", dtype=torch_dtype,
                                                         variant=variants.get("text_encoder"))
        tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from exc
    return MarigoldComponents(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer, path=path, source=source, index=index)


__all__ = ["CheckpointError", "REQUIRED_COMPONENTS", "MARIGOLD_IN_CHANNELS", "MarigoldComponents",
           "resolve_checkpoint", "check_checkpoint", "load_components", "detect_kind", "resolve_model",
           "check_transformers_checkpoint", "cached_snapshot", "hf_cache_dir", "download_command", "KINDS",
           "MARIGOLD_PIPELINES", "MARIGOLD_NORMALS_PIPELINES", "PIPELINE_CONFIG_KEYS", "pipeline_class",
           "is_marigold_checkpoint", "is_marigold_normals_checkpoint", "is_transformers_checkpoint",
           "why_unrecognised"]
