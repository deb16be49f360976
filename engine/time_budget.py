"""A time budget for reading one unit: ``UnitTimeout`` is raised in the reading code when it runs out.

POSIX main threads (the ``m3ret`` command, every reader process) use ``SIGALRM``: the signal interrupts blocking
system calls and Python code alike, so a stuck read is abandoned and the run goes on. ``UnitTimeout`` derives
from ``BaseException`` so that the readers' own ``except Exception`` handlers cannot swallow it. Elsewhere (a
GUI worker thread, Windows) there is no budget in-process; reader processes are the budget there (the indexer
kills a reader process that overruns, see ``engine.indexer``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class UnitTimeout(BaseException):
    """The unit being read ran out of its time budget."""


def can_interrupt() -> bool:
    """True where ``time_budget`` can interrupt the reading code (POSIX, main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise ``UnitTimeout`` inside the block after ``seconds`` (None or <= 0: no budget; no-op where
    ``can_interrupt()`` is False)."""
    if not seconds or seconds <= 0 or not can_interrupt():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise UnitTimeout(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
