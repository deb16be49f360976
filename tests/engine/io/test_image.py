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


def _jpeg_declaring(path: Path, height: int, width: int, colour: bool) -> Path:
    """A few hundred bytes of JPEG whose header declares ``height`` x ``width`` (a decompression bomb)."""
    import struct

    shape = (8, 8, 3) if colour else (8, 8)
    ok, encoded = cv2.imencode(".jpg", np.full(shape, 128, np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("side", "colour"), [(30000, False), (16000, True)])
def test_jpeg_bomb_is_decoded_reduced_within_the_sample_cap(tmp_path: Path, side: int, colour: bool) -> None:
    from engine.config import DEFAULT_LIMITS

    path = _jpeg_declaring(tmp_path / "bomb.jpg", side, side, colour)
    assert path.stat().st_size < 1000
    case = read_image(path)  # before: 30000x30000 decoded at full size, then float32 twice (7+ GB)
    assert case.pixels.size <= DEFAULT_LIMITS.max_frame_samples
    assert float(case.metadata["reduced_by"]) >= 7


def test_a_colour_jpeg_too_large_even_at_one_eighth_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="too large even decoded at 1/8"):
        read_image(_jpeg_declaring(tmp_path / "bomb.jpg", 30000, 30000, True))


def test_non_jpeg_images_over_the_frame_bytes_cap_are_refused_and_smaller_ones_shrunk(tmp_path: Path) -> None:
    from engine.config import ReadLimits

    path = tmp_path / "big.tif"
    cv2.imwrite(str(path), np.arange(64 * 80, dtype=np.uint16).reshape(64, 80))
    with pytest.raises(ReadError, match="would decode to 10240 bytes"):
        read_image(path, ReadLimits(max_frame_bytes=10_000, max_frame_samples=1000))
    shrunk = read_image(path, ReadLimits(max_frame_samples=1280))
    assert shrunk.pixels.dtype == np.uint16 and shrunk.pixels.size <= 1280 and shrunk.pixels.shape[0] == 32


# ---- property-based: no bytes make the header parsers or the reader raise anything but ReadError -------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SIGNATURES = st.sampled_from([b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=_SIGNATURES, body=st.binary(max_size=300))
def test_any_bytes_after_an_image_signature_give_a_case_or_a_read_error(tmp_path: Path, head: bytes,
                                                                       body: bytes) -> None:
    from engine.config import ReadLimits

    path = tmp_path / "fuzz.img"
    path.write_bytes(head + body)
    limits = ReadLimits()
    try:
        size = header_size(path)  # a ReadError at worst (before: struct.error on a short PNG header)
        assert size is None or all(isinstance(v, int) for v in size)
        case = read_image(path, limits)
    except ReadError:
        return
    assert case.pixels.size <= limits.max_frame_samples


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 65535), width=st.integers(1, 65535))
def test_any_declared_jpeg_size_is_refused_or_decoded_within_the_caps(tmp_path: Path, height: int,
                                                                      width: int) -> None:
    import struct as struct_module

    from engine.config import ReadLimits

    ok, encoded = cv2.imencode(".jpg", np.full((8, 8), 90, np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct_module.pack(">HH", height, width)
    path = tmp_path / "declared.jpg"
    path.write_bytes(bytes(data))
    assert header_size(path) == (height, width)
    try:
        case = read_image(path, ReadLimits())
    except ReadError:
        return
    assert case.pixels.size <= ReadLimits().max_frame_samples
