"""engine.time_budget: a block that overruns (Python loop or blocking system call) is interrupted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from engine.time_budget import UnitTimeout, can_interrupt, time_budget


def test_a_busy_loop_is_interrupted() -> None:
    started = time.monotonic()
    with pytest.raises(UnitTimeout, match="took longer than 0.2 s"):
        with time_budget(0.2):
            while True:
                pass
    assert time.monotonic() - started < 30


def test_a_blocking_open_of_a_fifo_is_interrupted_and_not_swallowed(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with pytest.raises(UnitTimeout):
        with time_budget(0.2):
            try:
                fifo.read_bytes()  # blocks: nobody writes
            except Exception:  # noqa: BLE001 (a reader's broad handler must not swallow the timeout)
                pass


def test_no_budget_outside_the_main_thread() -> None:
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(can_interrupt()))
    thread.start()
    thread.join()
    assert seen == [False] and can_interrupt()
    with time_budget(None):
        pass
