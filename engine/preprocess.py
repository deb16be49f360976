"""The one function that turns a ``Case`` into the encoder's clip tensor.

Every kind of case becomes ``float32 [C=3, T, H, W]`` in ``[0, 1]``:

- ``image2d``: the image repeated to ``frames_2d`` frames (one tubelet);
- ``volume``: ``frames_3d`` slices sampled along the slice axis (patient order, inferior to superior);
- ``video``: ``frames_3d`` frames sampled uniformly over the clip.

Intensities: CT in Hounsfield units is clipped to ``ct_window`` and scaled to [0, 1]; everything else is scaled
between the ``percentiles`` of the sampled clip. Each frame is resized to fit ``size`` x ``size`` with its aspect
ratio kept (physical pixel spacing honoured) and padded with zeros, centred. Grey is replicated to 3 channels;
colour keeps its colour (RGB order).

The parameters are one frozen dataclass, stored as JSON in the ONNX model's metadata, so a model and its
preprocessing can never drift apart. The trainer imports this module: its augmentation-free path is this path.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from engine.io.case import Case


@dataclass(frozen=True)
class PreprocessParams:
    """Everything that decides how a case becomes a clip; saved with every model."""

    size: int = 128
    frames_2d: int = 2
    frames_3d: int = 16
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    percentiles: tuple[float, float] = (0.5, 99.5)

    def frames_for(self, kind: str) -> int:
        """Clip length T for a case kind."""
        return self.frames_2d if kind == "image2d" else self.frames_3d

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessParams":
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
        return cls(**values)


DEFAULT_PARAMS = PreprocessParams()


def sample_indices(n_available: int, n_wanted: int) -> np.ndarray:
    """Indices of ``n_wanted`` items spread uniformly over ``n_available`` (centre of each equal segment)."""
    if n_available < 1:
        raise ValueError("cannot sample from an empty sequence")
    centres = (np.arange(n_wanted) + 0.5) * n_available / n_wanted
    return np.clip(np.floor(centres).astype(np.int64), 0, n_available - 1)


def case_frames(case: Case, n_frames: int) -> np.ndarray:
    """The case's pixels as ``n_frames`` frames, float32 ``T H W C`` (C = 1 grey or 3 RGB), no scaling yet."""
    pixels = case.pixels
    if case.kind == "image2d":
        frames = pixels[None]  # 1 H W [C]
        idx = np.zeros(n_frames, dtype=np.int64)
    else:
        frames = pixels  # T H W [C]
        idx = sample_indices(frames.shape[0], n_frames)
    out = np.asarray(frames[idx], dtype=np.float32)
    if out.ndim == 3:
        out = out[..., None]  # T H W 1
    return out


def scale_intensity(frames: np.ndarray, case: Case, params: PreprocessParams) -> np.ndarray:
    """Map intensities to [0, 1]: fixed HU window for CT in HU, robust percentiles otherwise."""
    if case.intensity == "HU" and case.modality == "CT":
        lo, hi = params.ct_window
    else:
        lo, hi = np.percentile(frames, params.percentiles)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        lo, hi = float(np.nanmin(frames)), float(np.nanmax(frames))
    if hi <= lo:
        return np.zeros_like(frames)
    scaled = (frames - lo) / (hi - lo)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0, out=scaled)


def fit_size(height: int, width: int, size: int, pixel_aspect: float = 1.0) -> tuple[int, int]:
    """Output (h, w) that fits ``size`` x ``size`` keeping the physical aspect (row/column spacing ratio)."""
    phys_h = height * pixel_aspect
    scale = size / max(phys_h, width)
    return max(1, min(size, round(phys_h * scale))), max(1, min(size, round(width * scale)))


def resize_and_pad(frames: np.ndarray, size: int, pixel_aspect: float = 1.0) -> np.ndarray:
    """Resize ``T H W C`` frames to fit ``size`` x ``size`` (aspect kept) and zero-pad centred."""
    t, h, w, c = frames.shape
    new_h, new_w = fit_size(h, w, size, pixel_aspect)
    shrinking = new_h < h or new_w < w
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = np.zeros((t, size, size, c), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    for i in range(t):
        resized = cv2.resize(frames[i], (new_w, new_h), interpolation=interp)
        out[i, top : top + new_h, left : left + new_w] = resized.reshape(new_h, new_w, c)
    return out


def pixel_aspect(case: Case) -> float:
    """Row spacing / column spacing of the case's frames (1.0 when unknown)."""
    spacing = case.spacing
    if len(spacing) >= 2 and spacing[-1] > 0 and spacing[-2] > 0:
        return float(spacing[-2]) / float(spacing[-1])
    return 1.0


def case_to_clip(case: Case, params: PreprocessParams = DEFAULT_PARAMS) -> np.ndarray:
    """Turn a case into the encoder input, float32 ``C=3 T H W`` in [0, 1]. Deterministic."""
    frames = case_frames(case, params.frames_for(case.kind))  # T H W C
    frames = scale_intensity(frames, case, params)
    frames = resize_and_pad(frames, params.size, pixel_aspect(case))  # T S S C
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames.transpose(3, 0, 1, 2))  # C T H W
