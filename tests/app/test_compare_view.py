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
