"""The factory picks the viewer by case kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.io.case import Case
from app.viewers.image_viewer import ImageViewer
from app.viewers.video_viewer import VideoViewer
from app.viewers.viewer_factory import create_viewer, viewer_class
from app.viewers.volume_viewer import VolumeViewer
from tests.app.conftest import read_case, shared_file


def _case(kind: str, shape: tuple[int, ...]) -> Case:
    return Case(pixels=np.zeros(shape, np.uint8), kind=kind, modality="OT", source_files=[Path("x")], fingerprint="f")


def test_kinds_map_to_viewers() -> None:
    assert viewer_class(_case("image2d", (4, 4))) is ImageViewer
    assert viewer_class(_case("volume", (4, 4, 4))) is VolumeViewer
    assert viewer_class(_case("video", (4, 4, 4))) is VideoViewer
    assert viewer_class(_case("volume", (4, 4, 4, 3))) is VideoViewer  # colour stack: browse slices
    with pytest.raises(ValueError, match="no viewer"):
        viewer_class(_case("table", (4,)))


def test_create_viewer_shows_a_real_xray(qtbot, shared_data: Path) -> None:
    case = read_case(shared_file(shared_data, lambda r: r["modality"] == "xray"))
    viewer = create_viewer(case)
    qtbot.addWidget(viewer)
    assert isinstance(viewer, ImageViewer) and viewer.case is case


def test_video_frame_budget_bounds_memory() -> None:
    from app.viewers.viewer_factory import (
        MIN_VIDEO_FRAMES,
        VIEWER_VIDEO_BYTES,
        VIEWER_VIDEO_FRAMES,
        video_frame_budget,
        viewer_read_limits,
    )

    assert video_frame_budget((320, 320)) == VIEWER_VIDEO_FRAMES  # small grey ultrasound: every frame up to the cap
    hd = video_frame_budget((1080, 1920, 3))
    assert hd * 1080 * 1920 * 3 <= VIEWER_VIDEO_BYTES and hd >= MIN_VIDEO_FRAMES
    assert video_frame_budget((8000, 8000, 3)) == MIN_VIDEO_FRAMES
    assert viewer_read_limits(frame_shape=(1080, 1920, 3)).video_frames == hd
    assert viewer_read_limits().video_frames == VIEWER_VIDEO_FRAMES
