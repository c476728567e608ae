"""Tiny benchmark trees in the exact on-disk formats of the official archives.

Each builder writes a benchmark folder and an official-format split file (no trailing newline)
and returns what a correct loader must produce, computed here from the raw values written --
never with the package's own code -- so the tests compare against an independent answer.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: benchmark -> (folder under a base data root, archive name), as in datasets/README.md
ARCHIVES = {
    "nyu": ("nyuv2", "nyu_labeled_extracted.tar"),
    "kitti": ("kitti", "kitti_eigen_split_test.tar"),
    "eth3d": ("eth3d", "eth3d.tar"),
    "scannet": ("scannet", "scannet_val_sampled_800_1.tar"),
    "diode": ("diode", "diode_val.tar"),
}


@dataclass
class Expected:
    id: str
    depth: np.ndarray  # metres, float32
    valid: np.ndarray  # bool
    rgb_file: Path  # decoded independently with Pillow for comparison
    rgb_crop: tuple = (slice(None), slice(None))


@dataclass
class Fixture:
    name: str
    folder: Path  # extracted benchmark folder
    split: Path
    samples: list[Expected] = field(default_factory=list)
    extra_splits: dict = field(default_factory=dict)


def write_split(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\n".join(lines).encode())  # like upstream: no newline at the end
    return path


def _write_image(path: Path, array: np.ndarray, **save) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save)


def write_png16(path: Path, raw: np.ndarray) -> None:
    assert raw.dtype == np.uint16
    _write_image(path, raw, format="PNG")
    back = np.asarray(Image.open(path))
    assert back.dtype == np.uint16 and np.array_equal(back, raw), "fixture PNG is not 16-bit"


def _rgb(rng, h, w) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_tar(folder: Path, tar_path: Path, prefix: str = "./") -> Path:
    """Archive ``folder``'s contents the way ``tar -cf x.tar .`` does (``./`` names, dirs too)."""
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w") as tar:
        if prefix == "./":
            tar.add(folder, arcname=".")
        else:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=prefix + path.relative_to(folder).as_posix())
    return tar_path


def _eigen_nyu() -> np.ndarray:
    crop = np.zeros((480, 640), bool)
    crop[45:471, 41:601] = True
    return crop


def build_nyu(tmp: Path) -> Fixture:
    rng = np.random.default_rng(0)
    folder = tmp / "nyuv2"
    fx = Fixture("nyu", folder, tmp / "splits" / "nyu_test.txt")
    # Sample 1: values 0..11999 mm spread over the frame (0, 1 mm and >= 10 m all occur).
    raw1 = (np.arange(480 * 640, dtype=np.int64) * 7919 % 12000).astype(np.uint16).reshape(480, 640)
    # Sample 2: 2.5 m everywhere with a few marked pixels, for counting by hand.
    raw2 = np.full((480, 640), 2500, np.uint16)
    raw2[0, 0] = 0  # outside the crop
    raw2[10, 10] = 65535  # outside the crop; proves 16 bits survive decoding (65.535 m)
    raw2[100, 100] = 0  # inside: no measurement
    raw2[200, 300] = 10000  # inside: exactly 10 m, excluded (range is exclusive)
    raw2[300, 400] = 1  # inside: exactly 1 mm, excluded
    raw2[470, 600] = 9999  # last pixel of the crop, valid
    lines = []
    for scene, index, raw in (("kitchen_0004", 1, raw1), ("office_0005", 2, raw2)):
        rgb_rel, depth_rel, filled_rel = (f"test/{scene}/{kind}_{index:04d}.png"
                                          for kind in ("rgb", "depth", "filled"))
        _write_image(folder / rgb_rel, _rgb(rng, 480, 640), format="PNG")
        write_png16(folder / depth_rel, raw)
        write_png16(folder / filled_rel, np.maximum(raw, 500).astype(np.uint16))
        lines.append(f"{rgb_rel} {depth_rel} {filled_rel}")
        depth = (raw / 1000.0).astype(np.float32)
        valid = _eigen_nyu() & (raw > 1) & (raw < 10000)
        fx.samples.append(Expected(f"test/{scene}/rgb_{index:04d}", depth, valid, folder / rgb_rel))
    write_split(fx.split, lines)
    return fx


KITTI_H, KITTI_W = 375, 1242
KITTI_TOP, KITTI_LEFT = KITTI_H - 352, (KITTI_W - 1216) // 2  # 23, 13


