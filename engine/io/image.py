"""Plain images (PNG, JPEG, TIFF, BMP) -> ``image2d`` Case, via OpenCV.

8- and 16-bit, grey and colour; alpha is dropped, BGR becomes RGB, and a colour image whose three channels are
equal becomes grey. Dimensions are checked from the file header before the pixels are decoded where the format
allows it (PNG, JPEG, BMP); other formats rely on OpenCV's own pixel cap.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, ReadError
from engine.io.fingerprint import file_fingerprint

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
BMP_SIGNATURE = b"BM"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
# JPEG start-of-frame markers (baseline, progressive, lossless, ...) that carry the image size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def looks_like_image(head: bytes) -> bool:
    """True when the first bytes of a file are a PNG, JPEG, BMP or TIFF signature."""
    return head.startswith((PNG_SIGNATURE, JPEG_SIGNATURE, BMP_SIGNATURE) + TIFF_SIGNATURES)


def header_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file header without decoding pixels; None when the format is not parsed here."""
    with path.open("rb") as f:
        head = f.read(32)
        if head.startswith(PNG_SIGNATURE):
            if head[12:16] != b"IHDR":
                raise ReadError("PNG without IHDR header")
            width, height = struct.unpack(">II", head[16:24])
            return height, width
        if head.startswith(BMP_SIGNATURE) and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(height), abs(width)
        if head.startswith(JPEG_SIGNATURE):
            f.seek(2)
            return _jpeg_size(f)
    return None


def _jpeg_size(f) -> tuple[int, int] | None:  # noqa: ANN001 (binary file object)
    """Walk JPEG marker segments up to the first start-of-frame; None if not found in the first few MB."""
    while f.tell() < 16 * 1024 * 1024:
        byte = f.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            continue
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            return None
        code = marker[0]
        if code == 0xD8 or 0xD0 <= code <= 0xD7 or code == 0x01:  # markers without a length
            continue
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if code in _JPEG_SOF:
            data = f.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return height, width
        f.seek(length - 2, 1)
    return None


def to_grey_or_rgb(pixels: np.ndarray) -> np.ndarray:
    """OpenCV pixels (H W, H W 1, H W 3 BGR or H W 4 BGRA) -> H W grey or H W 3 RGB."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ReadError(f"unsupported pixel layout {pixels.shape}")
    bgr = pixels[:, :, :3]  # alpha dropped
    if np.array_equal(bgr[:, :, 0], bgr[:, :, 1]) and np.array_equal(bgr[:, :, 0], bgr[:, :, 2]):
        return np.ascontiguousarray(bgr[:, :, 0])
    return np.ascontiguousarray(bgr[:, :, ::-1])  # BGR -> RGB


def read_image(path: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
    """Read one image file as an ``image2d`` Case (pixels ``H W`` grey or ``H W 3`` RGB, dtype as stored)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReadError("empty file")
    size = header_size(path)
    if size is not None:
        height, width = size
        if height <= 0 or width <= 0:
            raise ReadError(f"image header gives an invalid size {width}x{height}")
        if height * width > limits.max_image_pixels:
            raise ReadError(
                f"image of {width}x{height} pixels exceeds the limit of {limits.max_image_pixels} pixels"
            )
    encoded = np.fromfile(path, dtype=np.uint8)  # imdecode (not imread) also handles non-ASCII paths on Windows
    try:
        pixels = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ReadError(f"cannot decode image ({str(exc).strip().splitlines()[-1]})") from None
    if pixels is None:
        raise ReadError("cannot decode image (corrupt or unsupported)")
    if pixels.shape[0] * pixels.shape[1] > limits.max_image_pixels:
        raise ReadError(f"image of {pixels.shape[1]}x{pixels.shape[0]} pixels exceeds the pixel limit")
    pixels = to_grey_or_rgb(pixels)
    return Case(
        pixels=pixels,
        kind="image2d",
        modality="OT",
        source_files=[path],
        fingerprint=file_fingerprint(path),
        metadata={"format": path.suffix.lower().lstrip("."), "dtype": str(pixels.dtype)},
        uid=str(path.resolve()),
    )
