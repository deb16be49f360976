"""Compare view: each case in its own viewer; window/level linked only for same-modality pairs."""

from __future__ import annotations

from pathlib import Path

from app.compare_view import CompareView
from app.viewers.image_viewer import ImageViewer
from app.viewers.volume_viewer import VolumeViewer
from app.window_level import PRESETS
from app.viewers.canvas import grab_widget
from tests.app.conftest import assert_not_blank, read_case, save_png, shared_file, show_widget


def test_same_modality_pair_shares_window_level(qtbot, shared_data: Path, output_dir: Path) -> None:
    paths = [shared_file(shared_data, lambda r, i=i: r["modality"] == "mri" and r["path"].endswith(f"{i}.jpg"))
             for i in (1, 2)]
    left, right = (read_case(p) for p in paths)
    view = show_widget(qtbot, CompareView(), 900, 500)
    view.set_pair(left, right, "query", "result")
    assert isinstance(view.query_viewer, ImageViewer) and isinstance(view.result_viewer, ImageViewer)
    assert view.query_viewer.isVisible() and view.result_viewer.isVisible()
    assert view.linked and "same modality" in view.info.text()
    assert view.result_viewer.window() == view.query_viewer.window()
    save_png(output_dir, "compare_view_mri.png", grab_widget(view))
    view.result_viewer.apply_preset("brain")  # works both ways
    assert view.query_viewer.window() == PRESETS["brain"]
    assert_not_blank(view.query_viewer.capture())
    assert_not_blank(view.result_viewer.capture())


def test_cross_modal_pair_is_not_linked_and_uses_proper_viewers(qtbot, shared_data: Path) -> None:
    ct = read_case(shared_file(shared_data, lambda r: r["modality"] == "ct", "formats/manifest.csv"))
    xray = read_case(shared_file(shared_data, lambda r: r["modality"] == "xray"))
    xray.modality = "XR"
    view = show_widget(qtbot, CompareView(), 900, 500)
    view.set_pair(ct, xray, "query", "result")
    assert isinstance(view.query_viewer, VolumeViewer) and isinstance(view.result_viewer, ImageViewer)
    assert not view.linked and not view.link_box.isEnabled() and "cross-modal" in view.info.text()
    before = view.result_viewer.window()
    view.query_viewer.apply_preset("bone")
    assert view.result_viewer.window() == before
    first_query_viewer = view.query_viewer
    view.set_pair(xray, ct, "q2", "r2")  # replacing the pair disposes the old viewers
    assert view.query_viewer is not first_query_viewer and view.query_pane.title.text() == "q2"


def test_long_titles_keep_both_sides_equal_and_aligned(qtbot, shared_data: Path, output_dir: Path) -> None:
    paths = [shared_file(shared_data, lambda r, i=i: r["modality"] == "mri" and r["path"].endswith(f"{i}.jpg"))
             for i in (1, 2)]
    left, right = (read_case(p) for p in paths)
    view = show_widget(qtbot, CompareView(), 900, 500)
    long_name = "a_very_long_file_name_without_any_spaces_" * 6 + ".jpg"
    view.set_pair(left, right, "Query: short.jpg", f"Result #1, match 87: MR image — {long_name}")
    qtbot.wait(50)
    query_pane, result_pane = view.query_pane, view.result_pane
    assert abs(query_pane.width() - result_pane.width()) <= 12  # the long name does not squeeze the query side
    assert view.query_viewer.mapTo(view, view.query_viewer.rect().topLeft()).y() == \
        view.result_viewer.mapTo(view, view.result_viewer.rect().topLeft()).y()  # images at the same height
    shown = result_pane.title.text().splitlines()
    assert len(shown) == 2 and "…" in shown[1] and shown[1].endswith(".jpg")
    assert result_pane.title.toolTip().endswith(long_name)
    save_png(output_dir, "compare_view_long_title.png", grab_widget(view))


def test_window_box_names_custom_windows_on_both_sides(qtbot, shared_data: Path) -> None:
    from app.viewers.base import CUSTOM
    from app.window_level import Window

    paths = [shared_file(shared_data, lambda r, i=i: r["modality"] == "mri" and r["path"].endswith(f"{i}.jpg"))
             for i in (1, 2)]
    left, right = (read_case(p) for p in paths)
    view = show_widget(qtbot, CompareView(), 900, 500)
    view.set_pair(left, right, "query", "result")
    for viewer in (view.query_viewer, view.result_viewer):
        assert viewer.presets.currentIndex() >= 0 and viewer.presets.currentText()  # never blank
    view.query_viewer.set_window(Window(123.0, 77.0), emit=True)  # as a drag does; linked to the result side
    for viewer in (view.query_viewer, view.result_viewer):
        assert viewer.presets.currentData() == CUSTOM and viewer.presets.currentText() == "Custom"
    view.result_viewer.apply_preset(CUSTOM)  # choosing "Custom" keeps the window
    assert view.result_viewer.window() == Window(123.0, 77.0)


def test_space_plays_the_result_video_not_the_link_box(qtbot, shared_data: Path) -> None:
    from PySide6.QtCore import Qt

    from app.viewers.video_viewer import VideoViewer
    from app.viewers.viewer_factory import viewer_read_limits

    video = read_case(shared_file(shared_data, lambda r: r["path"].endswith(".mp4")), viewer_read_limits())
    view = show_widget(qtbot, CompareView(), 900, 500)
    view.set_pair(video, video, "query", "result")
    assert isinstance(view.result_viewer, VideoViewer)
    qtbot.mouseClick(view.link_box, Qt.MouseButton.LeftButton)  # a click on the box must not take the focus
    checked = view.link_box.isChecked()
    focused = view.focusWidget()  # where the window's key presses go
    assert focused is view.result_viewer.view and not view.link_box.hasFocus()
    qtbot.keyClick(focused, Qt.Key.Key_Space)
    assert view.result_viewer.playing and view.link_box.isChecked() == checked
    view.result_viewer.pause()
    label = view.result_viewer.frame_label.text()
    view.result_viewer.step(5)
    assert view.result_viewer.frame_label.text().startswith("6/") and label.startswith("1/")
    assert not view.result_viewer.view._render_timer.isActive()  # the picture was drawn with the label
