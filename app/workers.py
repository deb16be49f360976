"""Background work for the GUI (napari ``qthreading`` style): run a function in a thread pool, get Qt signals.

``create_worker(func, *args, _connect={"returned": slot, ...}, **kwargs)`` returns a started ``FunctionWorker``
whose ``signals`` emit ``started``, ``progress(object)``, ``returned(object)``, ``errored(Exception)`` and
``finished`` on the GUI thread (queued connections). A function that takes a ``progress`` keyword receives a
callable that emits ``signals.progress``; one that takes ``cancel`` receives the worker's ``threading.Event``,
set by ``worker.quit()``. Workers never touch widgets or VTK: they return numpy arrays and engine objects.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case

log = logging.getLogger(__name__)

_ACTIVE: set["FunctionWorker"] = set()  # keeps running workers (and their Python objects) alive
_ACTIVE_LOCK = threading.Lock()


class WorkerSignals(QObject):
    """Signals of one worker; the object lives in the GUI thread, so slots run there."""

    started = Signal()
    progress = Signal(object)
    returned = Signal(object)
    errored = Signal(object)  # the exception
    finished = Signal()


class FunctionWorker(QRunnable):
    """Runs ``func(*args, **kwargs)`` once in a QThreadPool thread."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.func, self.args, self.kwargs = func, args, dict(kwargs)
        self.signals = WorkerSignals()
        self.cancel_event = threading.Event()
        self._done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        parameters = _parameters(func)
        if "progress" in parameters and "progress" not in self.kwargs:
            self.kwargs["progress"] = lambda value: self._emit("progress", value)
        if "cancel" in parameters and "cancel" not in self.kwargs:
            self.kwargs["cancel"] = self.cancel_event

    def start(self, pool: QThreadPool | None = None) -> "FunctionWorker":
        """Queue the work on ``pool`` (the global pool by default)."""
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        (pool or QThreadPool.globalInstance()).start(self)
        return self

    def quit(self) -> None:
        """Ask a cancellable function to stop (it checks the event between steps)."""
        self.cancel_event.set()

    @property
    def is_running(self) -> bool:
        return self in _ACTIVE and not self._done.is_set()

    @property
    def is_finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the function returned or raised (tests, shutdown). True when it did."""
        return self._done.wait(timeout)

    def _emit(self, signal_name: str, *args: Any) -> None:
        """Emit one of the worker's signals; after the window (and the signals object) is gone at shutdown,
        Qt raises "Signal source has been deleted": nobody is listening any more, so that is not an error."""
        try:
            getattr(self.signals, signal_name).emit(*args)
        except RuntimeError as exc:
            log.debug("%s: %s not delivered (%s)", getattr(self.func, "__name__", "worker"), signal_name, exc)

    def run(self) -> None:  # QRunnable entry point, in the pool thread
        self._emit("started")
        started = time.perf_counter()
        try:
            self.result = self.func(*self.args, **self.kwargs)
        except Exception as exc:  # reported to the GUI, which shows a one-line message
            self.error = exc
            log.warning("%s failed: %s", getattr(self.func, "__name__", "worker"), _one_line(exc))
            log.debug("traceback", exc_info=True)
            self._done.set()
            self._emit("errored", exc)
        else:
            log.debug("%s took %.2f s", getattr(self.func, "__name__", "worker"), time.perf_counter() - started)
            self._done.set()
            self._emit("returned", self.result)
        finally:
            self._emit("finished")
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self)


def create_worker(
    func: Callable[..., Any],
    *args: Any,
    _connect: Mapping[str, Callable[..., Any]] | None = None,
    _start: bool = True,
    **kwargs: Any,
) -> FunctionWorker:
    """A worker running ``func(*args, **kwargs)``; ``_connect`` maps signal names to slots (connected first)."""
    worker = FunctionWorker(func, *args, **kwargs)
    for name, slot in (_connect or {}).items():
        getattr(worker.signals, name).connect(slot)
    return worker.start() if _start else worker


def active_workers() -> list[FunctionWorker]:
    with _ACTIVE_LOCK:
        return list(_ACTIVE)


def stop_all(timeout_s: float = 5.0) -> bool:
    """Cancel every running worker and wait for the pool to drain (application shutdown)."""
    for worker in active_workers():
        worker.quit()
    return QThreadPool.globalInstance().waitForDone(int(timeout_s * 1000))


# ----------------------------------------------------------------------------------------- the app's jobs


PREVIEW_MIN_FILES = 24  # a DICOM series with at least this many files gets a one-slice preview first
PREVIEW_MIN_NIFTI_SLICES = 64  # an uncompressed NIfTI with more axial slices than this gets one too


def read_preview(reader: str, files: Sequence[Path | str], limits: ReadLimits = DEFAULT_LIMITS) -> Case | None:
    """A first look at a big volume, as a 2D case: the middle file alone of a multi-file DICOM series, the middle
    axial slice alone of an uncompressed ``.nii`` (None otherwise, or when that slice cannot be read).

    Reading 500 slices takes seconds; one slice takes milliseconds, so the user sees pixels at once. A ``.nii.gz``
    gets no preview: its middle slice sits behind half the compressed stream, which the full read decompresses
    again."""
    if reader == "nifti" and len(files) == 1 and Path(files[0]).name.lower().endswith(".nii"):
        return _read_nifti_middle(Path(files[0]), limits)
    if reader != "dicom" or len(files) < PREVIEW_MIN_FILES:
        return None
    return _read_one_dicom(Path(sorted(str(f) for f in files)[len(files) // 2]))


def _read_nifti_middle(path: Path, limits: ReadLimits) -> Case | None:
    from engine.io.case import ReadError
    from engine.io.nifti import nifti_slice_count, read_nifti_middle_slice

    try:
        if nifti_slice_count(path) <= PREVIEW_MIN_NIFTI_SLICES:
            return None
        return read_nifti_middle_slice(path, limits)
    except (OSError, ReadError) as exc:  # the full read reports the problem
        log.debug("no preview of %s: %s", path, exc)
        return None


def folder_preview(folder: Path) -> Case | None:
    """The middle file (by name) of a folder holding a big DICOM series, read alone, before the folder scan
    (which reads every header to group the series) has even started. None for anything else."""
    from engine.io.scan import classify

    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if len(files) < PREVIEW_MIN_FILES:
        return None
    middle = files[len(files) // 2]
    return _read_one_dicom(middle) if classify(middle) == "dicom" else None


def _read_one_dicom(path: Path) -> Case | None:
    from engine.io.scan import SourceUnit, read_unit

    items = read_unit(SourceUnit("dicom", (path,), str(path)))
    return next((item for item in items if isinstance(item, Case) and item.kind == "image2d"), None)


def read_library_case(
    library: Any, case_id: int, limits: ReadLimits, progress: Callable[[Any], None] | None = None
) -> Case:
    """Re-read a catalogued case's pixels (worker thread), emitting a one-slice preview first for big DICOM
    series (through ``progress``). Files that do not say their modality (PNG, NIfTI, video) read as "OT": the
    catalog's modality (given at indexing) is put back."""
    record = library.catalog.get_case(case_id)
    if progress is not None and record.kind == "volume":
        preview = read_preview(record.reader, record.source_paths, limits)
        if preview is not None:
            progress(preview)
    if record.kind == "video" and _wants_more_frames(limits):
        limits = _video_limits(limits, record.shape_tuple[1:])  # catalog shape: T H W [3]
    case = library.read_case(case_id, limits)
    if case.modality in ("", "OT") and record.modality:
        case.modality = record.modality
    return case


