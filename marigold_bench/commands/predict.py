"""``marigold-bench predict``: depth maps (or surface normals) for your own images.

For every input image ``<name>.<ext>`` (a file, or every image under a folder, sub-folders kept)
it writes into ``--out``:

| file | content |
|---|---|
| ``<name>_depth.npy`` | float32 H x W affine-invariant depth in [0, 1] (0 = near), input size |
| ``<name>_depth_16bit.png`` | the same scaled to 0..65535 |
| ``<name>_depth_colored.png`` | the same through matplotlib's Spectral colormap, input size (near red, far blue) |
| ``<name>_depth_colorbar.png`` | that colour map beside a colour bar saying what the colours mean (values, units) |
| ``<name>_uncertainty.npy`` / ``.png`` | ensemble spread (N > 1 only); the PNG is scaled to its maximum |
| ``settings.json`` | every resolved inference setting |

``<name>`` is the image's name without its extension; where images of one folder share it
(``a.png`` and ``a.jpg``) it keeps the extension instead (``a_png``, ``a_jpg``), so that no
image's outputs overwrite another's (`output_names`).

A surface-normals model (a Marigold-normals checkpoint, ``settings.json`` has ``task: normals``
and its camera ``frame``) writes instead:

| file | content |
|---|---|
| ``<name>_normals.npy`` | float32 3 x H x W unit normals at the input size, in the model's frame (the official layout) |
| ``<name>_normals.png`` | the standard colouring: each component ``(n + 1) / 2 * 255`` as R, G, B (truncated, as the official pipeline) |
| ``<name>_uncertainty.npy`` / ``.png`` | as for depth (N > 1 only): mean angle to the ensemble mean over pi |

A point-map model (MoGe; an output space ``points_*``) writes ``<name>_points.npy``, float32
3 x H x W camera-space points (OpenCV axes: x right, y down, z forward) at the input size, and
the depth outputs above of its z channel.

Models whose output space is a disparity (Marigold disparity checkpoints, DPT, relative Depth
Anything) write ``_disparity`` instead of ``_depth``: the ``.npy`` holds the model's raw output
at the input resolution, in its own output space (``settings.json`` records ``output_space``).
A family that declares its maps' range (`Family.value_range`: Marigold and the baselines,
[0, 1]) gets PNGs of that range; other models' outputs (metres, or disparity of any scale) are
min-max normalised per image for the PNGs only, as the ``depth-estimation`` pipeline does for
display (``png_scaling`` in ``settings.json``).

Colours follow one convention for every model: **near is warm (red), far is cool (blue)**. A
disparity map is large where the scene is near, so its colours run the other way round the
colormap (Spectral reversed); the 16-bit PNG keeps the values as they are.
``--model`` and the inference flags are shared with ``run`` (``commands/common.py``): without
``--model`` the bundled tiny checkpoint is used; transformers depth models, registry names
and ``baseline:*`` models work too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import BenchError, PredictionError
from ..inference.families import family_for
from ..inference.interface import task_of
from ..output_spaces import DEPTH_AFFINE, DEPTH_METRIC, DEPTH_SCALE, OUTPUT_SPACES, POINTS_METRIC, POINTS_SCALE, \
    is_disparity, is_point_map
from .common import add_inference_flags, build_predictor, default_model

#: Images handed to the predictor together (their members share UNet batches).
IMAGES_PER_CALL = 4


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``predict`` on the CLI's sub-command parsers."""
    parser = subparsers.add_parser(
        "predict", help="predict depth for images or a folder of images",
        description="Predict depth (or disparity, for a disparity model) for one image or every image under a "
                    "folder with any supported model, and write the raw .npy at the input size, 16-bit PNG and "
                    "colourised PNG outputs (plus uncertainty when --ensemble > 1); settings.json records the "
                    "model's output space. Colours: near is warm (red), far is cool (blue), for depth and "
                    "disparity models alike; *_colorbar.png adds a colour bar with the values and units.")
    parser.add_argument("--input", required=True, metavar="IMAGE_OR_DIR",
                        help="an image file or a folder (sub-folders kept); images of one folder that share a name "
                             "(a.png, a.jpg) keep their extension in their outputs' names (a_png_depth.npy, "
                             "a_jpg_depth.npy), so that none overwrites another's")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    # --model and the inference flags are those of `run`, so the two commands cannot drift apart.
    add_inference_flags(parser)
    parser.add_argument("--output-space", default=None, choices=OUTPUT_SPACES, metavar="S",
                        help=f"what the model outputs: {' | '.join(OUTPUT_SPACES)} (default: what it declares; "
                             "recorded in settings.json, and a disparity space names the files _disparity)")
    parser.set_defaults(func=run)
    return parser


