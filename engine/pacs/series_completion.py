"""Index received series once they are complete, through the normal indexer (``engine.indexer.index_paths``).

A series is complete when no instance arrived for ``settle_s`` seconds and every association that delivered to
it was released normally. A series whose association was aborted is *held*: its instances stay in the inbox
(marked ``.incomplete``) and it is indexed once a later association that delivers to it ends normally. Indexing
the same folder again costs nothing: the indexer skips files whose size and mtime (or content fingerprint) are
recorded, so a study sent twice adds no case.

One background thread does the indexing, one batch of ready series at a time; arrivals are recorded from any
thread (pynetdicom runs one thread per association).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.indexer import IndexReport, index_paths
from engine.library import Library
from engine.pacs.inbox import Inbox

log = logging.getLogger(__name__)

POLL_S = 0.1

IndexedCallback = Callable[[list[Path], IndexReport], None]


@dataclass
class _Series:
    last_arrival: float
    open_associations: set[int] = field(default_factory=set)
    held: bool = False


class SeriesCompletion:
    """Tracks arrivals per series folder and indexes complete series into ``library`` in a background thread."""

    def __init__(self, library: Library, settle_s: float, on_indexed: IndexedCallback | None = None) -> None:
        self.library = library
        self.settle_s = max(0.0, float(settle_s))
        self.on_indexed = on_indexed
        self._series: dict[Path, _Series] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports: list[IndexReport] = []

    # ---- events (any thread) ----------------------------------------------------------------------------

    def arrived(self, series_dir: Path, association_id: int) -> None:
        """An instance of ``series_dir`` was stored by association ``association_id``."""
        with self._lock:
            state = self._series.setdefault(series_dir, _Series(time.monotonic()))
            state.last_arrival = time.monotonic()
            state.open_associations.add(association_id)

    def association_ended(self, association_id: int, aborted: bool) -> None:
        """The association ended: released (its series may now complete) or aborted (its series are held)."""
        with self._lock:
            for series_dir, state in self._series.items():
                if association_id not in state.open_associations:
                    continue
                state.open_associations.discard(association_id)
                if aborted:
                    state.held = True
                    try:
                        Inbox.mark_incomplete(series_dir)
                    except OSError as exc:  # the marker only matters after a restart
                        log.warning("%s: cannot mark the series incomplete (%s)", series_dir, exc)
                    log.warning("%s: sender aborted the association; its %d instance(s) wait for the rest of "
                                "the series", series_dir.name, _count_instances(series_dir))
                elif state.held:
                    state.held = False
                    Inbox.mark_complete(series_dir)
                state.last_arrival = time.monotonic()
            self._wake.notify_all()

    def resume(self, inbox: Inbox) -> None:
        """Pick up the inbox as a previous listener left it: held series stay held, the others are indexed
        (the indexer skips what it already has, so this costs a folder walk)."""
        with self._lock:
            for series_dir in inbox.series_dirs():
                held = Inbox.is_incomplete(series_dir)
                self._series.setdefault(series_dir, _Series(-float("inf"), held=held))
            self._wake.notify_all()

    # ---- the indexing thread ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="m3ret-series-completion", daemon=True)
            self._thread.start()

    def stop(self, flush: bool = False) -> None:
        """Stop the thread; ``flush=True`` first indexes every series that is not held, settled or not."""
        if flush:
            self.index_ready(ignore_settle=True)
        self._stop.set()
        with self._lock:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no series waits to be indexed (held ones aside) and none is being indexed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy or any(not s.held for s in self._series.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, POLL_S))
        return True

    def pending(self) -> dict[Path, bool]:
        """Series folders not indexed yet -> held (True) or waiting for the settle time (False)."""
        with self._lock:
            return {path: state.held for path, state in self._series.items()}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.index_ready()
            except Exception:  # noqa: BLE001 (a failing index run must not stop the listener)
                log.exception("indexing received series failed; they stay in the inbox")
            with self._lock:
                self._wake.wait(POLL_S)

    def index_ready(self, ignore_settle: bool = False) -> IndexReport | None:
        """Index every series that is complete now (``ignore_settle``: whatever its last arrival time)."""
        now = time.monotonic()
        with self._lock:
            ready = [path for path, s in self._series.items()
                     if not s.held and not s.open_associations
                     and (ignore_settle or now - s.last_arrival >= self.settle_s)]
            if not ready:
                return None
            for path in ready:
                del self._series[path]
            self._busy = True
        try:
            return self.index_now(ready)
        finally:
            with self._lock:
                self._busy = False
                self._wake.notify_all()

    def index_now(self, series_dirs: Iterable[Path]) -> IndexReport:
        """Index ``series_dirs`` now (in this thread) and tell ``on_indexed``."""
        dirs = [d for d in series_dirs if d.is_dir()]
        started = time.monotonic()
        report = index_paths(self.library, dirs)
        self.reports.append(report)
        log.info("indexed %d received series in %.2f s: %s", len(dirs), time.monotonic() - started,
                 report.summary())
        for failure in report.failures:
            log.warning("received instance could not be indexed: %s", failure)
        if self.on_indexed is not None:
            self.on_indexed(dirs, report)
        return report


def _count_instances(series_dir: Path) -> int:
    return sum(1 for p in series_dir.glob("*.dcm"))
