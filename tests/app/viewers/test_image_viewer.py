"""2D viewer on real stills: rendering, window/level by drag and keys, readout, invert, zoom, pan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from app.viewers.image_viewer import ImageViewer
from app.window_level import PRESETS, auto_window
from tests.app.conftest import (
    assert_not_blank,
    changed_fraction,
    read_case,
    save_png,
    send_drag,
    send_hover,
    send_wheel,
    shared_file,
    show_widget,
)


def _ultrasound_still(shared_data: Path):  # noqa: ANN202
    return read_case(shared_file(shared_data, lambda r: r["modality"] == "ultrasound" and r["path"].endswith(".png")))


def test_still_renders_and_window_level_changes_the_picture(qtbot, shared_data: Path, output_dir: Path) -> None:
    case = _ultrasound_still(shared_data)
    viewer = show_widget(qtbot, ImageViewer())
    viewer.set_case(case)
    first = viewer.capture()
    assert_not_blank(first)
    save_png(output_dir, "image_viewer.png", first)

    view = viewer.view
    before = viewer.window()
    send_drag(view, Qt.MouseButton.LeftButton, (100, 100), (220, 160))
    assert viewer.window() != before
    assert viewer.window().width > before.width  # dragging right widens
    dragged = viewer.capture()
    assert changed_fraction(first, dragged) > 0.05


def test_number_keys_apply_presets_and_zero_is_auto(qtbot, shared_data: Path) -> None:
    case = read_case(shared_file(shared_data, lambda r: r["modality"] == "mri" and r["path"].endswith(".jpg")))
    viewer = show_widget(qtbot, ImageViewer())
    viewer.set_case(case)
    seen = []
    viewer.windowChanged.connect(seen.append)
    qtbot.keyClick(viewer.view, Qt.Key.Key_4)
    assert viewer.window() == PRESETS["brain"]
    brain = viewer.capture()
    qtbot.keyClick(viewer.view, Qt.Key.Key_0)
    assert viewer.window() == auto_window(case.pixels)
    assert changed_fraction(brain, viewer.capture()) > 0.05
    assert seen == [PRESETS["brain"], auto_window(case.pixels)]


def test_readout_shows_the_pixel_under_the_mouse(qtbot, shared_data: Path) -> None:
    case = _ultrasound_still(shared_data)
    viewer = show_widget(qtbot, ImageViewer())
    viewer.set_case(case)
    viewer.capture()
    x, y = viewer.view.width() // 2, viewer.view.height() // 2
    send_hover(viewer.view, x, y)
    ijk = viewer.view.display_to_index(x, y)
    assert ijk is not None
    col, row, _ = ijk
    h, w = case.pixels.shape[:2]
    assert abs(col - w / 2) <= w * 0.05 and abs(row - h / 2) <= h * 0.05  # fitted image is centred
    expected = case.pixels[row, col]
    text = viewer.readout.text()
    assert text.startswith(f"x {col}  y {row}  value ")
    if np.ndim(expected) == 0:
        assert text.endswith(f"{float(expected):.0f}")


def test_invert_flips_grey_levels(qtbot, shared_data: Path) -> None:
    case = _ultrasound_still(shared_data)
    viewer = show_widget(qtbot, ImageViewer())
    viewer.set_case(case)
    normal = viewer.capture().astype(np.int16)
    qtbot.keyClick(viewer.view, Qt.Key.Key_I)
    assert viewer.invert_box.isChecked()
    inverted = viewer.capture().astype(np.int16)
    inside = normal.max(axis=-1) > 40  # pixels of the image (the background stays black)
    assert np.abs((normal[inside] + inverted[inside]) - 255).mean() < 20


def test_wheel_zooms_and_middle_drag_pans(qtbot, shared_data: Path) -> None:
    viewer = show_widget(qtbot, ImageViewer())
    viewer.set_case(_ultrasound_still(shared_data))
    view = viewer.view
    scale = view.zoom_scale
    send_wheel(view, 2)
    assert view.zoom_scale < scale  # zoomed in
    centre = (view.width() / 2, view.height() / 2)
    under_centre = view.display_to_index(*centre)
    send_drag(view, Qt.MouseButton.MiddleButton, centre, (centre[0] + 60, centre[1]))
    moved = view.display_to_index(*centre)
    assert moved is not None and under_centre is not None
    assert moved[0] < under_centre[0]  # the image moved right: the centre now shows a column further left
    qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.zoom_scale == scale
