"""Workers: results, errors, progress and cancellation arrive as signals on the GUI thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

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
