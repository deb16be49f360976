"""3D viewer on a real CT NIfTI and a real DICOM series: MPR planes, linked cross-hair, slices, W/L, rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from app.viewers.slice_view import AXIAL, CORONAL, SAGITTAL
from app.viewers.volume_viewer import VolumeViewer
from app.window_level import PRESETS, Window
from tests.app.conftest import (
    assert_not_blank,
    changed_fraction,
    read_case,
    save_png,
    send_drag,
    send_wheel,
    shared_file,
    show_widget,
)


def _ct(shared_data: Path):  # noqa: ANN202
    return read_case(shared_file(shared_data, lambda r: r["modality"] == "ct", "formats/manifest.csv"))


def test_ct_planes_render_and_follow_slices_and_window(qtbot, shared_data: Path, output_dir: Path) -> None:
    case = _ct(shared_data)
    viewer = show_widget(qtbot, VolumeViewer(), 900, 820)
    viewer.set_case(case)
    qtbot.waitUntil(lambda: viewer.render_view.loaded, timeout=20_000)
    tiled = viewer.capture()
    assert_not_blank(tiled)
    save_png(output_dir, "volume_viewer.png", tiled)
    axial = viewer.views[AXIAL]
    assert viewer.window() == Window(40.0, 400.0)  # soft tissue for a CT body in HU
    shape = "x".join(str(n) for n in case.pixels.shape)  # Z Y X, the order `m3ret inspect` / `m3ret list` print
    assert f"volume {shape} (slices x rows x columns)" in viewer.readout.text()

    first = axial.grab_rgb()
    assert_not_blank(first)
    start = axial.slice_index
    for _ in range(10):
        qtbot.keyClick(axial, Qt.Key.Key_PageUp)
    assert axial.slice_index == start + 10
    assert viewer.cursor[2] == start + 10  # the cross-hair follows the slice
    assert changed_fraction(first, axial.grab_rgb()) > 0.02
    send_wheel(axial, -3)
    assert axial.slice_index == start + 7

    before = axial.grab_rgb()
    qtbot.keyClick(axial, Qt.Key.Key_1)
    assert all(view.window == PRESETS["lung"] for view in viewer.views.values())
    assert changed_fraction(before, axial.grab_rgb()) > 0.05


def test_click_moves_the_crosshair_and_the_other_planes(qtbot, shared_data: Path) -> None:
    case = _ct(shared_data)
    viewer = show_widget(qtbot, VolumeViewer(volume_rendering=False), 800, 700)
    viewer.set_case(case)
    axial, coronal, sagittal = viewer.views[AXIAL], viewer.views[CORONAL], viewer.views[SAGITTAL]
    coronal_before = coronal.grab_rgb()
    x, y = axial.width() * 0.3, axial.height() * 0.6
    target = axial.display_to_index(x, y)
    assert target is not None
    send_drag(axial, Qt.MouseButton.LeftButton, (x, y), (x, y), steps=1)
    assert viewer.cursor == target
    assert coronal.slice_index == target[1] and sagittal.slice_index == target[0]
    assert axial.slice_index == target[2]  # the clicked plane keeps its slice
    assert changed_fraction(coronal_before, coronal.grab_rgb()) > 0.02


def test_right_drag_sets_window_on_all_planes(qtbot, shared_data: Path) -> None:
    viewer = show_widget(qtbot, VolumeViewer(volume_rendering=False), 800, 700)
    viewer.set_case(_ct(shared_data))
    seen = []
    viewer.windowChanged.connect(seen.append)
    sagittal = viewer.views[SAGITTAL]
    send_drag(sagittal, Qt.MouseButton.RightButton, (50, 50), (150, 50))
    assert seen and seen[-1].width > 400
    assert all(view.window == seen[-1] for view in viewer.views.values())


def test_volume_rendering_presets_differ(qtbot, shared_data: Path, output_dir: Path) -> None:
    viewer = show_widget(qtbot, VolumeViewer(), 800, 700)
    viewer.set_case(_ct(shared_data))
    qtbot.waitUntil(lambda: viewer.render_view.loaded, timeout=20_000)
    shots = {}
    for index in range(viewer.vr_presets.count()):
        viewer.vr_presets.setCurrentIndex(index)
        viewer.vr_presets.activated.emit(index)
        name = viewer.vr_presets.itemData(index)
        assert viewer.render_view.preset == name
        shots[name] = viewer.render_view.grab_rgb()
        assert_not_blank(shots[name])
        save_png(output_dir, f"volume_rendering_{name.replace(' ', '_')}.png", shots[name])
    assert changed_fraction(shots["bone"], shots["soft tissue"]) > 0.05
    assert changed_fraction(shots["bone"], shots["mip"]) > 0.05


def test_dicom_series_opens_in_the_volume_viewer(qtbot, shared_data: Path, output_dir: Path) -> None:
    path = shared_file(shared_data, lambda r: r["dataset"] == "dcm_qa_siemens", "formats/manifest.csv")
    case = read_case(path)
    assert case.kind == "volume" and case.pixels.ndim == 3
    viewer = show_widget(qtbot, VolumeViewer(volume_rendering=False), 800, 700)
    viewer.set_case(case)
    axial = viewer.views[AXIAL]
    first = axial.grab_rgb()
    assert_not_blank(first)
    save_png(output_dir, "volume_viewer_dicom_mr.png", viewer.capture())
    if axial.slice_count > 1:
        axial.set_slice(0)
        assert changed_fraction(first, axial.grab_rgb()) > 0.01
    assert np.isfinite(viewer.window().width)


def test_planes_follow_the_radiological_convention(qtbot) -> None:
    """A bright block at patient left-anterior-superior shows up where the edge labels say it should."""
    from engine.io.case import Case

    volume = np.zeros((40, 50, 60), np.int16)  # Z (inferior -> superior) Y (anterior -> posterior) X (right -> left)
    volume[28:36, 5:15, 42:55] = 1000  # superior, anterior, left
    case = Case(pixels=volume, kind="volume", modality="CT", source_files=[Path("phantom")], fingerprint="p",
                spacing=(1.0, 1.0, 1.0), affine=np.eye(4))
    viewer = show_widget(qtbot, VolumeViewer(volume_rendering=False), 800, 700)
    viewer.set_case(case)
    viewer.set_window(Window(500.0, 1000.0))
    viewer.set_cursor((48, 10, 32))  # through the block
    axial, sagittal = viewer.views[AXIAL], viewer.views[SAGITTAL]
    assert [axial.annotation.GetText(i) for i in (6, 5, 7, 4)] == ["R", "L", "A", "P"]
    assert [sagittal.annotation.GetText(i) for i in (6, 5, 7, 4)] == ["A", "P", "S", "I"]

    def bright_centre(view) -> tuple[float, float]:  # noqa: ANN001
        grey = view.grab_rgb().astype(float).mean(axis=-1)
        rows, cols = np.nonzero(grey > 200)
        return cols.mean() / grey.shape[1], rows.mean() / grey.shape[0]

    x, y = bright_centre(axial)
    assert x > 0.5 and y < 0.5  # patient left on screen right, anterior at the top
    x, y = bright_centre(sagittal)
    assert x < 0.5 and y < 0.5  # anterior on screen left, superior at the top
