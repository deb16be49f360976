"""The main window on a library built from real files: open, view, find similar, drop, compare, index, cancel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.main_window import COMPARE_TAB, RESULTS_TAB, VIEWER_TAB, MainWindow
from app.settings import AppSettings
from app.viewers.canvas import grab_widget
from app.viewers.volume_viewer import VolumeViewer
from app.window_level import Window
from tests.app.conftest import assert_not_blank, save_png, shared_file, x_session_env

TIMEOUT = 60_000


@pytest.fixture()
def window(qtbot, app_model: Path) -> MainWindow:  # noqa: ANN001
    win = MainWindow(AppSettings(), model_path=app_model, interactive=False)
    qtbot.addWidget(win)
    win.resize(1280, 820)
    win.show()
    qtbot.waitExposed(win)
    return win


def _open(qtbot, win: MainWindow, library: Path) -> None:  # noqa: ANN001
    with qtbot.waitSignal(win.libraryOpened, timeout=TIMEOUT):
        win.open_library(library)


def _select_first(qtbot, win: MainWindow, predicate) -> object:  # noqa: ANN001
    records = [r for r in win.library_view.visible_records() if predicate(r)]
    assert records, "no matching case in the library"
    with qtbot.waitSignal(win.caseShown, timeout=TIMEOUT):
        win.library_view.select_case(records[0].id)
    return records[0]


def _settle(qtbot, win: MainWindow) -> None:  # noqa: ANN001
    qtbot.wait(100)
    QApplication.processEvents()


def test_library_opens_and_selected_cases_show_in_their_viewer(qtbot, window: MainWindow, app_library: Path) -> None:
    _open(qtbot, window, app_library)
    records = window.library_view.model.records()
    assert len(records) == window.library.catalog.count_cases() > 10
    assert {r.modality for r in records} >= {"XR", "MR", "CT", "US"}
    for kind, viewer_name in (("volume", "VolumeViewer"), ("video", "VideoViewer"), ("image2d", "ImageViewer")):
        record = _select_first(qtbot, window, lambda r, k=kind: r.kind == k)
        assert type(window.viewer).__name__ == viewer_name and window.viewer.isVisible()
        assert window.viewer.case.kind == record.kind
        assert window.tabs.currentIndex() == VIEWER_TAB
        _settle(qtbot, window)
        assert_not_blank(window.viewer.capture())
    assert window.settings.last_library == app_library


def test_find_similar_shows_ranked_results_without_the_query(qtbot, window: MainWindow, app_library: Path,
                                                              output_dir: Path) -> None:
    _open(qtbot, window, app_library)
    record = _select_first(qtbot, window, lambda r: r.modality == "XR")
    window.results_view.k_box.setValue(6)
    with qtbot.waitSignal(window.resultsShown, timeout=TIMEOUT) as blocker:
        window.find_similar()
    results = blocker.args[0]
    assert len(results) == 6 == window.results_view.grid.count()
    assert record.id not in [r.case_id for r in results]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert window.tabs.currentIndex() == RESULTS_TAB
    _settle(qtbot, window)
    save_png(output_dir, "results_view.png", grab_widget(window.results_view))
    save_png(output_dir, "main_window_results.png", grab_widget(window))

    with qtbot.waitSignal(window.resultsShown, timeout=TIMEOUT) as blocker:
        window.results_view.scope_buttons["same"].setChecked(True)  # a filter change searches again
    assert blocker.args[0] and all(r.modality == "XR" for r in blocker.args[0])
    with qtbot.waitSignal(window.resultsShown, timeout=TIMEOUT) as blocker:
        window.results_view.scope_buttons["cross"].setChecked(True)
    assert blocker.args[0] and all(r.modality != "XR" for r in blocker.args[0])


def test_dropping_a_file_reads_it_and_searches(qtbot, window: MainWindow, app_library: Path,
                                               shared_data: Path, output_dir: Path) -> None:
    _open(qtbot, window, app_library)
    path = shared_file(shared_data, lambda r: r["modality"] == "ct", "formats/manifest.csv")  # a real body CT
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)  # offscreen Qt delivers no real drags: call the handlers as Qt would
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.resultsShown, timeout=TIMEOUT) as blocker:
        window.dropEvent(drop)
    assert drop.isAccepted()
    assert window.query is not None and window.query.case_id is None
    assert window.query.case.source_files == [path]
    assert isinstance(window.viewer, VolumeViewer)
    assert len(blocker.args[0]) == min(window.results_view.k, window.library.catalog.count_cases())
    assert window.results_view.query_thumb.pixmap() is not None and not window.results_view.query_thumb.pixmap().isNull()
    window.tabs.setCurrentIndex(VIEWER_TAB)
    qtbot.waitUntil(lambda: window.viewer.render_view.loaded, timeout=TIMEOUT)
    _settle(qtbot, window)
    save_png(output_dir, "main_window_volume.png", grab_widget(window))


def test_clicking_a_result_compares_with_linked_window_level(qtbot, window: MainWindow, app_library: Path,
                                                              output_dir: Path) -> None:
    _open(qtbot, window, app_library)
    _select_first(qtbot, window, lambda r: r.modality == "CT")
    window.results_view.set_scope("same")
    with qtbot.waitSignal(window.resultsShown, timeout=TIMEOUT) as blocker:
        window.find_similar()
    result = blocker.args[0][0]
    assert result.modality == "CT"
    with qtbot.waitSignal(window.compareShown, timeout=TIMEOUT):
        window.open_result(result)
    assert window.tabs.currentIndex() == COMPARE_TAB
    compare = window.compare_view
    assert compare.linked
    assert compare.result_viewer.case.kind == result.kind
    compare.query_viewer.apply_preset("bone")
    assert compare.result_viewer.window() == Window(400.0, 1800.0)
    _settle(qtbot, window)
    shot = grab_widget(compare)
    assert_not_blank(shot)
    save_png(output_dir, "compare_view.png", shot)
    compare.link_box.setChecked(False)
    compare.query_viewer.apply_preset("lung")
    assert compare.result_viewer.window() == Window(400.0, 1800.0)


def test_big_dicom_series_shows_a_preview_slice_first(qtbot, window: MainWindow, tmp_path: Path) -> None:
    from benchmarks.app_startup import write_dicom_series

    series = write_dicom_series(tmp_path / "series", size=96, n_slices=40)
    previews, cases = [], []
    window.previewShown.connect(previews.append)
    window.caseShown.connect(cases.append)
    with qtbot.waitSignal(window.caseShown, timeout=TIMEOUT):
        window.open_query_path(series, search=False)
    assert len(previews) == 1 and previews[0].kind == "image2d"
    assert cases[0].kind == "volume" and cases[0].pixels.shape[0] == 40
    assert type(window.viewer).__name__ == "VolumeViewer" and window.viewer.case is cases[0]


def _copy_xrays(shared_data: Path, dest: Path, n: int) -> Path:
    import csv

    rows = [r for r in csv.DictReader((shared_data / "manifest.csv").open()) if r["modality"] == "xray"][:n]
    for row in rows:
        target = dest / Path(row["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shared_data / row["path"], target)
    return dest


def test_add_folder_indexes_in_background_and_lists_failures(qtbot, window: MainWindow, tmp_path: Path,
                                                             shared_data: Path) -> None:
    _open(qtbot, window, tmp_path / "new_library")
    folder = _copy_xrays(shared_data, tmp_path / "incoming", 6)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # header only: undecodable
    (folder / "truncated.nii.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    progress = []
    window.indexProgress.connect(progress.append)
    with qtbot.waitSignal(window.indexingFinished, timeout=TIMEOUT) as blocker:
        window.add_paths([folder], workers=0, modality="XR")
        assert window.progress_bar.isVisible() and window.cancel_button.isVisible()
    report = blocker.args[0]
    assert not report.cancelled and report.n_added == 6 and report.n_failed == 2
    assert progress and {p.stage for p in progress} & {"indexing", "saving", "done"}
    assert not window.progress_bar.isVisible()
    assert window.failures_dock.isVisible()
    failed = {window.failures_table.item(r, 0).text(): window.failures_table.item(r, 1).text()
              for r in range(window.failures_table.rowCount())}
    assert {Path(p).name for p in failed} == {"broken.png", "truncated.nii.gz"}
    assert all(reason for reason in failed.values())
    qtbot.waitUntil(lambda: window.library_view.model.rowCount() == 6, timeout=TIMEOUT)
    assert {r.modality for r in window.library_view.model.records()} == {"XR"}


def test_cancel_indexing_keeps_what_was_indexed(qtbot, window: MainWindow, tmp_path: Path,
                                                shared_data: Path) -> None:
    _open(qtbot, window, tmp_path / "cancel_library")
    folder = _copy_xrays(shared_data, tmp_path / "many", 120)

    def cancel_when_indexing(progress) -> None:  # noqa: ANN001
        if progress.stage == "indexing" and progress.done >= 1:
            window.cancel_indexing()

    window.indexProgress.connect(cancel_when_indexing)
    with qtbot.waitSignal(window.indexingFinished, timeout=TIMEOUT) as blocker:
        window.add_paths([folder], workers=0)
    report = blocker.args[0]
    assert report.cancelled
    count = window.library.catalog.count_cases()
    assert count == report.n_added < 120
    assert "cancelled" in window.status_label.text().lower()
    assert not window.indexing
    window.indexProgress.disconnect(cancel_when_indexing)
    # the library stays usable: a second run adds the rest, while the event loop keeps running
    ticks: list[float] = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    started = time.monotonic()
    with qtbot.waitSignal(window.indexingFinished, timeout=TIMEOUT * 2) as blocker:
        window.add_paths([folder], workers=0)
    finished = time.monotonic()
    timer.stop()
    assert not blocker.args[0].cancelled
    assert window.library.catalog.count_cases() == 120
    gaps = np.diff([started, *ticks, finished])
    # the event loop kept turning during the run (a blocked GUI thread would show one gap as long as the run);
    # the bound is loose on purpose: a loaded CI machine stretches gaps, a frozen window is a different order
    assert len(ticks) >= 3 and gaps.max() < 5.0, f"the window froze for {gaps.max():.2f} s while indexing"


def test_settings_remember_library_and_geometry(qtbot, app_model: Path, app_library: Path) -> None:
    first = MainWindow(AppSettings(), model_path=app_model, interactive=False)
    qtbot.addWidget(first)
    first.show()
    with qtbot.waitSignal(first.libraryOpened, timeout=TIMEOUT):
        first.open_library(app_library)
    first.resize(700, 500)  # within the offscreen screen (800x600), which restoreGeometry clamps to
    qtbot.wait(50)
    expected = (first.size().width(), first.size().height())
    assert expected != (1280, 820)
    first.failures_dock.show()
    first.close()
    settings = AppSettings()
    assert settings.last_library == app_library
    assert settings.recent_libraries[0] == app_library
    second = MainWindow(settings, model_path=app_model, interactive=False)
    qtbot.addWidget(second)
    assert (second.size().width(), second.size().height()) == expected


def test_errors_are_one_line_messages_not_crashes(qtbot, window: MainWindow, tmp_path: Path) -> None:
    window.find_similar()
    assert "nothing to search" in window.last_error.lower()
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"definitely not a png")
    with qtbot.waitSignal(window.errorShown, timeout=TIMEOUT) as blocker:
        window.open_query_path(bad)
    assert "not_an_image.png" in blocker.args[0] and "\n" not in blocker.args[0]
    assert np.isfinite(len(window.status_label.text()))


def _query_with_a_volume(qtbot, win: MainWindow, library: Path) -> None:  # noqa: ANN001
    """Open a library volume's file as the query: the viewer shows it, and the search at once brings up the results
    tab, so the 3D views are hidden before they ever drew (the case of issue 12, item 6)."""
    _open(qtbot, win, library)
    record = next(r for r in win.library_view.visible_records() if r.kind == "volume")
    with qtbot.waitSignal(win.resultsShown, timeout=TIMEOUT):
        win.open_query_path(Path(record.path))
    assert isinstance(win.viewer, VolumeViewer) and win.tabs.currentIndex() == RESULTS_TAB


def test_viewer_tab_repaints_every_3d_view_when_shown_again(qtbot, window: MainWindow, app_library: Path) -> None:
    """Back from the results tab after a query, each of the 3D viewer's four views draws again."""
    from app.viewers.canvas import VtkCanvas

    _query_with_a_volume(qtbot, window, app_library)
    _settle(qtbot, window)
    canvases = window.viewer.findChildren(VtkCanvas)
    assert len(canvases) == 4
    renders = {id(c): 0 for c in canvases}
    for canvas in canvases:
        canvas.GetRenderWindow().AddObserver("EndEvent", lambda *_a, c=canvas: renders.__setitem__(id(c), renders[id(c)] + 1))
    window.tabs.setCurrentIndex(VIEWER_TAB)
    _settle(qtbot, window)
    assert all(n >= 1 for n in renders.values()), renders


