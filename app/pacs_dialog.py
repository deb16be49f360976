"""The PACS dialog (*File > PACS…*): nodes from ``pacs.ini``, C-ECHO, C-FIND, C-GET of the selected studies with a
progress bar, and the DICOM listener (``engine.pacs.storage_scp``) started and stopped from the app.

Network work runs in workers (``app.workers``); retrieved studies and series the listener completes are indexed
into the window's library folder through a second ``Library`` handle, then the window's library refreshes its
vector index and list (``libraryChanged``). The dialog is non-modal and kept while the window lives, so the
listener goes on receiving when it is hidden; it stops when the application quits.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QComboBox, QDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from engine.pacs import PacsError
from engine.pacs.nodes import Node, PacsSettings
from app.workers import FunctionWorker, create_worker

log = logging.getLogger(__name__)

COLUMNS = ("Patient ID", "Name", "Date", "Accession", "Modalities", "Series", "Instances", "Study UID")


# ---- jobs (worker threads; no widgets) ---------------------------------------------------------------------------


def echo_job(node: Node, calling_ae: str) -> Node:
    from engine.pacs.query_retrieve import echo

    echo(node, calling_ae)
    return node


def find_job(node: Node, calling_ae: str, patient_id: str, accession: str, study_date: str) -> list[Any]:
    from engine.pacs.query_retrieve import find_studies

    return find_studies(node, calling_ae, patient_id=patient_id, accession=accession, study_date=study_date,
                        with_series=False)


def retrieve_job(node: Node, calling_ae: str, study_uids: list[str], library_dir: Path, model_path: Path | None,
                 progress: Any = None, cancel: threading.Event | None = None) -> Any:
    """C-GET each study into the library's inbox, then index what arrived; the ``IndexReport``."""
    from engine.indexer import IndexReport, index_paths
    from engine.library import Library
    from engine.pacs.inbox import Inbox
    from engine.pacs.query_retrieve import get_study

    series: list[Path] = []
    inbox = Inbox(library_dir)
    for number, uid in enumerate(study_uids, 1):
        if cancel is not None and cancel.is_set():
            break
        result = get_study(node, calling_ae, uid, inbox,
                           progress=(lambda p, n=number: progress((n, len(study_uids), p))) if progress else None)
        series += result.series_dirs
    if not series:
        return IndexReport()
    with Library.open(library_dir, model_path=model_path) as library:
        return index_paths(library, series, cancel=cancel)


def refresh_library_job(library: Any) -> tuple[list[Any], list[Any]]:
    """After indexing through another handle: top the window's vector index up, list cases and failures."""
    library.refresh_index()
    return library.catalog.list_cases(), library.catalog.failures()


# ---- the dialog ------------------------------------------------------------------------------------------------


