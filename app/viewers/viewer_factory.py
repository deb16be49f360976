"""Pick the viewer for a case by its kind, and the read limits a viewer wants."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import QWidget

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case
from app.viewers.base import CaseViewer
from app.viewers.image_viewer import ImageViewer
from app.viewers.video_viewer import VIEWER_VIDEO_FRAMES, VideoViewer
from app.viewers.volume_viewer import VolumeViewer

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


def viewer_read_limits(base: ReadLimits = DEFAULT_LIMITS) -> ReadLimits:
    """Read limits for viewing: videos keep up to ``VIEWER_VIDEO_FRAMES`` frames instead of the indexing budget."""
    return replace(base, video_frames=VIEWER_VIDEO_FRAMES)
