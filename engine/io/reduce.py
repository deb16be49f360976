"""Bounded decoding: shrink a decoded frame that holds more values than a cap, as soon as it is decoded.

The readers decode huge images reduced where the codec allows it (JPEG DCT scaling, ``engine.io.image``) and
otherwise call ``shrink_to_fit`` on each frame right after decoding it, before any conversion multiplies its
size (float32, int64 rescale), so what the indexer holds per unit stays bounded whatever the file declares.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_AREA_DTYPES = frozenset({np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32),
                          np.dtype(np.float64)})


def fit_factor(height: int, width: int, channels: int, max_samples: int) -> float:
    """The factor (>= 1) by which both sides must shrink so that height x width x channels <= max_samples."""
    samples = height * width * max(1, channels)
    return 1.0 if samples <= max_samples else math.sqrt(samples / max_samples)


def shrink_to_fit(frame: np.ndarray, max_samples: int) -> tuple[np.ndarray, float]:
    """``frame`` (H W or H W C) shrunk (area average; striding for dtypes OpenCV cannot average) so that it holds
    at most ``max_samples`` values; returns it and the factor its sides shrank by (1.0: unchanged)."""
    height, width = frame.shape[:2]
    channels = frame.shape[2] if frame.ndim == 3 else 1
    factor = fit_factor(height, width, channels, max_samples)
    if factor <= 1.0:
        return frame, 1.0
    new_h, new_w = max(1, int(height / factor)), max(1, int(width / factor))
    if frame.dtype in _AREA_DTYPES and channels <= 4:
        out = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
        if frame.ndim == 3 and out.ndim == 2:
            out = out[..., None]
    else:
        step = math.ceil(factor)
        out = np.ascontiguousarray(frame[::step, ::step])
        new_h = out.shape[0]
    return out, height / new_h