def colorize(depth: np.ndarray, cmap: str = "Spectral") -> np.ndarray:
    """uint8 H x W x 3 rendering of a [0, 1] map with a matplotlib colormap."""
    import matplotlib

    return matplotlib.colormaps[cmap](np.clip(depth, 0.0, 1.0), bytes=True)[..., :3]


def png_scaling(value_range: tuple[float, float] | None) -> str:
    """How the PNGs show a family's maps (`display_map`), from the range its values lie in
    (`Family.value_range`): ``"none"`` for [0, 1] maps (Marigold, the baselines), ``"lo..hi"``
    for another declared range, ``"min-max"`` per image where the range is open (metres, or
    disparity of any scale), as the ``depth-estimation`` pipeline does for display."""
    if value_range is None:
        return "min-max"
    lo, hi = (float(v) for v in value_range)
    return "none" if (lo, hi) == (0.0, 1.0) else f"{lo:g}..{hi:g}"


#: Colour-bar labels by output space: what the values are, in which unit.
_VALUE_LABELS = {
    "depth_affine_invariant": "affine-invariant depth (no unit; 0 = nearest)",
    "disparity_affine_invariant": "affine-invariant disparity (no unit; large = near)",
    "depth_scale_invariant": "scale-invariant depth (no unit)",
    "depth_metric": "depth (m)",
}


def near_is_warm(shown: np.ndarray, kind: str) -> np.ndarray:
    """The [0, 1] map to colour so that near is warm (Spectral's low end) for either ``kind``:
    depth is small where near, disparity large, so disparity is flipped."""
    return 1.0 - shown if kind == "disparity" else shown


def save_colorbar_figure(path: Path, values: np.ndarray, kind: str, space: str, scaling: str) -> None:
    """The coloured map beside a colour bar labelled with the values it shows (the raw values'
    range when the PNGs were min-max scaled) and their meaning; near is warm, as in the PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, never need a display
    import matplotlib.pyplot as plt

    if scaling == "none":
        lo, hi = 0.0, 1.0
    elif ".." in scaling:  # a family's declared range ("lo..hi", see png_scaling)
        lo, hi = (float(v) for v in scaling.split(".."))
    else:
        lo, hi = float(values.min()), float(values.max())
    cmap = "Spectral_r" if kind == "disparity" else "Spectral"
    h, w = values.shape
    fig, ax = plt.subplots(figsize=(6.0 * w / max(h, w) + 1.6, 6.0 * h / max(h, w)), dpi=100)
    shown = ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1.0)
    ax.set_axis_off()
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(f"{_VALUE_LABELS.get(space, kind)}; warm = near, cool = far")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def display_map(depth: np.ndarray, scaling: str = "none") -> np.ndarray:
    """The [0, 1] map the PNGs show: ``depth`` itself (``"none"``), min-max normalised
    (``"min-max"``; a constant map shows as 0), or a declared range ``"lo..hi"`` mapped to [0, 1]."""
    if scaling == "none":
        return depth
    if scaling == "min-max":
        lo, hi = float(depth.min()), float(depth.max())
    else:
        lo, hi = (float(v) for v in scaling.split(".."))
    return (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)


def colorize_normals(normals: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 rendering of 3 x H x W normals in [-1, 1]: ``(n + 1) * 127.5``, truncated,
    as the official Marigold pipeline colours them (x -> red, y -> green, z -> blue)."""
    shown = (np.clip(normals, -1.0, 1.0) + 1.0) * 127.5
    return np.ascontiguousarray(shown.astype(np.uint8).transpose(1, 2, 0))


def save_normals_outputs(out_dir: Path, stem: str, normals: np.ndarray, uncertainty: np.ndarray | None
                         ) -> list[Path]:
    """Write one image's normals outputs (see the module docstring); returns the paths written."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"{stem}_normals"
    np.save(_with(base, ".npy"), normals.astype(np.float32))
    Image.fromarray(colorize_normals(normals)).save(_with(base, ".png"))
    return [_with(base, ".npy"), _with(base, ".png")] + _save_uncertainty(out_dir, stem, uncertainty)


def _with(base: Path, ending: str) -> Path:
    """``base`` with ``ending`` appended: not `Path.with_suffix`, which would replace whatever
    follows a dot in the image's own name (``x.v1_depth`` -> ``x.npy``, shared by ``x.v2``)."""
    return base.with_name(base.name + ending)


