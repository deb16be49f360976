"""Case thumbnails: the middle slice (volume) or frame (video), or the image itself, as a small PNG.

Intensities are windowed between the 1st and 99th percentiles (CT in HU: a soft-tissue-friendly broad window),
the aspect ratio is kept (physical pixel spacing honoured) and the picture is padded to a square.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.io.case import Case
from engine.preprocess import fit_size, pixel_aspect, resize_and_pad

CT_WINDOW = (-160.0, 240.0)  # HU, a soft-tissue window (level 40, width 400)
PERCENTILES = (1.0, 99.0)


def middle_frame(case: Case) -> np.ndarray:
    """The picture a thumbnail shows: ``H W`` or ``H W 3``."""
    if case.kind == "image2d":
        return case.pixels
    return case.pixels[case.pixels.shape[0] // 2]


def window_to_uint8(frame: np.ndarray, case: Case) -> np.ndarray:
    """Scale intensities to 0..255 (uint8)."""
    frame = np.asarray(frame, dtype=np.float32)
    if case.intensity == "HU" and case.modality == "CT":
        lo, hi = CT_WINDOW
    else:
        finite = frame[np.isfinite(frame)]
        lo, hi = np.percentile(finite, PERCENTILES) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    scaled = np.clip((np.nan_to_num(frame, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def make_thumbnail(case: Case, size: int = 128) -> bytes:
    """PNG bytes of a ``size`` x ``size`` thumbnail of the case."""
    frame = np.asarray(middle_frame(case), dtype=np.float32)  # H W [3]
    if frame.ndim == 2:
        frame = frame[..., None]
    fitted = resize_and_pad(frame[None], size, pixel_aspect(case))[0]  # S S C, zero padding
    h, w = fit_size(frame.shape[0], frame.shape[1], size, pixel_aspect(case))
    top, left = (size - h) // 2, (size - w) // 2
    square = np.zeros((size, size, frame.shape[-1]), np.uint8)
    # window on the resized picture only (cheap, and the padding does not shift the percentiles)
    square[top : top + h, left : left + w] = window_to_uint8(fitted[top : top + h, left : left + w], case)
    if square.shape[-1] == 3:
        square = cv2.cvtColor(square, cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", square)
    if not ok:
        raise ValueError("PNG encoding failed")
    return png.tobytes()


def decode_thumbnail(png: bytes) -> np.ndarray:
    """PNG bytes -> ``H W`` (grey) or ``H W 3`` RGB uint8 (for tests and viewers without Qt)."""
    image = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a PNG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image
