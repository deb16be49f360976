"""The main window: library table (dock), viewer / results / compare tabs, indexing progress, failures dock.

Every engine call runs in a worker (``app.workers``); the window only receives numpy-backed Cases, catalog
records and reports. Heavy engine modules (catalog, encoder, vector index) are imported by those workers, so the
window appears before they are loaded.

Flows: open a library folder -> table; select a row -> the case in its viewer; "Find similar" (or drop a
file/folder on the window) -> results grid; click a result -> compare view; "Add folder…" -> indexing in the
background with a progress bar and a Cancel button; unreadable files are listed in the failures dock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QWidget,
)

from engine.config import DEFAULT_LIMITS
from engine.io.case import Case
from engine.modality import describe as describe_modality
from app.about import AboutDialog
from app.compare_view import CompareView
from app.library_tools import LibraryTools
from app.library_view import LibraryView
from app.results_view import ResultsView
from app.settings import AppSettings
from app.viewers.base import CaseViewer, dispose_viewer
from app.viewers.viewer_factory import viewer_class, viewer_read_limits
from app.window_level import configure_presets
from app.workers import FunctionWorker, create_worker, index_folders, read_file_case, read_library_case, stop_all

log = logging.getLogger(__name__)

VIEWER_TAB, RESULTS_TAB, COMPARE_TAB = range(3)
MODALITY_CHOICES: tuple[tuple[str, str | None], ...] = (
    ("Read from the files (DICOM) / unknown", None), ("CT", "CT"), ("MR", "MR"), ("Ultrasound (US)", "US"),
    ("X-ray (XR)", "XR"), ("Endoscopy (ES)", "ES"), ("Mammography (MG)", "MG"), ("Other (OT)", "OT"),
)


@dataclass
class Query:
    """What "Find similar" searches with: a catalogued case (its stored vector) or a case read from a file."""

    case: Case
    title: str
    case_id: int | None = None
    thumbnail: bytes | None = None
    search_case: Case | None = None  # the case as read for embedding (videos: the indexing frame budget)
    results: list[Any] = field(default_factory=list)
    searched: bool = False  # a search ran: filter changes re-run it


def open_library_job(path: Path | None, model_path: Path | None) -> tuple[Any, list[Any], list[Any]]:
    """Open a library and list its cases and failures (worker thread)."""
    from engine.library import Library

    library = Library.open(path, model_path=model_path)
    try:
        return library, library.catalog.list_cases(), library.catalog.failures()
    except Exception:
        library.close()
        raise


def warm_up_job() -> None:
    """Import the engine modules a first query needs, while the user looks at the window (worker thread)."""
    import engine.io.scan  # noqa: F401
    import engine.search  # noqa: F401
    import engine.thumbnails  # noqa: F401


def list_library_job(library: Any) -> tuple[list[Any], list[Any]]:
    """Re-list a library's cases and failures (worker thread)."""
    return library.catalog.list_cases(), library.catalog.failures()


def read_query_job(path: Path, progress: Callable[[Any], None] | None = None) -> Query:
    """Read a dropped file/folder for viewing and for searching, and make its thumbnail (worker thread); a
    one-slice preview of a big DICOM series goes to ``progress`` first."""
    from engine.thumbnails import make_thumbnail

    shown = read_file_case(path, viewer_read_limits(), progress)
    searched = read_file_case(path, DEFAULT_LIMITS) if shown.kind == "video" else shown
    return Query(case=shown, title=f"Query: {path.name}", thumbnail=make_thumbnail(searched), search_case=searched)


def search_job(library: Any, query: Query, k: int, filters: Any) -> list[Any]:
    """Search with the stored vector of a catalogued case, or embed the query case now (worker thread)."""
    from engine.search import search_by_case, search_by_clip_case

    if query.case_id is not None:
        return search_by_case(library, query.case_id, k=k, filters=filters)
    return search_by_clip_case(library, query.search_case or query.case, k=k, filters=filters)