def _save_uncertainty(out_dir: Path, stem: str, uncertainty: np.ndarray | None) -> list[Path]:
    """``<stem>_uncertainty.npy`` and a PNG scaled to its maximum; nothing for None."""
    from PIL import Image

    if uncertainty is None:
        return []
    ubase = out_dir / f"{stem}_uncertainty"
    np.save(_with(ubase, ".npy"), uncertainty.astype(np.float32))
    peak = float(uncertainty.max())
    scaled = uncertainty / peak if peak > 0 else np.zeros_like(uncertainty)
    Image.fromarray(np.round(scaled * 255).astype(np.uint8)).save(_with(ubase, ".png"))
    return [_with(ubase, ".npy"), _with(ubase, ".png")]


def save_outputs(out_dir: Path, stem: str, depth: np.ndarray, uncertainty: np.ndarray | None,
                 kind: str = "depth", scaling: str = "none", space: str | None = None) -> list[Path]:
    """Write one image's outputs (see the module docstring); returns the paths written.
    ``scaling`` is how the PNGs map values to [0, 1] (`display_map`); the ``.npy`` is raw.
    ``space`` (the output space) labels the colour bar."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    base = out_dir / f"{stem}_{kind}"
    np.save(_with(base, ".npy"), depth.astype(np.float32))
    shown = display_map(depth, scaling)
    Image.fromarray(np.round(np.clip(shown, 0, 1) * 65535).astype(np.uint16)).save(f"{base}_16bit.png")
    Image.fromarray(colorize(near_is_warm(np.clip(shown, 0, 1), kind))).save(f"{base}_colored.png")
    save_colorbar_figure(Path(f"{base}_colorbar.png"), depth, kind, space or f"{kind}_affine_invariant", scaling)
    written += [_with(base, ".npy"), Path(f"{base}_16bit.png"), Path(f"{base}_colored.png"),
                Path(f"{base}_colorbar.png")]
    return written + _save_uncertainty(out_dir, stem, uncertainty)


def save_point_outputs(out_dir: Path, stem: str, points: np.ndarray, uncertainty: np.ndarray | None,
                       scaling: str = "none", space: str = POINTS_SCALE) -> list[Path]:
    """Write one image's point map (``<stem>_points.npy``, 3 x H x W) and the depth outputs of
    its z channel (`save_outputs`, labelled with the depth space of the same scale)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}_points.npy"
    np.save(path, np.asarray(points, np.float32))
    depth_space = {POINTS_METRIC: DEPTH_METRIC, POINTS_SCALE: DEPTH_SCALE}.get(space, DEPTH_AFFINE)
    return [path] + save_outputs(out_dir, stem, points[2], uncertainty, "depth", scaling, depth_space)


def output_names(files: list[Path], root: Path) -> dict[Path, Path]:
    """Each input's outputs' name (relative to ``--out``, before ``_depth.npy`` etc.): its path
    under ``root`` less the extension, or with ``_<ext>`` for images of one folder that share a
    name (``a.png`` -> ``a_png``, ``a.jpg`` -> ``a_jpg``), whose outputs would overwrite each
    other's. Names that still coincide (``a_png.jpg`` beside those) are refused before a model
    loads, listing them."""
    from collections import Counter, defaultdict

    plain = {path: path.relative_to(root).with_name(path.stem) for path in files}
    shared = Counter(plain.values())
    names = {path: name if shared[name] == 1 else name.with_name(f"{name.name}_{path.suffix.lstrip('.')}")
             for path, name in plain.items()}
    inputs_of = defaultdict(list)
    for path, name in names.items():
        inputs_of[name].append(str(path.relative_to(root)))
    clashes = [" and ".join(found) for found in inputs_of.values() if len(found) > 1]
    if clashes:
        raise BenchError(f"--input {root}: these images would write the same output files: {'; '.join(clashes)}; "
                         "rename one of each")
    return names


