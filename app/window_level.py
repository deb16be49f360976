"""Window/level: named presets (CT in Hounsfield units) and an automatic window from percentiles.

A window is ``(level, width)``: the grey ramp runs from ``level - width/2`` (black) to ``level + width/2`` (white).
Keys 1-4 pick the CT presets, 0 the automatic window (X-ray, ultrasound, MRI, or any non-HU data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """A display window: ``level`` (centre) and ``width``, in the pixels' own units."""

    level: float
    width: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2.0

    @property
    def high(self) -> float:
        return self.level + self.width / 2.0


PRESETS: dict[str, Window] = {
    "lung": Window(-600.0, 1500.0),
    "mediastinum": Window(40.0, 400.0),
    "bone": Window(400.0, 1800.0),
    "brain": Window(40.0, 80.0),
}
PRESET_KEYS: dict[int, str] = {1: "lung", 2: "mediastinum", 3: "bone", 4: "brain", 0: "auto"}
AUTO_PERCENTILES: tuple[float, float] = (1.0, 99.0)
_AUTO_SAMPLE = 1_000_000  # voxels looked at by auto_window (a strided sample of bigger arrays)


def configure_presets(presets: dict[str, Window]) -> None:
    """Replace the named presets (from the user's settings); unknown names are refused."""
    unknown = set(presets) - set(PRESETS)
    if unknown:
        raise KeyError(f"unknown window presets: {sorted(unknown)}")
    PRESETS.update(presets)


def auto_window(pixels: np.ndarray, percentiles: tuple[float, float] = AUTO_PERCENTILES) -> Window:
    """Window spanning the given percentiles of the pixels (RGB: of all channels). Never zero width."""
    flat = np.asarray(pixels).reshape(-1)
    if flat.size > _AUTO_SAMPLE:
        flat = flat[:: flat.size // _AUTO_SAMPLE]
    flat = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if flat.size == 0:
        return Window(0.5, 1.0)
    low, high = (float(v) for v in np.percentile(flat, percentiles))
    if high <= low:
        low, high = float(flat.min()), float(flat.max())
    if high <= low:
        high = low + 1.0
    return Window((low + high) / 2.0, high - low)


def window_for_key(key: int, pixels: np.ndarray) -> Window | None:
    """The window a number key selects (0 = auto), or None for keys without a preset."""
    name = PRESET_KEYS.get(key)
    if name is None:
        return None
    return auto_window(pixels) if name == "auto" else PRESETS[name]


def is_hounsfield(pixels: np.ndarray, intensity: str, modality: str) -> bool:
    """True for CT in Hounsfield units: said by the reader, or a CT/unknown-modality volume whose values run
    from air (about -1000) to soft tissue and bone (NIfTI files do not say what they hold)."""
    if intensity == "HU":
        return True
    if modality not in ("CT", "OT") or np.asarray(pixels).dtype.kind not in "if":
        return False
    sample = np.asarray(pixels).reshape(-1)
    sample = sample[:: max(1, sample.size // _AUTO_SAMPLE)]
    lowest, p5, p95, highest = np.percentile(sample, (0.0, 5.0, 95.0, 100.0))
    return -3100.0 <= lowest <= -900.0 and p5 < -200.0 and p95 > 0.0 and highest < 5000.0


def default_window(pixels: np.ndarray, intensity: str, modality: str) -> Window:
    """Initial window: soft tissue (40/400) for a CT body in HU, auto from percentiles otherwise."""
    if is_hounsfield(pixels, intensity, modality) and _spans_air_and_tissue(pixels):
        return Window(40.0, 400.0)
    return auto_window(pixels)


def _spans_air_and_tissue(pixels: np.ndarray) -> bool:
    """True when the HU values span air to soft tissue (a real CT rather than a mask in HU)."""
    window = auto_window(pixels, (5.0, 95.0))
    return window.low < -200.0 and window.high > 0.0


def drag_window(start: Window, dx: float, dy: float, data_range: float) -> Window:
    """Window after a mouse drag of ``dx, dy`` pixels: right widens, down raises the level (like VTK/OsiriX)."""
    scale = max(data_range, 1e-6) / 500.0
    width = max(start.width + dx * scale, 1e-6)
    return Window(start.level - dy * scale, width)
