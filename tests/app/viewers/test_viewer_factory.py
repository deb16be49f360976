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
