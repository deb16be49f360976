"""engine.library_lock: one writer per library (an OS lock another process sees), released when its holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from engine.library_lock import LibraryInUseError, WriterLock, opening_lock

REPO_ROOT = Path(__file__).resolve().parents[2]


def _holder_process(library_dir: Path) -> subprocess.Popen:
    """A process that takes the writer lock, says "held" and sleeps."""
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from engine.library_lock import WriterLock
        lock = WriterLock(Path({str(library_dir)!r}))
        lock.acquire()
        print("held", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path)
    try:
        with pytest.raises(LibraryInUseError, match=rf"in use by PID {proc.pid}\b"):
            WriterLock(tmp_path).acquire(wait=False)
        told: list[str] = []
        with pytest.raises(LibraryInUseError):
            WriterLock(tmp_path).acquire(wait=True, timeout=0.5, on_wait=told.append)
        assert len(told) == 1 and f"PID {proc.pid}" in told[0] and "waiting" in told[0]
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lock = WriterLock(tmp_path)
    lock.acquire(wait=False)  # no stale lock after kill -9
    assert lock.held and f"PID {os.getpid()}" in lock.holder()
    lock.release()
    assert not lock.held


def test_a_waiting_writer_gets_the_lock_when_it_is_freed_and_cancel_stops_waiting(tmp_path: Path) -> None:
    first = WriterLock(tmp_path)
    first.acquire()
    second = WriterLock(tmp_path)  # another open file: conflicts even within one process
    threading.Timer(0.5, first.release).start()
    second.acquire(wait=True, timeout=30)
    assert second.held
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(LibraryInUseError):
        WriterLock(tmp_path).acquire(wait=True, cancel=cancel)
    second.release()


def test_the_lock_is_reentrant_within_one_object(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path)
    with lock.hold(), lock.hold():
        assert lock.held
        with pytest.raises(LibraryInUseError):
            WriterLock(tmp_path).acquire(wait=False)
    assert not lock.held
    WriterLock(tmp_path).acquire(wait=False)


def test_opening_lock_serialises_threads(tmp_path: Path) -> None:
    inside: list[int] = []
    overlaps: list[int] = []

    def enter() -> None:
        with opening_lock(tmp_path):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=enter) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps
