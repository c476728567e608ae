"""Procedural RGB-D scenes with exact depth: the suite's built-in benchmark.

Each scene is ray-cast with numpy from a pinhole camera: an indoor room (floor, ceiling, walls,
boxes and spheres, lit by a lamp at the camera so brightness falls off with distance) or an
outdoor street (ground plane, building blocks and spheres under a sun, with aerial perspective
fading far surfaces into the sky colour; sky pixels have no depth). Textures live in world
coordinates, so their frequency grows with distance like in real images. Depth is planar (the
camera-space z of the hit point), as in the benchmarks. Everything follows from the seed, so a
sample id always means the same picture.

The same scenes are also a surface-normals benchmark (``synthetic-normals``, asked for as
``get_benchmark("synthetic", task="normals")``): the exact normal of every surface hit, taken
from the geometry (planes, spheres, box faces), in the OpenGL camera frame. Rendering them costs
no random numbers, so depth items are exactly what they were.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from marigold_bench.data.base import DepthDataset, make_item, masks
from marigold_bench.data.normals import make_normals_item
from marigold_bench.data.spec import BenchmarkSpec
from marigold_bench.errors import SplitNotFoundError
from marigold_bench.frames import OPENCV, OPENGL, convert_normals

HEIGHT, WIDTH = 72, 96
#: split name -> (first seed, number of samples). Seeds of different splits never overlap.
SPLITS = {"test": (1_000_000, 32), "val": (2_000_000, 16), "train": (0, 100_000)}


# --- geometry: each function returns the ray parameter t of the first hit (inf for none) ------

def _hit_plane(dirs, axis, coord):
    d = dirs[..., axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = coord / d
    return np.where(t > 1e-6, t, np.inf)


def _hit_sphere(dirs, centre, radius):
    # |t*d - c|^2 = r^2  ->  (d.d) t^2 - 2 (d.c) t + (c.c - r^2) = 0, nearer root
    a = np.einsum("...k,...k->...", dirs, dirs)
    b = dirs @ centre
    disc = b * b - a * (centre @ centre - radius**2)
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > 1e-6), t, np.inf)


def _hit_box(dirs, lo, hi):
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = lo / dirs, hi / dirs
    t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
    return np.where((t_near <= t_far) & (t_near > 1e-6), t_near, np.inf)


def _box_normal(points, lo, hi):
    # the face whose plane the point lies closest to
    dist = np.concatenate([np.abs(points - lo), np.abs(points - hi)], axis=-1)
    face = np.argmin(dist, axis=-1)
    normal = np.zeros_like(points)
    axis = face % 3
    sign = np.where(face < 3, -1.0, 1.0)
    np.put_along_axis(normal, axis[..., None], sign[..., None], axis=-1)
    return normal


# --- scenes -------------------------------------------------------------------------------

def _camera_rays(height, width, rng):
    focal = width * rng.uniform(0.75, 1.1)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    return np.stack([(u - width / 2) / focal, (v - height / 2) / focal, np.ones_like(u)], -1), focal


def _indoor_objects(rng):
    cam_h = rng.uniform(1.2, 1.7)  # y points down: the floor is at +cam_h
    objects = [
        ("plane", (1, cam_h), (0.0, -1.0, 0.0)),                       # floor
        ("plane", (1, cam_h - rng.uniform(2.4, 3.2)), (0.0, 1.0, 0.0)),  # ceiling
        ("plane", (0, -rng.uniform(1.5, 3.0)), (1.0, 0.0, 0.0)),        # left wall
        ("plane", (0, rng.uniform(1.5, 3.0)), (-1.0, 0.0, 0.0)),        # right wall
        ("plane", (2, rng.uniform(4.0, 9.0)), (0.0, 0.0, -1.0)),        # back wall
    ]
    for _ in range(rng.integers(1, 4)):
        size = rng.uniform(0.3, 1.0, 3)
        x, z = rng.uniform(-1.5, 1.5), rng.uniform(1.5, 6.0)
        lo = np.array([x - size[0] / 2, cam_h - size[1], z])
        objects.append(("box", (lo, lo + size), None))
    for _ in range(rng.integers(1, 3)):
        r = rng.uniform(0.2, 0.6)
        objects.append(("sphere", (np.array([rng.uniform(-1.5, 1.5), cam_h - r, rng.uniform(1.5, 6)]), r), None))
    return objects


def _outdoor_objects(rng):
    cam_h = rng.uniform(1.5, 2.5)
    objects = [("plane", (1, cam_h), (0.0, -1.0, 0.0))]  # ground
    for side in (-1, 1):
        z = rng.uniform(5, 15)
        while z < 120:
            depth, height = rng.uniform(6, 20), rng.uniform(6, 30)
            x = side * rng.uniform(6, 12)
            lo = np.array([min(x, x + side * 15), cam_h - height, z])
            objects.append(("box", (lo, lo + np.array([15.0, height, depth])), None))
            z += depth + rng.uniform(2, 10)
    for _ in range(rng.integers(2, 6)):
        r = rng.uniform(0.5, 2.0)
        objects.append(("sphere", (np.array([rng.uniform(-5, 5), cam_h - r, rng.uniform(6, 60)]), r), None))
    return objects


def _trace(dirs, objects):
    hits = []
    for kind, geom, _ in objects:
        if kind == "plane":
            hits.append(_hit_plane(dirs, *geom))
        elif kind == "sphere":
            hits.append(_hit_sphere(dirs, *geom))
        else:
            hits.append(_hit_box(dirs, *geom))
    hits = np.stack(hits)
    index = np.argmin(hits, axis=0)
    return np.take_along_axis(hits, index[None], 0)[0], index


def _normals(points, index, objects):
    normals = np.zeros_like(points)
    for i, (kind, geom, plane_normal) in enumerate(objects):
        sel = index == i
        if kind == "plane":
            normals[sel] = plane_normal
        elif kind == "sphere":
            n = points[sel] - geom[0]
            normals[sel] = n / np.linalg.norm(n, axis=-1, keepdims=True)
        else:
            normals[sel] = _box_normal(points[sel], *geom)
    return normals


def _albedo(points, index, n_objects, rng):
    colours = rng.uniform(0.25, 0.95, (n_objects, 3))
    periods = rng.uniform(0.2, 1.5, n_objects)
    pattern = np.floor(points / periods[index][..., None]).sum(-1) % 2  # world-space checkers
    return colours[index] * (0.7 + 0.3 * pattern)[..., None]


class Scene(NamedTuple):
    """One rendered scene: what :func:`render_scene` returns, plus its surface normals and camera."""

    rgb: np.ndarray       # uint8 HxWx3
    depth: np.ndarray     # float32 metres HxW, 0 where invalid
    valid: np.ndarray     # bool HxW: a surface within 150 m
    normals: np.ndarray   # float32 HxWx3, unit, OpenGL camera frame; zero where invalid
    intrins: np.ndarray   # float32 3x3, pixel centres at integer coordinates


def _render(seed: int, kind: str | None, height: int, width: int) -> Scene:
    kind = kind or ("indoor" if seed % 2 == 0 else "outdoor")
    rng = np.random.default_rng(seed)
    dirs, focal = _camera_rays(height, width, rng)
    objects = _indoor_objects(rng) if kind == "indoor" else _outdoor_objects(rng)
    t, index = _trace(dirs, objects)
    valid = np.isfinite(t) & (t < 150.0)
    t = np.where(valid, t, 0.0)
    points = dirs * t[..., None]
    normals = _normals(points, index, objects)
    albedo = _albedo(points, index, len(objects), rng)
    ray_len = np.linalg.norm(points, axis=-1)

    if kind == "indoor":
        # a lamp at the camera: Lambert term towards the viewer, inverse-square-like falloff
        view = -dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
        lambert = np.abs(np.einsum("...k,...k->...", normals, view))
        light = 0.15 + 0.85 * lambert * 4.0 / (4.0 + ray_len**2 * 0.25)
        rgb = albedo * light[..., None]
    else:
        sun = np.array([rng.uniform(-0.5, 0.5), -1.0, rng.uniform(-0.3, 0.6)])
        sun /= np.linalg.norm(sun)
        lambert = np.clip(np.einsum("...k,...k->...", normals, -sun), 0, None)
        rgb = albedo * (0.35 + 0.65 * lambert)[..., None]
        sky_top, sky_bottom = np.array([0.35, 0.55, 0.9]), np.array([0.8, 0.85, 0.95])
        v = np.linspace(0, 1, height)[:, None, None]
        sky = sky_top * (1 - v) + sky_bottom * v
        haze = np.exp(-ray_len / rng.uniform(60, 150))[..., None]
        rgb = np.where(valid[..., None], rgb * haze + sky * (1 - haze), sky)
    rgb = rgb + rng.normal(0, 0.01, rgb.shape)  # sensor noise
    rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Scene(rgb, t.astype(np.float32), valid, _ground_truth_normals(normals, valid),
                 _intrinsics(focal, height, width))


def _ground_truth_normals(normals: np.ndarray, valid: np.ndarray) -> np.ndarray:
    # The shading normals are exact (plane normals, (p - c)/r on spheres, the face's axis on
    # boxes) in the renderer's axes: x right, y down, z forward. Ground truth is in the OpenGL
    # frame, and pixels without a surface (sky, beyond 150 m) are the zero vector: their shading
    # normal belongs to no surface.
    gl = convert_normals(normals, OPENCV, OPENGL)
    return np.where(valid[..., None], gl, 0.0).astype(np.float32)


def _intrinsics(focal: float, height: int, width: int) -> np.ndarray:
    # pixel (u, v) sees the ray ((u + 0.5 - W/2) / f, (v + 0.5 - H/2) / f, 1)
    return np.array([[focal, 0.0, width / 2 - 0.5], [0.0, focal, height / 2 - 0.5], [0.0, 0.0, 1.0]],
                    dtype=np.float32)


def render_scene(seed: int, kind: str | None = None, height: int = HEIGHT, width: int = WIDTH):
    """Render one scene.

    Args:
        seed: the scene's seed; the same seed always gives the same scene.
        kind: ``"indoor"`` or ``"outdoor"``; None picks from the seed (even indoor, odd outdoor).

    Returns:
        ``(rgb uint8 HxWx3, depth float32 metres HxW, valid bool HxW)``; invalid pixels (sky)
        have depth 0. :func:`render_scene_normals` gives the same scene's surface normals.
    """
    scene = _render(seed, kind, height, width)
    return scene.rgb, scene.depth, scene.valid


def render_scene_normals(seed: int, kind: str | None = None, height: int = HEIGHT, width: int = WIDTH) -> Scene:
    """Render one scene with its exact surface normals and camera.

    The normals come from the geometry itself (each plane's normal, a sphere's radial direction,
    a box face's axis), not from differences of the depth map, so they are exact up to rounding
    and unit length; they are in the OpenGL camera frame (x right, y up, z towards the viewer)
    and the zero vector where there is no surface. ``rgb``, ``depth`` and ``valid`` are those of
    :func:`render_scene` for the same arguments.
    """
    return _render(seed, kind, height, width)


def parse_split(split: str | None) -> tuple[str, int]:
    """``"test"`` / ``"test:8"`` (None: ``test``) -> (split name, sample count).

    A name the benchmark lacks or a count that is not a whole number >= 1 is a one-line
    `SplitNotFoundError` (a bad ``--split`` of any benchmark is one): a count of 0 or less would
    otherwise open an empty benchmark and leave an empty run folder behind.
    """
    name, sep, count = (split or "test").partition(":")
    if name not in SPLITS:
        raise SplitNotFoundError(f"unknown synthetic split {name!r}; known: {', '.join(SPLITS)} "
                                 "(optionally with a count, e.g. test:8)")
    if not sep:
        return name, SPLITS[name][1]
    try:
        n = int(count)
    except ValueError:
        n = 0
    if n < 1:
        raise SplitNotFoundError(f"synthetic split {split!r}: the count after ':' must be a whole number of "
                                 f"samples, at least 1 (e.g. {name}:8)")
    return name, n


class SyntheticDataset(DepthDataset):
    """Procedural scenes of one split (``test``: 32, ``val``: 16, ``train``: 100 000).

    ``split`` may carry a count, e.g. ``"test:8"`` or ``"val:200"``.
    """

    def __init__(self, split: str | None = None, protocol: BenchmarkSpec | None = None,
                 height: int = HEIGHT, width: int = WIDTH):
        name, n = parse_split(split)
        self.split = name
        self.first_seed = SPLITS[name][0]
        self.protocol = protocol or SPEC
        self.height, self.width = height, width
        self.ids = [f"{name}/{'indoor' if (self.first_seed + i) % 2 == 0 else 'outdoor'}_{i:05d}"
                    for i in range(n)]

    def load(self, index: int) -> dict:
        rgb, depth, valid = render_scene(self.first_seed + index, height=self.height, width=self.width)
        return make_item(self.ids[index], rgb, depth, *masks(depth, self.protocol, valid))

    def describe(self) -> dict:
        return {"root": None, "split": f"synthetic:{self.split}", "first_seed": self.first_seed,
                "count": len(self.ids), "resolution": [self.height, self.width]}


def load(root, split, protocol) -> SyntheticDataset:
    return SyntheticDataset(split, protocol)


class SyntheticNormalsDataset(SyntheticDataset):
    """The same scenes (ids, splits, pictures) with their exact surface normals as ground truth.

    Items: ``id``, ``rgb``, ``normals`` (float32 HxWx3, unit, OpenGL frame), ``frame``,
    ``mask`` = ``valid`` (a surface within 150 m; the sky is the zero vector) and ``intrins``.
    """

    def load(self, index: int) -> dict:
        scene = render_scene_normals(self.first_seed + index, height=self.height, width=self.width)
        return make_normals_item(self.ids[index], scene.rgb, scene.normals, self.protocol.frame,
                                 scene.valid, scene.intrins)

    def describe(self) -> dict:
        return {**super().describe(), "task": self.protocol.task, "frame": self.protocol.frame}


def load_normals(root, split, protocol) -> SyntheticNormalsDataset:
    return SyntheticNormalsDataset(split, protocol)


SPEC = BenchmarkSpec(
    name="synthetic", title="Synthetic",
    min_depth=1e-3, max_depth=200.0,
    sharp_edges=True,  # ray-cast depth: exact edges, so boundary F1 is meaningful
    needs_root=False,  # rendered from seeds; splits are test (32), val (16), train
    loader=load,
)

#: the normals task of the same scenes: ``get_benchmark("synthetic", task="normals")``
NORMALS_SPEC = BenchmarkSpec(
    name="synthetic-normals", title="Synthetic normals", task="normals", dataset="synthetic",
    frame=OPENGL,
    min_depth=0.0, max_depth=math.inf,  # no depth: required fields, unused
    needs_root=False,
    loader=load_normals,
)