class MainWindow(QMainWindow):
    """M3Ret's main window."""

    libraryOpened = Signal(object)  # engine Library
    caseShown = Signal(object)  # Case now in the viewer tab
    previewShown = Signal(object)  # one slice of a big series, shown while the whole series is read
    resultsShown = Signal(list)  # SearchResults in the grid
    compareShown = Signal()
    indexProgress = Signal(object)  # IndexProgress, as shown on the progress bar
    indexingFinished = Signal(object)  # IndexReport (also when cancelled)
    errorShown = Signal(str)

    def __init__(self, settings: AppSettings | None = None, model_path: Path | None = None,
                 interactive: bool = True) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.model_path = model_path
        self.interactive = interactive  # False in tests: errors go to the status bar only, no message boxes
        self.library: Any = None
        self.query: Query | None = None
        self.viewer: CaseViewer | None = None  # the one on screen
        self._viewers: dict[type, CaseViewer] = {}  # one per kind
        self.index_worker: FunctionWorker | None = None
        self.last_error = ""
        self._request = 0  # newest case-read request; older answers are dropped
        self._search_request = 0
        self._dialogs: list[QWidget] = []
        configure_presets(self.settings.window_presets())

        self.setWindowTitle("M3Ret — similar case retrieval")
        self.setAcceptDrops(True)
        self.library_view = LibraryView(self)
        self.results_view = ResultsView(self)
        self.results_view.k_box.setValue(self.settings.k)
        self.results_view.set_scope(self.settings.modality_scope)
        self.compare_view = CompareView(self)
        self.viewer_stack = QStackedWidget(self)
        self.viewer_placeholder = QLabel(
            "Select a case in the library, or drop a file or folder (DICOM, NIfTI, video, image) here.", self)
        self.viewer_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.viewer_placeholder.setWordWrap(True)
        self.viewer_stack.addWidget(self.viewer_placeholder)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.viewer_stack, "Viewer")
        self.tabs.addTab(self.results_view, "Results")
        self.tabs.addTab(self.compare_view, "Compare")
        self.setCentralWidget(self.tabs)

        self.library_dock = QDockWidget("Library", self)
        self.library_dock.setObjectName("library_dock")
        self.library_dock.setWidget(self.library_view)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.library_dock)
        self.resizeDocks([self.library_dock], [440], Qt.Orientation.Horizontal)
        self.failures_table = QTableWidget(0, 2, self)
        self.failures_table.setHorizontalHeaderLabels(["Path", "Reason"])
        self.failures_table.horizontalHeader().setStretchLastSection(True)
        self.failures_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.failures_dock = QDockWidget("Files that could not be read", self)
        self.failures_dock.setObjectName("failures_dock")
        self.failures_dock.setWidget(self.failures_table)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.failures_dock)
        self.failures_dock.hide()

        self.status_label = QLabel("", self)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop indexing (what was indexed so far is kept)")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress_bar)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.progress_bar.hide()
        self.cancel_button.hide()

        self._make_actions()
        self.library_tools = LibraryTools(self)  # labels (column, filter, editing, CSV import) and export
        self.library_view.caseSelected.connect(self.open_record)
        self.library_view.caseActivated.connect(lambda record: self.find_similar())
        self.results_view.filtersChanged.connect(self._filters_changed)
        self.results_view.resultActivated.connect(self.open_result)
        self.cancel_button.clicked.connect(self.cancel_indexing)
        self.resize(1280, 820)
        self.settings.restore_window(self)

    # ----------------------------------------------------------------------------------------- actions

    def _make_actions(self) -> None:
        shortcuts = self.settings.shortcuts()

        def action(name: str, text: str, slot: Callable[[], Any]) -> QAction:
            act = QAction(text, self)
            if name in shortcuts:
                act.setShortcut(QKeySequence(shortcuts[name]))
            act.triggered.connect(lambda _checked=False: slot())
            self.actions_by_name[name] = act
            return act

        self.actions_by_name: dict[str, QAction] = {}
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(action("open_library", "Open library…", self.choose_library))
        self.recent_menu = file_menu.addMenu("Recent libraries")
        self._fill_recent_menu()
        file_menu.addAction(action("add_folder", "Add folder…", self.choose_folder_to_index))
        file_menu.addAction(action("open_file", "Open file as query…", self.choose_query_file))
        file_menu.addAction(action("pacs", "PACS…", self.show_pacs))
        file_menu.addSeparator()
        file_menu.addAction(action("quit", "Quit", self.close))
        search_menu = self.menuBar().addMenu("&Search")
        search_menu.addAction(action("find_similar", "Find similar", self.find_similar))
        search_menu.addAction(action("cancel_indexing", "Cancel indexing", self.cancel_indexing))
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.library_dock.toggleViewAction())
        failures = self.failures_dock.toggleViewAction()
        failures.setShortcut(QKeySequence(shortcuts["show_failures"]))
        view_menu.addAction(failures)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(action("about", "About M3Ret…", self.show_about))

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("main_toolbar")
        for name in ("open_library", "add_folder", "open_file", "find_similar"):
            toolbar.addAction(self.actions_by_name[name])
        self.addToolBar(toolbar)
        self.actions_by_name["find_similar"].setEnabled(False)
        self.actions_by_name["cancel_indexing"].setEnabled(False)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_libraries:
            act = self.recent_menu.addAction(str(path))
            act.triggered.connect(lambda _checked=False, p=path: self.open_library(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_libraries))

    # ----------------------------------------------------------------------------------------- library

    def choose_library(self) -> None:
        start = str(self.library.path if self.library is not None else Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open or create a library folder", start)
        if folder:
            self.open_library(Path(folder))

    def open_library(self, path: Path | None) -> FunctionWorker | None:
        """Open a library folder (None = the default library) in a worker; the table fills when it is read."""
        if self.indexing:
            self.show_error("Wait for indexing to finish (or cancel it) before switching libraries.")
            return None
        self.set_status(f"Opening library {path or 'default'}…")
        return create_worker(open_library_job, path, self.model_path,
                             _connect={"returned": self._library_opened, "errored": self._job_failed})

    def _library_opened(self, answer: tuple[Any, list[Any], list[Any]]) -> None:
        library, records, failures = answer
        if self.library is not None and self.library is not library:
            self.library.close()
        self.library = library
        self.settings.last_library = library.path
        self._fill_recent_menu()
        self._show_records(records, failures)
        self.setWindowTitle(f"M3Ret — {library.path.name}")
        self.set_status(f"Library {library.path}: {len(records)} cases")
        self.actions_by_name["find_similar"].setEnabled(self.query is not None)
        create_worker(warm_up_job)
        self.libraryOpened.emit(library)

    def reload_library(self) -> FunctionWorker | None:
        if self.library is None:
            return None
        return create_worker(list_library_job, self.library,
                             _connect={"returned": lambda a: self._show_records(*a), "errored": self._job_failed})

    def _show_records(self, records: list[Any], failures: list[Any]) -> None:
        self.library_view.set_records(records)
        self.library_tools.refresh_labels()
        self.results_view.set_modalities(sorted({r.modality for r in records if r.modality}))
        self.show_failures([(f.path, f.reason) for f in failures], reveal=False)

    # ------------------------------------------------------------------------------------------ viewing

    def open_record(self, record: Any) -> FunctionWorker | None:
        """Read a catalogued case in a worker and show it in the viewer tab."""
        if self.library is None or record is None:
            return None
        self._request += 1
        request = self._request
        self.set_status(f"Reading case {record.id}…")
        title = f"Case {record.id}: {record.modality_text} {record.kind} — {record.description or record.path}"

        def shown(case: Case) -> None:
            if request == self._request:
                self._show_query(Query(case=case, title=title, case_id=record.id, thumbnail=record.thumbnail))

        return create_worker(read_library_case, self.library, record.id, viewer_read_limits(),
                             _connect={"returned": shown, "errored": self._job_failed,
                                       "progress": lambda preview: self._show_preview(preview, request)})

    def open_query_path(self, path: Path, search: bool = True) -> FunctionWorker:
        """Read a file or folder as the query, show it, and search with it when a library is open."""
        self._request += 1
        request = self._request
        self.set_status(f"Reading {path}…")

        def shown(query: Query) -> None:
            if request != self._request:
                return
            self._show_query(query)
            if search:
                self.find_similar()

        return create_worker(read_query_job, Path(path), _connect={
            "returned": shown, "errored": self._job_failed,
            "progress": lambda preview: self._show_preview(preview, request)})

    def choose_query_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a file as the query", str(Path.home()))
        if path:
            self.open_query_path(Path(path))

    def _show_query(self, query: Query) -> None:
        self.query = query
        self.show_case(query.case)
        self.results_view.set_query(query.title, query.thumbnail)
        self.actions_by_name["find_similar"].setEnabled(True)
        self.set_status(query.title)

    def _show_preview(self, preview: Case, request: int) -> None:
        if request != self._request:
            return
        self.show_case(preview, preview=True)
        self.set_status("Preview: the middle slice; reading the whole series…")

    def show_case(self, case: Case, preview: bool = False) -> CaseViewer:
        """Put ``case`` in the viewer tab (a viewer made for its kind); ``preview``: a stand-in slice."""
        cls = viewer_class(case)
        if self.viewer is not None and type(self.viewer) is not cls:
            self.viewer.shutdown()  # stop a playing video
        viewer = self._viewers.get(cls)
        if viewer is None:  # one viewer per kind, kept: its OpenGL windows and shaders are built once
            viewer = self._viewers[cls] = cls(self.viewer_stack)
            viewer.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 3000))
            self.viewer_stack.addWidget(viewer)
        self.viewer_stack.setCurrentWidget(viewer)
        if viewer.case is not case:
            viewer.set_case(case)
        self.viewer = viewer
        self.tabs.setCurrentIndex(VIEWER_TAB)
        (self.previewShown if preview else self.caseShown).emit(case)
        return self.viewer

    # ------------------------------------------------------------------------------------------ search

    def find_similar(self) -> FunctionWorker | None:
        """Search the library with the current query (results tab)."""
        if self.query is None:
            self.show_error("Nothing to search with: select a case or drop a file first.")
            return None
        if self.library is None:
            self.show_error("Open a library to search in.")
            return None
        self.settings.k = self.results_view.k
        self.settings.modality_scope = self.results_view.scope
        self._search_request += 1
        request = self._search_request
        query = self.query
        filters = self.results_view.filters()
        self.results_view.set_query(query.title, query.thumbnail)
        self.results_view.set_busy("Searching…")
        self.tabs.setCurrentIndex(RESULTS_TAB)

        def found(results: list[Any]) -> None:
            if request != self._search_request:
                return
            query.results = results
            query.searched = True
            predicted = getattr(results, "query_prediction", None)  # the query file did not say its modality
            if predicted is not None:
                shown = describe_modality(predicted.modality, predicted.predicted, predicted.confidence)
                self.results_view.set_query(f"{query.title} ({shown})", query.thumbnail)
            self.results_view.set_results(results, empty_library=self.library.catalog.count_cases() == 0,
                                          query_case_id=query.case_id)
            self.set_status(f"{len(results)} similar cases")
            self.resultsShown.emit(results)

        def failed(exc: Exception) -> None:
            self.results_view.set_busy("")
            self._job_failed(exc)

        return create_worker(search_job, self.library, query, self.results_view.k, filters,
                             _connect={"returned": found, "errored": failed})

    def _filters_changed(self) -> None:
        if self.query is not None and self.library is not None and self.query.searched:
            self.find_similar()

    def open_result(self, result: Any) -> FunctionWorker | None:
        """Read a result's case and show it next to the query (compare tab)."""
        if self.library is None or self.query is None or result is None:
            return None
        query = self.query
        self.set_status(f"Reading result {result.rank} (case {result.case_id})…")

        def shown(case: Case) -> None:
            title = (f"Result #{result.rank}, {result.score_text}: {result.record.modality_text} {result.kind} — "
                     f"{result.description or result.path}")
            self.compare_view.set_pair(query.case, case, query.title, title, library=self.library)
            self.tabs.setCurrentIndex(COMPARE_TAB)
            self.set_status(self.compare_view.info.text())
            self.compareShown.emit()

        return create_worker(read_library_case, self.library, result.case_id, viewer_read_limits(),
                             _connect={"returned": shown, "errored": self._job_failed})

    # ---------------------------------------------------------------------------------------- indexing

    @property
    def indexing(self) -> bool:
        return self.index_worker is not None and not self.index_worker.is_finished

    def choose_folder_to_index(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to the library", str(Path.home()))
        if not folder:
            return
        labels = [label for label, _code in MODALITY_CHOICES]
        label, ok = QInputDialog.getItem(
            self, "Modality", "Modality of files that do not say it (PNG, JPEG, NIfTI, video):", labels, 0, False)
        if ok:
            self.add_paths([Path(folder)], modality=dict(MODALITY_CHOICES)[label])

    def add_paths(self, paths: Sequence[Path], workers: int | None = None,
                  modality: str | None = None) -> FunctionWorker | None:
        """Index files/folders into the open library in the background (progress bar + Cancel); ``modality``
        names files that do not carry one (DICOM files keep their own)."""
        if self.library is None:
            self.show_error("Open a library first.")
            return None
        if self.indexing:
            self.show_error("Indexing is already running.")
            return None
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setFormat("Looking for files…")
        self.progress_bar.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()
        self.actions_by_name["cancel_indexing"].setEnabled(True)
        self.set_status(f"Indexing {', '.join(str(p) for p in paths)}…")
        self.index_worker = create_worker(
            index_folders, self.library, list(paths), workers=workers, modality=modality,
            _connect={"progress": self._index_progress, "returned": self._index_done, "errored": self._index_failed},
        )
        return self.index_worker

    def cancel_indexing(self) -> None:
        if self.indexing:
            self.index_worker.quit()
            self.cancel_button.setEnabled(False)
            self.progress_bar.setFormat("Cancelling…")
            self.set_status("Cancelling indexing: finishing the current case…")

    def _index_progress(self, progress: Any) -> None:
        if progress.total:
            self.progress_bar.setRange(0, int(progress.total))
            self.progress_bar.setValue(int(progress.done))
            self.progress_bar.setFormat(f"{progress.stage} %v/%m")
        else:
            self.progress_bar.setRange(0, 0)
            self.progress_bar.setFormat(f"{progress.stage} ({progress.done})")
        name = Path(progress.current_path).name if progress.current_path else ""
        if progress.stage == "waiting":  # another process writes to this library (engine.library_lock)
            name = progress.current_path
        failed = f", {progress.n_failed} failed" if progress.n_failed else ""
        self.set_status(f"Indexing: {progress.stage} {name}{failed}")
        self.indexProgress.emit(progress)

    def _index_done(self, report: Any) -> None:
        self._end_indexing()
        self.set_status(("Indexing cancelled: " if report.cancelled else "Indexing done: ") + report.summary())
        if report.failures:
            self.show_failures([(str(f.path), f.reason) for f in report.failures], reveal=True)
        self.reload_library()
        self.indexingFinished.emit(report)

    def _index_failed(self, exc: Exception) -> None:
        self._end_indexing()
        self._job_failed(exc)

    def _end_indexing(self) -> None:
        self.progress_bar.hide()
        self.cancel_button.hide()
        self.actions_by_name["cancel_indexing"].setEnabled(False)

    def show_failures(self, failures: Sequence[tuple[str, str]], reveal: bool) -> None:
        """List unreadable files with their reasons in the failures dock."""
        self.failures_table.setRowCount(len(failures))
        for row, (path, reason) in enumerate(failures):
            self.failures_table.setItem(row, 0, QTableWidgetItem(str(path)))
            self.failures_table.setItem(row, 1, QTableWidgetItem(reason))
        self.failures_table.resizeColumnToContents(0)
        if reveal and failures:
            self.failures_dock.show()

    # ------------------------------------------------------------------------------------------- misc

    def show_about(self) -> AboutDialog:
        from engine.encoder import default_model_path  # noqa: PLC0415 (loads onnxruntime)

        path = self.model_path or (self.library.model_path if self.library is not None else None)
        dialog = AboutDialog(path or default_model_path(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_pacs(self) -> QWidget:
        from app.pacs_dialog import show_pacs_dialog  # noqa: PLC0415 (DICOM networking only when asked)

        return show_pacs_dialog(self)

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def show_error(self, message: str) -> None:
        """A one-line error in the status bar (and a non-blocking message box in the interactive app)."""
        self.last_error = message
        log.warning("%s", message)
        self.set_status(message)
        self.errorShown.emit(message)
        if self.interactive:
            box = QMessageBox(QMessageBox.Icon.Warning, "M3Ret", message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    def _job_failed(self, exc: Exception) -> None:
        text = " ".join(str(exc).split()) or type(exc).__name__
        self.show_error(text if len(text) < 400 else text[:397] + "…")

    # --------------------------------------------------------------------------------------- drag/drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        QTimer.singleShot(0, lambda: self.open_query_path(paths[0]))

    # ---------------------------------------------------------------------------------------- shutdown

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.save_window(self)
        self.settings.sync()
        if self.index_worker is not None:
            self.index_worker.quit()
        stop_all(timeout_s=10.0)
        for viewer in self._viewers.values():
            dispose_viewer(viewer)
        self._viewers.clear()
        self.viewer = None
        self.compare_view.clear()
        if self.library is not None:
            self.library.close()
            self.library = None
        super().closeEvent(event)