def read_file_case(path: Path, limits: ReadLimits, progress: Callable[[Any], None] | None = None) -> Case:
    """The first case under a dropped file or folder (worker thread); a one-slice preview of a big DICOM series
    goes to ``progress`` first. Raises ``engine.search.SearchError`` (one line, naming the file) otherwise."""
    from engine.io.case import Failure
    from engine.io.scan import discover, read_unit
    from engine.search import SearchError

    path = Path(path)
    if not path.exists():
        raise SearchError(f"{path}: no such file or folder")
    failures: list[Failure] = []
    previewed = False
    if progress is not None:
        preview = folder_preview(path)
        if preview is not None:
            progress(preview)
            previewed = True
    for unit in discover(path, limits):
        if isinstance(unit, Failure):
            failures.append(unit)
            continue
        if progress is not None and not previewed:
            preview = read_preview(unit.reader, unit.files, limits)
            if preview is not None:
                progress(preview)
                previewed = True
        unit_limits = limits
        if unit.reader == "video" and _wants_more_frames(limits):  # probe one frame for the memory budget
            probe = next((c for c in read_unit(unit, replace(limits, video_frames=1)) if isinstance(c, Case)), None)
            if probe is not None:
                unit_limits = _video_limits(limits, probe.pixels.shape[1:])
        for item in read_unit(unit, unit_limits):
            if isinstance(item, Case):
                return item
            failures.append(item)
    raise SearchError(str(failures[0]) if failures else f"{path}: no readable case found")


def _wants_more_frames(limits: ReadLimits) -> bool:
    """True for viewing limits (more video frames than the indexing budget)."""
    return limits.video_frames is None or limits.video_frames > DEFAULT_LIMITS.video_frames


def _video_limits(limits: ReadLimits, frame_shape: Sequence[int]) -> ReadLimits:
    """``limits`` with the video frame budget that keeps a viewed clip within the viewer's memory budget."""
    from app.viewers.viewer_factory import video_frame_budget  # (Qt/VTK side module, loaded in the app anyway)

    budget = video_frame_budget(frame_shape)
    return replace(limits, video_frames=budget if limits.video_frames is None else min(budget, limits.video_frames))


def index_folders(
    library: Any,
    paths: Sequence[Path],
    progress: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    modality: str | None = None,
) -> Any:
    """Index files/folders into the library with progress and cancel (worker thread); returns the IndexReport.
    ``modality`` is given to cases whose files do not say it (PNG, JPEG, NIfTI, video)."""
    from engine.indexer import index_paths

    return index_paths(library, [Path(p) for p in paths], progress=progress, cancel=cancel, workers=workers,
                       modality=modality)


def _parameters(func: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return set()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
