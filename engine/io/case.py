"""The ``Case``: what every reader yields, whatever the file format.

Array conventions (so preprocessing and viewers never guess):

- ``image2d``: ``pixels`` is ``H W`` (grey) or ``H W 3`` (RGB).
- ``volume``: ``pixels`` is ``Z Y X`` (slice, row, column) in the canonical orientation: column index runs
  towards patient Left, row index towards Posterior, slice index towards Superior (LPS+, axial slices in patient
  order). ``affine`` maps homogeneous ``(x, y, z, 1)`` = (column, row, slice) indices to patient LPS millimetres.
- ``video``: ``pixels`` is ``T H W`` (grey) or ``T H W 3`` (RGB), frames sampled uniformly over the clip when the
  reader was asked for a frame budget; ``frame_indices`` says which source frames they are.

``intensity`` is ``"HU"`` for CT pixels already rescaled to Hounsfield units, ``"raw"`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Kind = Literal["image2d", "volume", "video"]
KINDS: tuple[str, ...] = ("image2d", "volume", "video")


@dataclass
class Case:
    """One retrievable case: pixels + geometry + kind + modality + metadata + its source files."""

    pixels: np.ndarray
    kind: Kind
    modality: str  # DICOM-style code: CT, MR, US, XR (CR/DX/DX), ES (endoscopy), MG, NM, PT, OT (unknown)
    source_files: list[Path]
    fingerprint: str  # content fingerprint over the source files (incremental indexing)
    spacing: tuple[float, ...] = ()  # mm per index along pixels' spatial axes (Z Y X or Y X); () if unknown
    affine: np.ndarray | None = None  # 4x4, volumes only (see module docstring)
    intensity: Literal["HU", "raw"] = "raw"
    fps: float | None = None  # videos
    frame_count: int | None = None  # videos: frames in the source clip (pixels may hold fewer)
    frame_indices: np.ndarray | None = None  # videos: which source frames ``pixels`` holds
    metadata: dict[str, str] = field(default_factory=dict)  # patient/study/series ids, dates, descriptions
    uid: str = ""  # stable identity: SeriesInstanceUID (+ SOPInstanceUID for single images) or the file path

    @property
    def is_color(self) -> bool:
        """True when the last axis holds RGB channels."""
        spatial_ndim = 2 if self.kind == "image2d" else 3
        return self.pixels.ndim == spatial_ndim + 1 and self.pixels.shape[-1] == 3

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.pixels.shape)

    @property
    def path(self) -> Path:
        """The path that names the case: its file, or the folder of a multi-file series."""
        if len(self.source_files) == 1:
            return self.source_files[0]
        parents = {p.parent for p in self.source_files}
        return parents.pop() if len(parents) == 1 else Path(*_common_parts(self.source_files))


@dataclass(frozen=True)
class Failure:
    """A path that could not be read, with a one-line reason (made one line and printable here)."""

    path: Path
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", safe_text(" ".join(str(self.reason).split()))[:300] or "unreadable")

    def __str__(self) -> str:
        return f"{display_path(self.path)}: {self.reason}"


def display_path(path: Path | str) -> str:
    """A path as printable text: bytes that are not UTF-8 (kept in ``str`` paths as surrogate escapes, so the
    path itself stays lossless) are shown as ``\\xNN``."""
    return safe_text(str(path))


def safe_text(text: str) -> str:
    """``text`` with lone surrogates (undecodable file-name bytes) replaced by ``\\xNN`` escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class ReadError(Exception):
    """Raised by a reader for a file it cannot read; the message is the one-line reason (no path)."""


def _common_parts(paths: list[Path]) -> tuple[str, ...]:
    parts = [p.parts for p in paths]
    common: list[str] = []
    for group in zip(*parts):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return tuple(common) or ("/",)