class PacsDialog(QDialog):
    """Query/retrieve and listener controls for one library folder."""

    libraryChanged = Signal()  # cases were added to the library folder (retrieved or received)
    listenerIndexed = Signal(object)  # IndexReport of series the listener completed (emitted from its thread)

    def __init__(self, library_dir: Path, model_path: Path | None = None, settings_path: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS")
        self.library_dir = Path(library_dir)
        self.model_path = model_path
        self.settings = PacsSettings.load(settings_path)
        self.studies: list[Any] = []
        self.worker: FunctionWorker | None = None
        self.listener: Any = None
        self._listener_library: Any = None
        self.last_report: Any = None

        self.node_box = QComboBox(self)
        self.node_box.setEditable(True)
        self.node_box.addItems(sorted(self.settings.nodes))
        self.node_box.lineEdit().setPlaceholderText("node name or AE@HOST:PORT")
        self.echo_button = QPushButton("Test (C-ECHO)", self)
        self.patient_edit = QLineEdit(self)
        self.accession_edit = QLineEdit(self)
        self.date_edit = QLineEdit(self)
        self.date_edit.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.find_button = QPushButton("Find", self)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.retrieve_button = QPushButton("Retrieve selected", self)
        self.retrieve_button.setEnabled(False)
        self.progress = QProgressBar(self)
        self.progress.hide()
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.listen_button = QPushButton("Start listener", self)
        self.listen_button.setCheckable(True)
        self.listener_status = QLabel(self._listener_text(), self)
        self.listener_status.setWordWrap(True)

        node_row = QHBoxLayout()
        node_row.addWidget(QLabel("Node:", self))
        node_row.addWidget(self.node_box, 1)
        node_row.addWidget(self.echo_button)
        query = QFormLayout()
        query.addRow("Patient ID", self.patient_edit)
        query.addRow("Accession", self.accession_edit)
        query.addRow("Study date", self.date_edit)
        query.addRow("", self.find_button)
        retrieve_row = QHBoxLayout()
        retrieve_row.addWidget(self.retrieve_button)
        retrieve_row.addWidget(self.progress, 1)
        listener_box = QGroupBox("Listener (receive studies pushed by the PACS)", self)
        listener_layout = QHBoxLayout(listener_box)
        listener_layout.addWidget(self.listen_button)
        listener_layout.addWidget(self.listener_status, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(node_row)
        layout.addLayout(query)
        layout.addWidget(self.table, 1)
        layout.addLayout(retrieve_row)
        layout.addWidget(self.status)
        layout.addWidget(listener_box)
        self.resize(900, 560)

        self.echo_button.clicked.connect(self.echo)
        self.find_button.clicked.connect(self.find)
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.table.itemSelectionChanged.connect(
            lambda: self.retrieve_button.setEnabled(bool(self.selected_study_uids()) and not self.busy))
        self.listen_button.toggled.connect(self._listen_toggled)
        self.listenerIndexed.connect(self._listener_indexed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop_listener)

    # ---- helpers ---------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def node(self) -> Node:
        """The node chosen or typed; ``PacsError`` when it is neither a known name nor ``AE@HOST:PORT``."""
        return self.settings.node(self.node_box.currentText())

    def selected_study_uids(self) -> list[str]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.studies[row].study_uid for row in rows if row < len(self.studies)]

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def _run(self, label: str, func: Any, *args: Any, returned: Any, progress: Any = None) -> FunctionWorker | None:
        if self.busy:
            self.set_status("Wait for the current operation to finish.")
            return None
        try:
            node = self.node()
        except PacsError as exc:
            self.set_status(str(exc))
            return None
        self.set_status(f"{label} {node}…")
        for button in (self.echo_button, self.find_button, self.retrieve_button):
            button.setEnabled(False)
        connect = {"returned": returned, "errored": self._failed, "finished": self._finished}
        if progress is not None:
            connect["progress"] = progress
        self.worker = create_worker(func, node, self.settings.ae_title, *args, _connect=connect)
        return self.worker

    def _failed(self, exc: Exception) -> None:
        self.set_status(" ".join(str(exc).split()) or type(exc).__name__)

    def _finished(self) -> None:
        self.echo_button.setEnabled(True)
        self.find_button.setEnabled(True)
        self.retrieve_button.setEnabled(bool(self.selected_study_uids()))

    # ---- C-ECHO / C-FIND / C-GET -------------------------------------------------------------------------------

    def echo(self) -> FunctionWorker | None:
        return self._run("C-ECHO", echo_job, returned=lambda node: self.set_status(f"{node}: C-ECHO ok"))

    def find(self) -> FunctionWorker | None:
        return self._run("Searching", find_job, self.patient_edit.text().strip(),
                         self.accession_edit.text().strip(), self.date_edit.text().strip(),
                         returned=self._show_studies)

    def _show_studies(self, studies: list[Any]) -> None:
        self.studies = studies
        self.table.setRowCount(len(studies))
        for row, study in enumerate(studies):
            f = study.fields
            values = (f["PatientID"], f["PatientName"], f["StudyDate"], f["AccessionNumber"], f["ModalitiesInStudy"],
                      f["NumberOfStudyRelatedSeries"], f["NumberOfStudyRelatedInstances"], study.study_uid)
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.set_status(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} found")

    def retrieve_selected(self) -> FunctionWorker | None:
        uids = self.selected_study_uids()
        if not uids:
            self.set_status("Select one or more studies first.")
            return None
        self.progress.setRange(0, 0)
        self.progress.show()
        return self._run(f"Retrieving {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} from", retrieve_job, uids,
                         self.library_dir, self.model_path, returned=self._retrieved, progress=self._progress)

    def _progress(self, state: tuple[int, int, Any]) -> None:
        number, total, step = state
        done = step.completed + step.failed + step.warning
        if step.remaining is not None:
            self.progress.setRange(0, done + step.remaining)
            self.progress.setValue(done)
        self.progress.setFormat(f"study {number}/{total}: %v/%m instances")

    def _retrieved(self, report: Any) -> None:
        self.progress.hide()
        self.last_report = report
        self.set_status(f"Retrieved and indexed: {report.summary()}")
        if report.n_embedded or report.n_failed:
            self.libraryChanged.emit()

    # ---- listener --------------------------------------------------------------------------------------------

    def _listener_text(self) -> str:
        allow = ", ".join(self.settings.allow) or "nobody (set allow = in pacs.ini)"
        state = "running" if self.listener is not None else "stopped"
        return f"{state}: {self.settings.ae_title} on port {self.settings.port}, accepting {allow}"

    def _listen_toggled(self, on: bool) -> None:
        if on:
            self.start_listener()
        else:
            self.stop_listener()

    def start_listener(self) -> bool:
        """Start the storage SCP on the settings' AE title and port; False (with the reason shown) on failure."""
        if self.listener is not None:
            return True
        from engine.library import Library
        from engine.pacs.storage_scp import StorageSCP

        library = Library.open(self.library_dir, model_path=self.model_path)
        try:
            listener = StorageSCP(library, self.settings.ae_title, self.settings.port, self.settings.allow,
                                  self.settings.settle_seconds, on_indexed=lambda _d, r: self.listenerIndexed.emit(r))
            listener.start()
        except PacsError as exc:
            library.close()
            self.listener_status.setText(str(exc))
            self.listen_button.blockSignals(True)
            self.listen_button.setChecked(False)
            self.listen_button.blockSignals(False)
            return False
        self.listener, self._listener_library = listener, library
        self.listen_button.setText("Stop listener")
        self.listener_status.setText(self._listener_text())
        return True

    def stop_listener(self) -> None:
        if self.listener is None:
            return
        self.listener.stop()
        self._listener_library.close()
        self.listener = self._listener_library = None
        self.listen_button.blockSignals(True)
        self.listen_button.setChecked(False)
        self.listen_button.blockSignals(False)
        self.listen_button.setText("Start listener")
        self.listener_status.setText(self._listener_text())

    def _listener_indexed(self, report: Any) -> None:
        self.last_report = report
        received = self.listener.stats.received if self.listener is not None else 0
        self.listener_status.setText(f"{self._listener_text()} — {received} instance(s) received; last series: "
                                     f"{report.summary()}")
        self.libraryChanged.emit()


def show_pacs_dialog(window: Any) -> PacsDialog:
    """Open (or raise) the window's PACS dialog; the window's library refreshes when cases arrive."""
    dialog = getattr(window, "pacs_dialog", None)
    if dialog is None:
        library_dir = window.library.path if window.library is not None else None
        settings = PacsSettings.load()
        if library_dir is None:
            from engine.config import default_library_dir

            library_dir = settings.library or default_library_dir()
        model_path = window.library.model_path if window.library is not None else window.model_path
        dialog = PacsDialog(library_dir, model_path, parent=window)
        dialog.setWindowFlag(Qt.WindowType.Window)

        def refresh() -> None:
            if window.library is not None:
                create_worker(refresh_library_job, window.library,
                              _connect={"returned": lambda answer: window._show_records(*answer),
                                        "errored": window._job_failed})

        dialog.libraryChanged.connect(refresh)
        window.pacs_dialog = dialog
    elif window.library is not None and dialog.listener is None:
        dialog.library_dir = window.library.path  # follows the window's library while not listening
    dialog.show()
    dialog.raise_()
    return dialog
