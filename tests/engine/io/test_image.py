"""Image reader on files written in the test: bit depth, grey/colour/alpha, colour order, header limits."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.config import ReadLimits
from engine.io.case import ReadError
from engine.io.image import header_size, read_image

RNG = np.random.default_rng(1)


def _write(path: Path, pixels: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_grey_8bit_lossless_round_trip(tmp_path: Path, suffix: str) -> None:
    grey = RNG.integers(0, 256, (37, 53), dtype=np.uint8)
    case = read_image(_write(tmp_path / f"grey{suffix}", grey))
    assert case.kind == "image2d"
    assert case.modality == "OT"
    assert not case.is_color
    np.testing.assert_array_equal(case.pixels, grey)
    assert case.source_files == [tmp_path / f"grey{suffix}"]
    assert case.fingerprint


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_grey_16bit_keeps_its_range(tmp_path: Path, suffix: str) -> None:
    grey = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    case = read_image(_write(tmp_path / f"grey16{suffix}", grey))
    assert case.pixels.dtype == np.uint16
    np.testing.assert_array_equal(case.pixels, grey)


def test_colour_is_rgb_and_alpha_dropped(tmp_path: Path) -> None:
    bgr = RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    bgra = np.dstack([bgr, np.full((16, 24), 128, np.uint8)])
    for name, pixels in (("colour.png", bgr), ("alpha.png", bgra)):
        case = read_image(_write(tmp_path / name, pixels))
        assert case.is_color
        assert case.shape == (16, 24, 3)
        np.testing.assert_array_equal(case.pixels, bgr[..., ::-1])


def test_pure_red_jpeg_is_red(tmp_path: Path) -> None:
    red_bgr = np.zeros((32, 32, 3), np.uint8)
    red_bgr[..., 2] = 255
    case = read_image(_write(tmp_path / "red.jpg", red_bgr))
    assert case.is_color
    r, g, b = case.pixels.reshape(-1, 3).mean(axis=0)
    assert r > 240 and g < 15 and b < 15


def test_colour_image_with_equal_channels_becomes_grey(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    case = read_image(_write(tmp_path / "triple.png", np.dstack([grey, grey, grey])))
    assert case.shape == (10, 12)
    np.testing.assert_array_equal(case.pixels, grey)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_header_size_matches_decoded_size(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"size{suffix}", RNG.integers(0, 256, (41, 67, 3), dtype=np.uint8))
    assert header_size(path) == (41, 67)


def test_png_claiming_huge_size_is_refused_from_its_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR width, height
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bytes(data))
    with pytest.raises(ReadError, match="exceeds"):
        read_image(bomb)
    with pytest.raises(ReadError, match="exceeds"):
        read_image(path, ReadLimits(max_image_pixels=63))


def test_shared_xray_and_mri_images(shared_data: Path) -> None:
    for pattern in ("xray/**/*.png", "mri/**/*.jpg", "ultrasound/**/*.png"):
        path = next(iter(sorted(shared_data.glob(pattern))))
        case = read_image(path)
        assert case.kind == "image2d"
        assert case.pixels.ndim in (2, 3)


@pytest.mark.parametrize(
    "content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff" + b"\x13" * 300], ids=["empty", "png", "jpeg"]
)
def test_corrupt_images_raise_read_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.png"
    path.write_bytes(content)
    with pytest.raises(ReadError) as err:
        read_image(path)
    assert str(err.value) and "\n" not in str(err.value)


def test_truncated_png_raises_read_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "full.png", RNG.integers(0, 256, (64, 64), dtype=np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ReadError):
        read_image(cut)