def run(args: argparse.Namespace) -> int:
    """Run ``predict``; returns 0, or 1 when some images failed (each one is reported)."""
    from ..eval.outdir import check_writable
    from ..eval.progress import bar_label, progress

    from ..inference.images import InputImageError, list_images, load_image

    source = Path(args.input)
    files = list_images(source)
    root = source if source.is_dir() else source.parent
    names = output_names(files, root)  # before the model loads: a clash is refused at once
    out = Path(args.out)
    check_writable(str(out))  # a file, under a file, read-only: refused before the model loads
    if args.ensemble < 1:
        raise BenchError(f"--ensemble must be >= 1, got {args.ensemble}")

    predictor = build_predictor(args)
    normals = task_of(predictor) == "normals"
    if normals and getattr(args, "output_space", None):
        raise BenchError(f"--output-space {args.output_space} is a depth output space; the model predicts surface "
                         "normals: drop the flag")
    space = getattr(args, "output_space", None) or getattr(predictor, "output_space", None) \
        or predictor.settings.get("output_space", "depth_affine_invariant")
    scaling = "(n+1)*127.5" if normals else png_scaling(family_for(args.model or default_model()).value_range)
    out.mkdir(parents=True, exist_ok=True)
    settings = {**predictor.settings, "output_space": space, "png_scaling": scaling}
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    kind = "normals" if normals else "disparity" if is_disparity(space) else "depth"

    members = list(range(int(predictor.settings.get("ensemble", 1))))
    failures: list[str] = []
    n_failed = 0
    n_written, written_names = 0, None
    label = bar_label("predict", f"{len(files)} image(s)", predictor.settings.get("model"))
    with progress(total=len(files), desc=label, unit="img") as bar:
        for start in range(0, len(files), IMAGES_PER_CALL):
            batch = []
            for path in files[start:start + IMAGES_PER_CALL]:
                try:
                    batch.append((path, load_image(path)))
                except InputImageError as exc:
                    failures.append(str(exc))
                    n_failed += 1
                    bar.update(1)
            jobs = [(str(path.relative_to(root)), image, members) for path, image in batch]
            try:
                raws = predictor.predict(jobs)
            except PredictionError as exc:
                failures.append(str(exc))
                raws = getattr(exc, "results", None) or [None] * len(jobs)
            except InputImageError:
                # One bad array fails the whole call; retry one by one to keep the good ones.
                raws = []
                for job in jobs:
                    try:
                        raws.extend(predictor.predict([job]))
                    except (InputImageError, PredictionError) as one:
                        failures.append(str(one))
                        raws.append(None)
            for (path, image), raw in zip(batch, raws):
                if raw is None:
                    n_failed += 1
                else:
                    depth, uncertainty = predictor.merge(raw, image.shape[:2])
                    name = names[path]
                    if normals:
                        written = save_normals_outputs(out / name.parent, name.name, depth, uncertainty)
                    elif is_point_map(space):
                        written = save_point_outputs(out / name.parent, name.name, depth, uncertainty, scaling, space)
                    else:
                        written = save_outputs(out / name.parent, name.name, depth, uncertainty, kind, scaling, space)
                    n_written += 1
                    if len(files) == 1:
                        written_names = ", ".join(f.name for f in written)
                bar.update(1)
    _report_written(out, n_written, kind, written_names)
    _report_renamed({path.relative_to(root): name for path, name in names.items() if name.name != path.stem})
    if failures:
        for message in failures:
            print(f"marigold-bench predict: {message}", file=sys.stderr)
        print(f"marigold-bench predict: {n_failed} of {len(files)} image(s) failed", file=sys.stderr)
        return 1
    return 0


def _report_written(out: Path, n_written: int, kind: str, names: str | None) -> None:
    """Say where the outputs went: one line on stdout (a silent success looks like a failure)."""
    if not n_written:
        return
    if names:
        print(f"wrote {names} and settings.json to {out}")
    elif kind == "normals":
        print(f"wrote {n_written} image(s) to {out}: <name>_normals.npy (raw, 3 x H x W) and _normals.png per "
              "image, and settings.json")
    else:
        print(f"wrote {n_written} image(s) to {out}: <name>_{kind}.npy (raw), _{kind}_16bit.png, "
              f"_{kind}_colored.png and _{kind}_colorbar.png (near = warm) per image, and settings.json")


def _report_renamed(renamed: dict[Path, Path]) -> None:
    """Say which images' outputs carry their extension (`output_names`): otherwise a user
    looking for ``a_depth.npy`` would find neither."""
    if renamed:
        pairs = ", ".join(f"{image} -> {name}_*" for image, name in renamed.items())
        print(f"images that share a name keep their extension in their outputs' names: {pairs}")


__all__ = ["add_parser", "run", "output_names", "save_outputs", "save_normals_outputs", "colorize_normals", "colorize", "display_map", "png_scaling", "near_is_warm",
           "save_colorbar_figure"]
