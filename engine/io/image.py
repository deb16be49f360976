"""Plain images (PNG, JPEG, TIFF, BMP) -> ``image2d`` Case, via OpenCV.

8- and 16-bit, grey and colour; alpha is dropped, BGR becomes RGB, and a colour image whose three channels are
equal becomes grey. Memory is bounded before any pixel is decoded: the header (PNG IHDR, JPEG start of frame, BMP
info header, TIFF first IFD; parsed here, nothing decoded) gives the size, channels and sample depth; an image holding more than
``ReadLimits.max_frame_samples`` values is decoded reduced (JPEG: DCT scaling by 2, 4 or 8, so the full image is
never in memory) or, for other formats, decoded when its full size fits ``max_frame_bytes`` and shrunk at once.
``metadata["reduced_by"]`` says by how much an image was reduced.
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
from engine.io.reduce import fit_factor, shrink_to_fit

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


_REDUCED_FLAGS = {2: (cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_COLOR_2),
                  4: (cv2.IMREAD_REDUCED_GRAYSCALE_4, cv2.IMREAD_REDUCED_COLOR_4),
                  8: (cv2.IMREAD_REDUCED_GRAYSCALE_8, cv2.IMREAD_REDUCED_COLOR_8)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}  # colour type -> channels OpenCV decodes (palette: BGR(A))
_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_BITS, _TIFF_SAMPLES = 256, 257, 258, 277

Layout = tuple[int, int, int, int, str]  # height, width, channels, bytes per sample, format


def header_layout(path: Path) -> Layout | None:
    """(height, width, channels, bytes per sample, format) from the header of a PNG, JPEG, BMP or TIFF, nothing
    decoded; None for other formats or a header that does not say. ``ReadError`` for a truncated PNG header."""
    with path.open("rb") as f:
        head = f.read(32)
        if head.startswith(PNG_SIGNATURE):
            if head[12:16] != b"IHDR":
                raise ReadError("PNG without IHDR header")
            if len(head) < 26:
                raise ReadError("truncated PNG header")
            width, height = struct.unpack(">II", head[16:24])
            return height, width, _PNG_CHANNELS.get(head[25], 4), 2 if head[24] == 16 else 1, "PNG"
        if head.startswith(BMP_SIGNATURE) and len(head) >= 30:
            width, height = struct.unpack("<ii", head[18:26])
            (bits,) = struct.unpack("<H", head[28:30])
            return abs(height), abs(width), 4 if bits == 32 else 3, 1, "BMP"
        if head.startswith(JPEG_SIGNATURE):
            f.seek(2)
            found = _jpeg_sof(f)
            return None if found is None else (*found, "JPEG")
        if head.startswith(TIFF_SIGNATURES):
            return _tiff_layout(f, "<" if head[:2] == b"II" else ">")
    return None


def header_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file header without decoding pixels; None when the format is not parsed here."""
    layout = header_layout(path)
    return None if layout is None else (layout[0], layout[1])


def _jpeg_sof(f) -> tuple[int, int, int, int] | None:  # noqa: ANN001 (binary file object)
    """(height, width, components, bytes per sample) from the first start-of-frame marker in the first few MB."""
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
            data = f.read(6)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            components = data[5] if len(data) == 6 and data[5] else 3
            return height, width, components, 2 if data[0] > 8 else 1
        f.seek(length - 2, 1)
    return None


def _tiff_layout(f, endian: str) -> Layout | None:  # noqa: ANN001 (binary file object)
    """The first IFD's ImageWidth, ImageLength, SamplesPerPixel and BitsPerSample (classic TIFF)."""
    try:
        f.seek(4)
        (offset,) = struct.unpack(endian + "I", f.read(4))
        f.seek(offset)
        (count,) = struct.unpack(endian + "H", f.read(2))
        entries = f.read(12 * min(count, 4096))
        tags: dict[int, int] = {}
        for i in range(len(entries) // 12):
            tag, kind, n, value = struct.unpack(endian + "HHI4s", entries[12 * i : 12 * i + 12])
            if kind == 3 and n == 1:
                tags[tag] = struct.unpack(endian + "H", value[:2])[0]
            elif kind == 4 and n == 1:
                tags[tag] = struct.unpack(endian + "I", value)[0]
            elif tag == _TIFF_BITS and kind == 3:  # one value per sample, stored elsewhere: assume the widest
                tags[tag] = 16
    except (struct.error, OSError, ValueError):
        return None
    if _TIFF_WIDTH not in tags or _TIFF_LENGTH not in tags:
        return None
    channels = max(1, tags.get(_TIFF_SAMPLES, 1))
    depth = max(1, -(-tags.get(_TIFF_BITS, 8) // 8))
    return tags[_TIFF_LENGTH], tags[_TIFF_WIDTH], channels, depth, "TIFF"


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
    pixels, reduced_by = _decode_bounded(path, limits)
    pixels = to_grey_or_rgb(pixels)
    return Case(
        pixels=pixels,
        kind="image2d",
        modality="OT",
        source_files=[path],
        fingerprint=file_fingerprint(path),
        metadata={"format": path.suffix.lower().lstrip("."), "dtype": str(pixels.dtype),
                  **({"reduced_by": f"{reduced_by:.3g}"} if reduced_by > 1 else {})},
        uid=str(path.resolve()),
    )


def _decode_bounded(path: Path, limits: ReadLimits) -> tuple[np.ndarray, float]:
    """Decode with memory bounded by the header (see the module docstring); returns OpenCV pixels and the factor
    the sides were reduced by."""
    layout = header_layout(path)
    flag, reduced_by = cv2.IMREAD_UNCHANGED, 1.0
    if layout is not None:
        height, width, channels, depth, fmt = layout
        if height <= 0 or width <= 0:
            raise ReadError(f"image header gives an invalid size {width}x{height}")
        if height * width > limits.max_image_pixels:
            raise ReadError(f"image of {width}x{height} pixels exceeds the limit of {limits.max_image_pixels} pixels")
        factor = fit_factor(height, width, channels, limits.max_frame_samples)
        if factor > 1 and fmt == "JPEG":
            scale = next((f for f in (2, 4, 8) if f >= factor), None)
            if scale is None:
                raise ReadError(f"refused: {width}x{height} JPEG is too large even decoded at 1/8 size")
            flag, reduced_by = _REDUCED_FLAGS[scale][0 if channels == 1 else 1], float(scale)
        elif height * width * channels * depth > limits.max_frame_bytes:
            raise ReadError(f"refused: a {width}x{height}x{channels} image would decode to "
                            f"{height * width * channels * depth} bytes (limit {limits.max_frame_bytes})")
    encoded = np.fromfile(path, dtype=np.uint8)  # imdecode (not imread) also handles non-ASCII paths on Windows
    try:
        pixels = cv2.imdecode(encoded, flag)
    except cv2.error as exc:
        raise ReadError(f"cannot decode image ({str(exc).strip().splitlines()[-1]})") from None
    del encoded
    if pixels is None:
        raise ReadError("cannot decode image (corrupt or unsupported)")
    if pixels.shape[0] * pixels.shape[1] > limits.max_image_pixels:
        raise ReadError(f"image of {pixels.shape[1]}x{pixels.shape[0]} pixels exceeds the pixel limit")
    pixels, shrunk = shrink_to_fit(pixels, limits.max_frame_samples)  # the header lied, or a non-JPEG format
    return pixels, reduced_by * shrunk
