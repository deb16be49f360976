"""Workers: results, errors, progress and cancellation arrive as signals on the GUI thread."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QThread

from app.viewers.viewer_factory import viewer_read_limits
from app.workers import create_worker, read_file_case
from tests.app.conftest import shared_file


def _count(n: int, progress, cancel: threading.Event) -> int:  # noqa: ANN001
    done = 0
    for _ in range(n):
        if cancel.is_set():
            break
        time.sleep(0.01)
        done += 1
        progress(done)
    return done


def test_result_and_progress_arrive_on_the_gui_thread(qtbot) -> None:
    gui = QThread.currentThread()
    seen: list[tuple[object, bool]] = []
    worker = create_worker(_count, 5, _start=False)
    worker.signals.progress.connect(lambda v: seen.append((v, QThread.currentThread() is gui)))
    with qtbot.waitSignal(worker.signals.returned, timeout=10_000) as blocker:
        worker.start()
    assert blocker.args == [5]
    qtbot.waitUntil(lambda: len(seen) == 5)
    assert [v for v, _ in seen] == [1, 2, 3, 4, 5] and all(on_gui for _, on_gui in seen)
    assert worker.is_finished and not worker.is_running


def test_quit_cancels_a_cancellable_function(qtbot) -> None:
    worker = create_worker(_count, 10_000)
    qtbot.waitUntil(lambda: worker.is_running)
    with qtbot.waitSignal(worker.signals.finished, timeout=10_000):
        worker.quit()
    assert worker.result < 10_000


def test_errors_are_signalled_not_raised(qtbot, tmp_path: Path) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not gzip at all")
    worker = create_worker(read_file_case, bad, viewer_read_limits(), _start=False)
    with qtbot.waitSignal(worker.signals.errored, timeout=10_000) as blocker:
        worker.start()
    message = str(blocker.args[0])
    assert "broken.nii.gz" in message and "\n" not in message


def test_reads_a_real_case_in_the_background(qtbot, shared_data: Path) -> None:
    path = shared_file(shared_data, lambda r: r["path"].endswith(".mp4"))
    worker = create_worker(read_file_case, path, viewer_read_limits(), _start=False)
    with qtbot.waitSignal(worker.signals.returned, timeout=30_000) as blocker:
        worker.start()
    case = blocker.args[0]
    assert case.kind == "video" and case.source_files == [path]
    with pytest.raises(AttributeError):
        worker.signals.no_such_signal  # noqa: B018


def test_big_dicom_series_gets_a_one_slice_preview(tmp_path: Path) -> None:
    from benchmarks.app_startup import write_dicom_series

    from app.workers import PREVIEW_MIN_FILES, read_preview

    series = write_dicom_series(tmp_path / "ct", size=64, n_slices=PREVIEW_MIN_FILES + 6)
    files = sorted(series.glob("*.dcm"))
    previews: list = []
    case = read_file_case(series, viewer_read_limits(), progress=previews.append)
    assert case.kind == "volume" and case.pixels.shape == (len(files), 64, 64)
    assert len(previews) == 1
    preview = previews[0]
    assert preview.kind == "image2d" and preview.modality == "CT" and preview.pixels.shape == (64, 64)
    middle = case.pixels[case.pixels.shape[0] // 2]  # files are named in slice order
    assert abs(float(preview.pixels.astype(float).mean()) - float(middle.astype(float).mean())) < 1.0
    assert read_preview("dicom", files[: PREVIEW_MIN_FILES - 1]) is None  # small series: no preview needed
    assert read_preview("nifti", files) is None


def test_big_nifti_gets_its_middle_slice_as_a_preview(tmp_path: Path) -> None:
    from benchmarks.app_startup import write_nifti

    from app.workers import PREVIEW_MIN_NIFTI_SLICES, read_preview

    path = write_nifti(tmp_path / "ct.nii", size=32, n_slices=PREVIEW_MIN_NIFTI_SLICES + 6)
    events: list = []
    case = read_file_case(path, viewer_read_limits(), progress=lambda preview: events.append(("preview", preview)))
    events.append(("case", case))
    assert [name for name, _ in events] == ["preview", "case"]
    preview = events[0][1]
    assert preview.kind == "image2d" and case.kind == "volume"
    np.testing.assert_array_equal(preview.pixels, case.pixels[case.pixels.shape[0] // 2])
    small = write_nifti(tmp_path / "small.nii", size=32, n_slices=PREVIEW_MIN_NIFTI_SLICES)
    assert read_preview("nifti", [small]) is None  # few slices: the whole volume comes quickly anyway
    gz = tmp_path / "ct.nii.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_preview("nifti", [gz]) is None  # compressed: no cheap way to the middle slice
    assert read_preview("nifti", [tmp_path / "missing.nii"]) is None  # the full read reports the error


def test_preview_comes_before_the_folder_scan_and_only_once(tmp_path: Path) -> None:
    from benchmarks.app_startup import write_dicom_series

    from app.workers import PREVIEW_MIN_FILES, folder_preview

    top = write_dicom_series(tmp_path / "top", size=32, n_slices=PREVIEW_MIN_FILES)
    assert folder_preview(top) is not None  # files right in the dropped folder: no scan needed
    nested = write_dicom_series(tmp_path / "outer" / "inner", size=32, n_slices=PREVIEW_MIN_FILES)
    assert folder_preview(nested.parent) is None  # only sub-folders: the preview waits for the scan
    for folder in (top, nested.parent):
        previews: list = []
        case = read_file_case(folder, viewer_read_limits(), progress=previews.append)
        assert len(previews) == 1 and previews[0].kind == "image2d" and case.kind == "volume"


def test_viewed_video_frames_follow_the_memory_budget(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.viewers.viewer_factory as factory

    path = shared_file(shared_data, lambda r: r["path"].endswith(".mp4"))
    full = read_file_case(path, viewer_read_limits())
    assert full.pixels.shape[0] == min(full.frame_count, factory.VIEWER_VIDEO_FRAMES)
    frame_bytes = int(np.prod(full.pixels.shape[1:]))
    monkeypatch.setattr(factory, "VIEWER_VIDEO_BYTES", frame_bytes * 20)  # room for 20 frames only
    budgeted = read_file_case(path, viewer_read_limits())
    assert budgeted.pixels.shape[0] == 20 == len(budgeted.frame_indices)


def test_a_worker_finishing_after_its_signals_are_gone_does_not_raise(qtbot) -> None:
    """At shutdown the window (and the worker's signals object) can be deleted while the function still runs."""
    from shiboken6 import Shiboken

    from app.workers import FunctionWorker

    def work(progress) -> int:
        progress(1)
        return 7

    worker = FunctionWorker(work)
    Shiboken.delete(worker.signals)
    worker.run()  # in this thread: every emit meets a deleted source
    assert worker.is_finished and worker.result == 7 and worker.error is None
