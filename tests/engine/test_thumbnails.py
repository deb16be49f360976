"""engine.thumbnails: middle slice/frame, percentile window, aspect kept, colour order, real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.io.case import Case
from engine.io.scan import read_path
from engine.thumbnails import decode_thumbnail, make_thumbnail


def _case(pixels: np.ndarray, kind: str, modality: str = "OT", **kw: object) -> Case:
    return Case(pixels=pixels, kind=kind, modality=modality,  # type: ignore[arg-type]
                source_files=[], fingerprint="x", **kw)


def test_2d_thumbnail_is_square_png_with_aspect_kept() -> None:
    wide = np.tile(np.linspace(100, 1000, 200).astype(np.uint16), (50, 1))  # H=50 W=200 ramp
    thumb = decode_thumbnail(make_thumbnail(_case(wide, "image2d"), size=64))
    assert thumb.shape == (64, 64)
    assert thumb[:20].max() == 0 and thumb[-20:].max() == 0  # letterboxed rows stay black
    assert thumb[32, 4:].min() > 0 and thumb[32, -1] > 240  # image rows are drawn, ramp windowed


def test_volume_shows_the_middle_slice() -> None:
    volume = np.zeros((9, 32, 32), np.float32)
    volume[4, 8:24, 8:24] = 1.0  # only the middle slice has a square
    volume[0] = np.linspace(0, 1, 32)[None, :]
    thumb = decode_thumbnail(make_thumbnail(_case(volume, "volume"), size=32))
    assert thumb[16, 16] > 200 and thumb[2, 2] < 20


def test_ct_uses_a_fixed_hu_window() -> None:
    volume = np.full((3, 16, 16), -1000.0, np.float32)  # air
    volume[1, 4:12, 4:12] = 40.0  # soft tissue at window level
    thumb = decode_thumbnail(make_thumbnail(_case(volume, "volume", "CT", intensity="HU"), size=16))
    assert thumb[0, 0] == 0 and 100 < thumb[8, 8] < 160


def test_colour_video_keeps_rgb_order() -> None:
    frames = np.zeros((5, 20, 20, 3), np.uint8)
    frames[..., 0] = np.linspace(10, 250, 20, dtype=np.uint8)[None, None, :]  # red ramp, no green or blue
    thumb = decode_thumbnail(make_thumbnail(_case(frames, "video"), size=20))
    assert thumb.shape == (20, 20, 3)
    assert thumb[10, 15, 0] > 150 and thumb[..., 1].max() == 0 and thumb[..., 2].max() == 0


def test_real_files_give_thumbnails(shared_data: Path) -> None:
    for rel in ("xray/pneumoniamnist/normal", "ct/adrenalmnist3d/normal"):
        folder = shared_data / rel
        first = sorted(folder.iterdir())[0]
        case = next(c for c in read_path(first) if isinstance(c, Case))
        thumb = decode_thumbnail(make_thumbnail(case))
        assert thumb.shape[:2] == (128, 128) and thumb.std() > 5  # not blank
