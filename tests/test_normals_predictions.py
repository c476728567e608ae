"""`evaluate --task normals` from PNG and HDF5 predictions.

PNG: the 8-bit normals colouring is decoded as ``v / 255 * 2 - 1`` (re-derived here in float64
from the bytes written) and the summary says the predictions were quantised; a 16-bit RGB PNG is
refused per sample. HDF5: entries of either layout, a compact entry resized as recorded (checked
against torch's own ``interpolate``) and a normals run's own ``predictions.h5``.
"""

from __future__ import annotations

import json
import struct
import zlib

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marigold_bench.cli import main
from test_normals_eval import STEMS, _errors64, _evaluate, _fixture


def _png48(path, rgb16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written byte by byte (Pillow cannot write one)."""
    h, w, _ = rgb16.shape

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + rgb16[i].astype(">u2").tobytes() for i in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_png_normals_are_decoded_from_the_colouring_and_marked_quantised(tmp_path, capsys):
    base, split, preds, gts, ps = _fixture(tmp_path)
    pngs = tmp_path / "png"
    pngs.mkdir()
    decoded = []
    for stem, pred in zip(STEMS, ps):
        unit = pred / np.linalg.norm(pred, axis=0, keepdims=True)
        coded = np.round((np.moveaxis(unit, 0, -1) + 1) / 2 * 255).astype(np.uint8)
        Image.fromarray(coded).save(pngs / f"{stem}_img.png")
        decoded.append(np.moveaxis(coded.astype(np.float64) / 255 * 2 - 1, -1, 0))
    code, rows, summary = _evaluate(tmp_path, base, split, pngs, "png")
    assert code == 0 and (rows["status"] == "ok").all()
    for row, dec, pred, gt in zip(rows.itertuples(), decoded, ps, gts):
        assert abs(row.mean_angle - round(_errors64(dec, gt).mean(), 4)) <= 1.1e-4
        # the quantisation moves the numbers a little, no more (raw 0..255 values would be far off)
        assert abs(row.mean_angle - _errors64(pred, gt).mean()) < 1.0
    assert "quantised" in summary["settings"]["quantised"] and summary["settings"]["quantised"].startswith("3 ")
    assert "quantised" in capsys.readouterr().err
    # .npy of the same vectors is not quantised, and says nothing
    _, _, exact = _evaluate(tmp_path, base, split, preds, "npy")
    assert "quantised" not in exact["settings"]


def test_a_16_bit_png_is_refused_not_cut_to_8_bits(tmp_path, capsys):
    base, split, _, _, _ = _fixture(tmp_path)
    pngs = tmp_path / "png16"
    pngs.mkdir()
    for stem in STEMS:
        _png48(pngs / f"{stem}_img.png", np.full((12, 16, 3), 40000, np.uint16))
    code = main(["evaluate", "--dataset", "nyu", "--task", "normals", "--data-root", str(base), "--split",
                 str(split), "--predictions", str(pngs), "--out", str(tmp_path / "out")])
    assert code == 2
    rows = pd.read_csv(tmp_path / "out" / "per_sample.csv", dtype={"id": str})
    assert (rows["status"] == "failed").all() and rows["message"].str.contains("16-bit RGB PNG").all()


def test_h5_normals_in_either_layout_equal_the_npy_files(tmp_path):
    base, split, preds, gts, ps = _fixture(tmp_path)
    with h5py.File(tmp_path / "preds.h5", "w") as f:
        for k, (stem, pred) in enumerate(zip(STEMS, ps)):
            f[f"{stem}_img"] = pred if k % 2 == 0 else np.moveaxis(pred, 0, -1)  # 3xHxW and HxWx3
    for protocol in ("marigold", "dsine"):
        code, rows, summary = _evaluate(tmp_path, base, split, tmp_path / "preds.h5", f"h5-{protocol}",
                                        "--protocol", protocol)
        assert code == 0
        _, npy_rows, npy_summary = _evaluate(tmp_path, base, split, preds, f"npy-{protocol}", "--protocol", protocol)
        assert summary["settings"]["format"] == "h5"
        assert summary["metrics"] == npy_summary["metrics"]
        pd.testing.assert_frame_equal(rows, npy_rows)
    pool = np.concatenate([_errors64(p, g) for p, g in zip(ps, gts)])
    assert summary["metrics"]["mean_angle"] == pytest.approx(pool.mean(), abs=1e-4)


def test_a_compact_h5_entry_is_resized_as_recorded(tmp_path):
    import torch

    base, split, preds, gts, ps = _fixture(tmp_path)
    small = [p[:, ::2, ::2].copy() for p in ps]  # 3 x 6 x 8, stored with the size to bring it to
    with h5py.File(tmp_path / "compact.h5", "w") as f:
        for stem, values in zip(STEMS, small):
            f[f"{stem}_img"] = values
            f[f"{stem}_img"].attrs["target_shape"] = (12, 16)
            f[f"{stem}_img"].attrs["resample"] = "bilinear"
    code, rows, _ = _evaluate(tmp_path, base, split, tmp_path / "compact.h5", "compact")
    assert code == 0
    for row, values, gt in zip(rows.itertuples(), small, gts):
        big = torch.nn.functional.interpolate(torch.from_numpy(values)[None], size=(12, 16), mode="bilinear",
                                              align_corners=False)[0].numpy()
        assert abs(row.mean_angle - round(_errors64(big, gt).mean(), 4)) <= 1.1e-4


def test_a_normals_runs_own_predictions_h5_scores_as_the_run(tmp_path):
    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:facing", "--max-samples", "3",
                 "--out", str(run), "--protocol", "dsine"]) == 0
    out = tmp_path / "again"
    assert main(["evaluate", "--dataset", "synthetic", "--task", "normals", "--max-samples", "3", "--protocol",
                 "dsine", "--predictions", str(run / "predictions.h5"), "--out", str(out)]) == 0
    ran = json.loads((run / "summary.json").read_text())
    again = json.loads((out / "summary.json").read_text())
    assert again["metrics"] == ran["metrics"] and again["task"] == "normals"
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_sample.csv"), pd.read_csv(run / "per_sample.csv"))
