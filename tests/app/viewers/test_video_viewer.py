"""Video viewer on a real ultrasound clip: frames render, step, slider, play at a frame rate."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt

from app.viewers.video_viewer import VideoViewer
from app.viewers.viewer_factory import viewer_read_limits
from tests.app.conftest import assert_not_blank, changed_fraction, read_case, save_png, shared_file, show_widget


def _clip(shared_data: Path):  # noqa: ANN202
    path = shared_file(shared_data, lambda r: r["path"].endswith(".mp4"))
    return read_case(path, viewer_read_limits())


def test_frames_render_and_step(qtbot, shared_data: Path, output_dir: Path) -> None:
    case = _clip(shared_data)
    viewer = show_widget(qtbot, VideoViewer())
    viewer.set_case(case)
    assert viewer.frame == 0 and viewer.frame_count == case.pixels.shape[0]
    first = viewer.capture()
    assert_not_blank(first)
    save_png(output_dir, "video_viewer.png", first)

    qtbot.keyClick(viewer.view, Qt.Key.Key_End)
    assert viewer.frame == viewer.frame_count - 1
    assert changed_fraction(first, viewer.capture(), tolerance=4) > 0.01
    qtbot.keyClick(viewer.view, Qt.Key.Key_Left)
    assert viewer.frame == viewer.frame_count - 2
    viewer.slider.setValue(3)
    assert viewer.frame == 3
    assert viewer.frame_label.text().startswith(f"4/{viewer.frame_count}")


def test_play_advances_at_the_chosen_rate_and_pauses(qtbot, shared_data: Path) -> None:
    viewer = show_widget(qtbot, VideoViewer())
    viewer.set_case(_clip(shared_data))
    viewer.fps_box.setValue(20.0)
    assert viewer.timer.interval() == 50 or not viewer.playing
    qtbot.keyClick(viewer.view, Qt.Key.Key_Space)
    assert viewer.playing and viewer.timer.interval() == 50
    started = time.monotonic()
    qtbot.waitUntil(lambda: viewer.frame >= 5, timeout=30_000)  # generous: a loaded machine only slows it
    assert time.monotonic() - started >= 0.2  # 5 frames at 20 fps take 0.25 s
    qtbot.keyClick(viewer.view, Qt.Key.Key_Space)
    assert not viewer.playing
    paused_at = viewer.frame
    qtbot.wait(200)
    assert viewer.frame == paused_at
    viewer.next_button.click()
    assert viewer.frame == paused_at + 1


def test_viewer_budget_reads_more_frames_than_indexing(shared_data: Path) -> None:
    path = shared_file(shared_data, lambda r: r["path"].endswith(".mp4"))
    indexed, viewed = read_case(path), read_case(path, viewer_read_limits())
    assert viewed.pixels.shape[0] >= indexed.pixels.shape[0]
    assert viewed.pixels.shape[0] == min(viewed.frame_count, viewer_read_limits().video_frames)
