"""The main window's labels and export actions (menu *Labels* and *File > Export…*), kept out of the main window.

- Labels: the library table's labels column and label filter are filled from the catalog; *Edit labels of the
  selected case…* (Ctrl+L) and *Import labels from CSV…* (``engine.labels``); the results grid shows the top-k's
  labels ("7 of 10 similar cases: pneumonia"), marked as the library's own, not a diagnosis.
- Export (``engine.export.bundle``, in a worker): *Export results report…* (the query and its results: HTML with
  thumbnails inline, CSV, JSON; de-identified copies of the results optional) and *Export selected case
  (de-identified)…*. Identifiers are never kept from the app.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.labels_dialog import LabelsDialog
from app.workers import FunctionWorker, create_worker

log = logging.getLogger(__name__)


class LibraryTools(QObject):
    """Installs the actions on ``window`` (an ``app.main_window.MainWindow``) and implements them."""

    labelsChanged = Signal()
    exported = Signal(object)  # export.json contents

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        menu_bar = window.menuBar()
        help_action = menu_bar.actions()[-1]
        labels_menu = window.menuBar().addMenu("&Labels")
        menu_bar.insertMenu(help_action, labels_menu)
        self.edit_action = QAction("Edit labels of the selected case…", window)
        self.edit_action.setShortcut(QKeySequence("Ctrl+L"))
        self.edit_action.triggered.connect(lambda _c=False: self.edit_selected())
        self.import_action = QAction("Import labels from CSV…", window)
        self.import_action.triggered.connect(lambda _c=False: self.import_csv())
        labels_menu.addAction(self.edit_action)
        labels_menu.addAction(self.import_action)
        file_menu = menu_bar.actions()[0].menu()
        self.export_results_action = QAction("Export results report…", window)
        self.export_results_action.triggered.connect(lambda _c=False: self.export_results())
        self.export_case_action = QAction("Export selected case (de-identified)…", window)
        self.export_case_action.triggered.connect(lambda _c=False: self.export_selected())
        quit_action = file_menu.actions()[-1]
        file_menu.insertAction(quit_action, self.export_results_action)
        file_menu.insertAction(quit_action, self.export_case_action)
        file_menu.insertSeparator(quit_action)
        window.resultsShown.connect(self.show_result_labels)

    # ---- labels ------------------------------------------------------------------------------------------------

    def refresh_labels(self) -> None:
        """Fill the library table's labels column and label picker from the catalog."""
        library = self.window.library
        if library is None:
            return
        from engine.labels import labels_of

        ids = [r.id for r in self.window.library_view.model.records()]
        self.window.library_view.set_labels(labels_of(library.catalog, ids))

    def show_result_labels(self, results: list[Any]) -> str:
        """Label each result in the grid and show the top-k summary; returns the summary."""
        library = self.window.library
        if library is None or not results:
            return ""
        from engine.labels import labels_of

        return self.window.results_view.set_labels(labels_of(library.catalog, [r.case_id for r in results]))

    def apply_labels(self, case_id: int, values: dict[str, str | None]) -> None:
        """Write labels/tags of one case (None deletes a key) and refresh what shows them."""
        from engine.labels import set_labels

        set_labels(self.window.library.catalog, case_id, values)
        self._labels_changed()

    def edit_selected(self) -> LabelsDialog | None:
        record = self.window.library_view.selected_record()
        if self.window.library is None or record is None:
            self.window.show_error("Select a case in the library to label it.")
            return None
        labels = self.window.library_view.model.labels(record.id)
        dialog = LabelsDialog(f"Case {record.id}: {record.modality} {record.kind}", labels, self.window)
        dialog.accepted.connect(lambda: self.apply_labels(record.id, dialog.values()))
        dialog.open()
        return dialog

    def import_csv(self, path: Path | None = None) -> Any:
        """Import a labels CSV (``m3ret labels import``); returns the ``ImportReport`` (None when cancelled)."""
        if self.window.library is None:
            self.window.show_error("Open a library first.")
            return None
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self.window, "Import labels", str(Path.home()), "CSV (*.csv)")
            if not chosen:
                return None
            path = Path(chosen)
        from engine.labels import LabelsError, import_labels_csv

        try:
            report = import_labels_csv(self.window.library.catalog, path)
        except LabelsError as exc:
            self.window.show_error(str(exc))
            return None
        self._labels_changed()
        text = f"{report.rows} rows, {report.cases_labelled} cases labelled, {len(report.unknown)} rows match no case"
        self.window.set_status(text)
        if report.unknown and self.window.interactive:
            QMessageBox.information(self.window, "Labels imported", text + ":\n" + "\n".join(report.unknown[:20]))
        return report

    def _labels_changed(self) -> None:
        self.refresh_labels()
        query = self.window.query
        if query is not None and query.results:
            self.show_result_labels(query.results)
        self.labelsChanged.emit()

    # ---- export ------------------------------------------------------------------------------------------------

    def _choose_folder(self, title: str) -> Path | None:
        folder = QFileDialog.getExistingDirectory(self.window, title, str(Path.home()))
        return Path(folder) if folder else None

    def export_results(self, out_dir: Path | None = None, copies: bool | None = None) -> FunctionWorker | None:
        """The query and its results as a de-identified report (and copies of the results when ``copies``)."""
        query = self.window.query
        if self.window.library is None or query is None or not query.results:
            self.window.show_error("Search first: the report lists a query's results.")
            return None
        out_dir = out_dir or self._choose_folder("Export the results report to a folder")
        if out_dir is None:
            return None
        if copies is None:
            copies = self.window.interactive and QMessageBox.question(
                self.window, "Export", "Also export de-identified copies of the result cases?"
            ) == QMessageBox.StandardButton.Yes
        from engine.export.bundle import export_bundle

        results = list(query.results)
        return self._run(export_bundle, self.window.library, [r.case_id for r in results], out_dir,
                         copies=bool(copies), query=query.search_case or query.case,
                         scores={r.case_id: (r.rank, r.score) for r in results})

    def export_selected(self, out_dir: Path | None = None) -> FunctionWorker | None:
        """A de-identified copy of the selected case, with a one-row report."""
        record = self.window.library_view.selected_record()
        if self.window.library is None or record is None:
            self.window.show_error("Select a case in the library to export it.")
            return None
        out_dir = out_dir or self._choose_folder("Export the case (de-identified) to a folder")
        if out_dir is None:
            return None
        from engine.export.bundle import export_bundle

        return self._run(export_bundle, self.window.library, [record.id], out_dir, copies=True)

    def _run(self, func: Any, *args: Any, **kwargs: Any) -> FunctionWorker:
        self.window.set_status("Exporting…")

        def done(doc: dict) -> None:
            warnings = [w for case in doc["cases"] for w in case["warnings"]]
            self.window.set_status(f"Exported {len(doc['cases'])} case(s) and the report to {doc['out']}"
                                   + (f" ({len(warnings)} warning(s): burned-in text)" if warnings else ""))
            self.exported.emit(doc)

        return create_worker(func, *args, **kwargs, _connect={"returned": done, "errored": self.window._job_failed})
