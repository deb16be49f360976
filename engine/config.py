"""Configuration in one place: where data lives, read limits, defaults.

``M3RET_HOME`` overrides every per-user location (tests, portable installs). ``M3RET_DATA`` points at the
shared development data (``manifest.csv``); without it ``../shared/data`` next to the checkout is tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "m3ret"


def _home_override() -> Path | None:
    home = os.environ.get("M3RET_HOME")
    return Path(home).expanduser() if home else None


def user_data_dir() -> Path:
    """Folder holding the libraries (catalog + index + thumbnails), one sub-folder per library."""
    home = _home_override()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_config_dir() -> Path:
    """Folder holding settings."""
    home = _home_override()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def user_log_dir() -> Path:
    """Folder holding log files."""
    home = _home_override()
    return home / "logs" if home else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def default_library_dir() -> Path:
    """The library used when no ``--library`` is given."""
    return user_data_dir() / "libraries" / "default"


def shared_data_dir() -> Path | None:
    """The shared development data folder (holding ``manifest.csv``), or None where it is absent."""
    env = os.environ.get("M3RET_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for candidate in candidates:
        if (candidate / "manifest.csv").is_file():
            return candidate
    return None


@dataclass(frozen=True)
class ReadLimits:
    """What reading one unit (a file or a DICOM series) may cost; checked against headers before decoding.

    Memory: declared sizes are checked before any pixel is decoded; a unit decodes at most
    ``max_decompressed_bytes`` and one frame at most ``max_frame_bytes``; images and video frames holding more
    than ``max_frame_samples`` / ``max_video_frame_samples`` values (H x W x channels) are decoded reduced (JPEG
    DCT scaling) or shrunk as soon as they are decoded. Time: ``unit_seconds`` per unit, after which the unit is
    recorded as a failure and the run goes on. Degenerate "cases" (a side under ``min_side`` pixels, a video
    with fewer than ``min_video_frames`` frames) are refused.
    """

    max_voxels: int = 1024 * 1024 * 1024  # 1 Gi voxels (a 2048x2048x256 volume)
    max_frames: int = 100_000
    max_image_pixels: int = 30_000 * 30_000
    max_decompressed_bytes: int = 1024**3  # per unit (a 512x512x2048 int16 CT series fits)
    max_frame_bytes: int = 256 * 2**20  # one decoded frame that cannot be decoded reduced (11585^2 16-bit grey)
    max_frame_samples: int = 4096 * 4096  # images: larger ones are decoded reduced / shrunk on decoding
    max_video_frame_samples: int = 1920 * 1080 * 3  # video frames: larger ones are shrunk as they are read
    video_frames: int | None = 64  # frames sampled from a video at read time; None = every frame
    unit_seconds: float | None = 300.0  # time budget of one unit (None: unlimited)
    min_side: int = 2  # smallest image / frame side indexed (pixels): a 1-pixel line is not an image
    min_video_frames: int = 2  # a "video" of one frame is a truncated file


DEFAULT_LIMITS = ReadLimits()

# Why-this-match (engine.explain): occlusion grid cells per side over the model's input square, and the most
# slices / frames of one case given their own embedding (longer cases are sampled uniformly).
EXPLAIN_GRID = 8
EXPLAIN_MAX_POSITIONS = 64

# ---- archive scale ---------------------------------------------------------------------------------------------

CLUSTER_SHARD_UNITS = 64  # units per shard of a Ray indexing run (engine.cluster): the unit of retry and of merging
VECTOR_INDEX_VIEW_SHARE = 0.25  # default share of the RAM above which a vector index file is memory-mapped
VIEW_SHARE_ENV = "M3RET_INDEX_VIEW_SHARE"  # overrides it (0 = always memory-map, 1e9 = never)


def vector_index_view_share() -> float:
    """A vector index file larger than this share of the RAM is memory-mapped (USearch ``view``), not loaded."""
    value = os.environ.get(VIEW_SHARE_ENV)
    try:
        return float(value) if value else VECTOR_INDEX_VIEW_SHARE
    except ValueError:
        return VECTOR_INDEX_VIEW_SHARE