def build_kitti(tmp: Path) -> Fixture:
    rng = np.random.default_rng(1)
    folder = tmp / "kitti"
    fx = Fixture("kitti", folder, tmp / "splits" / "kitti_test.txt")
    t, l = KITTI_TOP, KITTI_LEFT
    raw1 = np.full((KITTI_H, KITTI_W), 2560, np.uint16)  # 10 m
    raw1[t - 1, :] = 7 * 256  # the row just above the crop must not appear
    raw1[t, l] = 5 * 256  # first pixel of the crop: 5 m at item[0, 0]
    raw1[t + 200, l + 500] = 0  # inside both masks: no LiDAR return
    raw1[t + 150, l + 600] = 80 * 256  # inside: exactly 80 m, excluded
    raw1[t + 160, l + 700] = 65535  # inside: 255.996 m, excluded
    raw2 = rng.integers(0, 30000, (KITTI_H, KITTI_W)).astype(np.uint16)
    drive = "2011_09_26_drive_0002_sync"
    lines = []
    for frame, raw in ((69, raw1), (54, None), (70, raw2)):
        rgb_rel = f"2011_09_26/{drive}/image_02/data/{frame:010d}.png"
        if raw is None:  # an official line without ground truth
            lines.append(f"{rgb_rel} None 721.5377")
            continue
        depth_rel = f"{drive}/proj_depth/groundtruth/image_02/{frame:010d}.png"
        _write_image(folder / rgb_rel, _rgb(rng, KITTI_H, KITTI_W), format="PNG")
        write_png16(folder / depth_rel, raw)
        lines.append(f"{rgb_rel} {depth_rel} 721.5377")
        cropped = raw[t:t + 352, l:l + 1216]
        eigen = np.zeros((352, 1216), bool)
        eigen[117:321, 43:1172] = True  # int(0.3324324*352) etc., worked out by hand
        valid = eigen & (cropped > 0) & (cropped < 80 * 256)
        fx.samples.append(Expected(rgb_rel[:-4], (cropped / 256.0).astype(np.float32), valid,
                                   folder / rgb_rel, (slice(t, t + 352), slice(l, l + 1216))))
    write_split(fx.split, lines)
    return fx


def build_eth3d(tmp: Path) -> Fixture:
    rng = np.random.default_rng(2)
    folder = tmp / "eth3d"
    fx = Fixture("eth3d", folder, tmp / "splits" / "eth3d.txt")
    lines = []
    for scene, name in (("office", "DSC_0219"), ("courtyard", "DSC_0286")):
        depth = rng.uniform(0.5, 50.0, (40, 60)).astype(np.float32)
        depth[0, :5] = np.inf  # no measurement
        depth[5, 5] = np.inf
        depth[10, 10] = 0.0
        depth[20, 20] = 1e-6  # below the 1e-5 floor
        rgb_rel = f"rgb/{scene}/images/dslr_images/{name}.JPG"
        depth_rel = f"depth/{scene}_dslr_depth/{scene}/ground_truth_depth/dslr_images/{name}.JPG"
        _write_image(folder / rgb_rel, _rgb(rng, 40, 60), format="JPEG", quality=90)
        (folder / depth_rel).parent.mkdir(parents=True, exist_ok=True)
        depth.astype("<f4").tofile(folder / depth_rel)
        lines.append(f"{rgb_rel} {depth_rel}")
        expected = np.where(np.isinf(depth), 0.0, depth).astype(np.float32)
        fx.samples.append(Expected(rgb_rel[:-4], expected, expected > 1e-5, folder / rgb_rel))
    write_split(fx.split, lines)
    return fx


def build_scannet(tmp: Path) -> Fixture:
    rng = np.random.default_rng(3)
    folder = tmp / "scannet"
    fx = Fixture("scannet", folder, tmp / "splits" / "scannet.txt")
    raw1 = rng.integers(0, 12000, (48, 64)).astype(np.uint16)
    raw2 = np.full((48, 64), 1500, np.uint16)
    raw2[0, 0], raw2[1, 1], raw2[2, 2], raw2[3, 3] = 0, 1, 10000, 9999  # 3 excluded, 1 kept
    lines = []
    for scene, frame, raw in (("scene0406_02", 300, raw1), ("scene0707_00", 0, raw2)):
        rgb_rel, depth_rel = f"{scene}/color/{frame:06d}.jpg", f"{scene}/depth/{frame:06d}.png"
        _write_image(folder / rgb_rel, _rgb(rng, 48, 64), format="JPEG", quality=90)
        write_png16(folder / depth_rel, raw)
        lines.append(f"{rgb_rel} {depth_rel}")
        fx.samples.append(Expected(rgb_rel[:-4], (raw / 1000.0).astype(np.float32),
                                   (raw > 1) & (raw < 10000), folder / rgb_rel))
    write_split(fx.split, lines)
    return fx


def build_diode(tmp: Path) -> Fixture:
    rng = np.random.default_rng(4)
    folder = tmp / "diode"
    fx = Fixture("diode", folder, tmp / "splits" / "diode_all.txt")
    by_kind = {}
    for kind, scene in (("indoors", "00021"), ("outdoor", "00019")):
        stem = f"{kind}/scene_{scene}/scan_00189/{scene}_00189_{kind}_200_010"
        depth = rng.uniform(0.1, 400.0, (48, 64, 1)).astype(np.float32)  # also outside 0.6-350
        mask = np.ones((48, 64), np.float32)
        mask[:4, :8] = 0  # 32 pixels the dataset marks invalid
        _write_image(folder / f"{stem}.png", _rgb(rng, 48, 64), format="PNG")
        np.save(folder / f"{stem}_depth.npy", depth)
        np.save(folder / f"{stem}_depth_mask.npy", mask)
        by_kind[kind] = f"{stem}.png {stem}_depth.npy {stem}_depth_mask.npy"
        fx.samples.append(Expected(stem, depth[..., 0], mask > 0, folder / f"{stem}.png"))
    write_split(fx.split, [by_kind["indoors"], by_kind["outdoor"]])
    indoor = write_split(tmp / "splits" / "diode_indoor.txt", [by_kind["indoors"]])
    fx.extra_splits["indoor"] = indoor
    return fx


BUILDERS = {"nyu": build_nyu, "kitti": build_kitti, "eth3d": build_eth3d,
            "scannet": build_scannet, "diode": build_diode}


def build(name: str, tmp: Path) -> Fixture:
    return BUILDERS[name](tmp)