def test_viewer_tab_shows_every_3d_view_on_a_real_x_screen_after_a_query(xvfb: str, app_library: Path,
                                                                          app_model: Path, output_dir: Path) -> None:
    """On a real X server, the Viewer tab clicked after a query shows the volume in all four 3D views, not the
    results grid that was on screen there (three views kept the grid until clicked). The app runs in a child
    process (tests/app/x11_viewer_tabs.py): this process is on Qt's offscreen platform, which has no screen."""
    import json

    shots = output_dir / "screenshots"
    proc = subprocess.run([sys.executable, "-m", "tests.app.x11_viewer_tabs", str(app_library), str(app_model),
                           str(shots)], env=x_session_env(xvfb), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT "))[7:])
    print(json.dumps(report, indent=1))  # on a failure, pytest shows it
    views = report["views"]
    assert report["platform"] == "xcb" and len(views) == 4, report
    assert report["volume_rendering_built"], report
    for view in views:
        assert view["drawn_vs_results"] > 0.3, view  # a view drawn differs from the grid it covers
        assert view["drawn_std"] > 5, view  # and shows something (slice or rendering), not a blank
    stale = [v["view"] for v in views if v["shown_vs_drawn"] > 0.02]
    assert not stale, f"views still showing the results tab's pixels ({shots}/x11_viewer_again.png): {views}"
