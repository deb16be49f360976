"""One writer per library: an OS file lock in the library folder, shared by the app, the CLI and every service.

``WriterLock`` holds ``<library>/writer.lock`` (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) for as
long as a process writes to the library (indexing, pruning, removing cases). The OS releases it when the holder
exits, however it exits (kill -9 included), so a lock is never stale. The holder writes ``pid=... since=...``
into the file so a second writer can say who holds it. A second writer either waits (with a message, cancellable)
or is refused with ``LibraryInUseError("library ... in use by PID ...")``.

Readers (search, listing) take no lock: SQLite WAL lets them read while the writer writes.

``opening_lock`` serialises the few milliseconds in which a process creates or migrates the catalog, so two
processes opening a new library at once never both create its tables.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

WRITER_LOCK_FILE = "writer.lock"
OPENING_LOCK_FILE = "opening.lock"
POLL_S = 0.2

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class LibraryInUseError(RuntimeError):
    """Another process (or another writer in this one) writes to the library."""


class WriterLock:
    """The library's writer lock; re-entrant within one ``WriterLock`` object (indexing calls pruning)."""

    def __init__(self, library_dir: Path) -> None:
        self.library_dir = Path(library_dir)
        self.path = self.library_dir / WRITER_LOCK_FILE
        self._fd: int | None = None
        self._depth = 0
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """Who holds the lock, as written by the holder ("PID 123 since 2026-11-28 01:02:03"), or "unknown"."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return "another process"
        fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
        if "pid" not in fields:
            return "another process"
        since = fields.get("since", "")
        return f"PID {fields['pid']}" + (f" (since {since.replace('T', ' ')})" if since else "")

    def acquire(self, wait: bool = True, timeout: float | None = None,
                on_wait: Callable[[str], None] | None = None, cancel: threading.Event | None = None) -> None:
        """Take the lock. Busy: ``wait=False`` raises ``LibraryInUseError`` at once; otherwise ``on_wait`` is told
        once who holds it and this polls until it is free, ``timeout`` seconds pass or ``cancel`` is set (both
        raise ``LibraryInUseError``)."""
        with self._guard:
            if self._fd is not None:
                self._depth += 1
                return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        try:
            while not _try_lock(fd):
                message = f"library {self.library_dir} is in use by {self.holder()}"
                stop = (not wait or (deadline is not None and time.monotonic() >= deadline)
                        or (cancel is not None and cancel.is_set()))
                if stop:
                    raise LibraryInUseError(message)
                if not told:
                    told = True
                    log.info("%s; waiting for it to finish", message)
                    if on_wait is not None:
                        on_wait(f"{message}; waiting for it to finish")
                time.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} since={stamp}\n".encode("ascii"), 0)
        with self._guard:
            self._fd, self._depth = fd, 1

    def release(self) -> None:
        """Give the lock back (after as many releases as acquisitions)."""
        with self._guard:
            if self._fd is None:
                return
            self._depth -= 1
            if self._depth > 0:
                return
            fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)

    @contextmanager
    def hold(self, wait: bool = True, timeout: float | None = None,
             on_wait: Callable[[str], None] | None = None, cancel: threading.Event | None = None) -> Iterator[None]:
        """``with lock.hold(): ...`` (see ``acquire``)."""
        self.acquire(wait=wait, timeout=timeout, on_wait=on_wait, cancel=cancel)
        try:
            yield
        finally:
            self.release()


@contextmanager
def opening_lock(library_dir: Path) -> Iterator[None]:
    """Held while the catalog is created or migrated (milliseconds): waits for another process doing the same."""
    fd = os.open(Path(library_dir) / OPENING_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while not _try_lock(fd):
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
