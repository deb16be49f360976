"""Pick the viewer for a case by its kind, and the read limits a viewer wants."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from PySide6.QtWidgets import QWidget

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case
from app.viewers.base import CaseViewer
from app.viewers.image_viewer import ImageViewer
from app.viewers.video_viewer import VIEWER_VIDEO_FRAMES, VideoViewer
from app.viewers.volume_viewer import VolumeViewer

VIEWER_VIDEO_BYTES = 512 * 1024**2  # memory a viewed video may take
MIN_VIDEO_FRAMES = 16
VIEWERS: dict[str, type[CaseViewer]] = {"image2d": ImageViewer, "volume": VolumeViewer, "video": VideoViewer}


def viewer_class(case: Case) -> type[CaseViewer]:
    """The viewer class for ``case``: by kind; a colour volume is browsed frame by frame like a video."""
    if case.kind == "volume" and case.pixels.ndim == 4:
        return VideoViewer
    try:
        return VIEWERS[case.kind]
    except KeyError:
        raise ValueError(f"no viewer for case kind {case.kind!r}") from None


def create_viewer(case: Case, parent: QWidget | None = None, **options: object) -> CaseViewer:
    """A new viewer widget showing ``case`` (GUI thread)."""
    viewer = viewer_class(case)(parent, **options)
    viewer.set_case(case)
    return viewer


def video_frame_budget(frame_shape: Sequence[int]) -> int:
    """Frames to read for viewing a video whose frames are ``H W`` or ``H W 3`` (uint8): at most
    ``VIEWER_VIDEO_FRAMES`` and ``VIEWER_VIDEO_BYTES`` in all (a 1080p colour clip gets 86 frames)."""
    frame_bytes = max(1, math.prod(int(s) for s in frame_shape))
    return int(max(MIN_VIDEO_FRAMES, min(VIEWER_VIDEO_FRAMES, VIEWER_VIDEO_BYTES // frame_bytes)))


def viewer_read_limits(base: ReadLimits = DEFAULT_LIMITS, frame_shape: Sequence[int] | None = None) -> ReadLimits:
    """Read limits for viewing: videos keep more frames than the indexing budget (``video_frame_budget`` of the
    frame shape when known, else ``VIEWER_VIDEO_FRAMES``)."""
    frames = VIEWER_VIDEO_FRAMES if frame_shape is None else video_frame_budget(frame_shape)
    return replace(base, video_frames=frames)
