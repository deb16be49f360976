"""Search results: the query, a grid of result thumbnails (rank, match score, modality, description) and the
filters (all modalities / same modality / cross-modal, a modality list, k). Changing a filter asks for a new
search. A query that is already in the library is named as "this case" above the grid, not shown as a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.library_view import pixmap_from_png

if TYPE_CHECKING:
    from engine.search import SearchFilters

RESULT_THUMB = 128
RESULT_ROLE = Qt.ItemDataRole.UserRole + 1
SCOPES = ("all", "same", "cross")
SCOPE_LABELS = {"all": "All modalities", "same": "Same modality", "cross": "Cross-modal"}
MATCH_HELP = ("Match 0-100: how close this result is compared with how close the library's cases are to their own "
              "nearest neighbour (50 = typical, 100 = as close as the closest pair).")


class ResultsView(QWidget):
    """Query summary, filter controls and the results grid."""

    resultActivated = Signal(object)  # SearchResult clicked
    filtersChanged = Signal()  # the user changed scope, modalities or k: search again

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.query_thumb = QLabel(self)
        self.query_thumb.setFixedSize(QSize(72, 72))
        self.query_thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_label = QLabel("No query yet: select a case and press Find similar, or drop a file here.", self)
        self.query_label.setWordWrap(True)
        self.status_label = QLabel("", self)
        self.labels_label = QLabel("", self)  # "7 of 10 similar cases: pneumonia" (the library's own labels)
        self.labels_label.setWordWrap(True)
        self.labels_label.setToolTip("Labels the library's users gave these cases: decision support, not a diagnosis")
        self.labels_label.hide()
        self.this_case_label = QLabel("", self)  # "This case is in the library: #12 ..." (not a result)
        self.this_case_label.setWordWrap(True)
        self.this_case_label.hide()

        self.scope_group = QButtonGroup(self)
        self.scope_buttons: dict[str, QRadioButton] = {}
        scope_row = QHBoxLayout()
        for scope in SCOPES:
            button = QRadioButton(SCOPE_LABELS[scope], self)
            self.scope_group.addButton(button)
            self.scope_buttons[scope] = button
            scope_row.addWidget(button)
        self.scope_buttons["all"].setChecked(True)
        scope_row.addSpacing(16)
        scope_row.addWidget(QLabel("k", self))
        self.k_box = QSpinBox(self)
        self.k_box.setRange(1, 200)
        self.k_box.setValue(12)
        scope_row.addWidget(self.k_box)
        scope_row.addStretch(1)
        self.modality_row = QHBoxLayout()
        self.modality_row.addWidget(QLabel("Modalities:", self))
        self.modality_boxes: dict[str, QCheckBox] = {}
        self.modality_row.addStretch(1)

        self.grid = QListWidget(self)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setIconSize(QSize(RESULT_THUMB, RESULT_THUMB))
        self.grid.setGridSize(QSize(RESULT_THUMB + 48, RESULT_THUMB + 64))
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setWordWrap(True)
        self.grid.setSpacing(6)
        self.grid.setUniformItemSizes(True)

        query_row = QHBoxLayout()
        query_row.addWidget(self.query_thumb)
        query_row.addWidget(self.query_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(query_row)
        layout.addLayout(scope_row)
        layout.addLayout(self.modality_row)
        layout.addWidget(self.labels_label)
        layout.addWidget(self.this_case_label)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.status_label)

        self.scope_group.buttonToggled.connect(lambda _b, checked: checked and self.filtersChanged.emit())
        self.k_box.valueChanged.connect(lambda _v: self.filtersChanged.emit())
        self.grid.itemClicked.connect(lambda item: self.resultActivated.emit(item.data(RESULT_ROLE)))
        self.grid.itemActivated.connect(lambda item: self.resultActivated.emit(item.data(RESULT_ROLE)))

    # ------------------------------------------------------------------------------------------ filters

    @property
    def scope(self) -> str:
        return next((s for s, b in self.scope_buttons.items() if b.isChecked()), "all")

    def set_scope(self, scope: str) -> None:
        self.scope_buttons[scope if scope in SCOPES else "all"].setChecked(True)

    @property
    def k(self) -> int:
        return int(self.k_box.value())

    def set_modalities(self, modalities: Sequence[str]) -> None:
        """Offer one check box per modality present in the library (all checked = no restriction)."""
        for box in self.modality_boxes.values():
            self.modality_row.removeWidget(box)
            box.deleteLater()
        self.modality_boxes = {}
        for modality in sorted(set(modalities)):
            box = QCheckBox(modality, self)
            box.setChecked(True)
            box.toggled.connect(lambda _checked: self.filtersChanged.emit())
            self.modality_row.insertWidget(self.modality_row.count() - 1, box)
            self.modality_boxes[modality] = box

    def checked_modalities(self) -> list[str] | None:
        """The modalities ticked, or None when all are (no restriction)."""
        ticked = [m for m, box in self.modality_boxes.items() if box.isChecked()]
        return None if len(ticked) == len(self.modality_boxes) else ticked

    def filters(self, exclude_case_ids: Sequence[int] = ()) -> "SearchFilters":
        """The engine's search filters for the current controls."""
        from engine.search import SearchFilters  # engine.search loads the vector index library: keep start fast

        return SearchFilters(
            modalities=self.checked_modalities(),
            same_modality=self.scope == "same",
            cross_modal=self.scope == "cross",
            exclude_case_ids=tuple(exclude_case_ids),
        )

    # ------------------------------------------------------------------------------------------ content

    def set_query(self, description: str, thumbnail: bytes | QPixmap | None = None) -> None:
        self.query_label.setText(description)
        pixmap = thumbnail if isinstance(thumbnail, QPixmap) else pixmap_from_png(thumbnail, 72)
        self.query_thumb.setPixmap(pixmap if pixmap is not None else QPixmap())

    def set_busy(self, message: str) -> None:
        self.status_label.setText(message)

    def set_results(self, results: Sequence[Any], empty_library: bool = False, query_case_id: int | None = None
                    ) -> None:
        """Show search results (``engine.search.SearchResults``), best first, and the library's copies of the query
        (other than ``query_case_id``, the catalogued case searched with)."""
        self.grid.clear()
        self.labels_label.hide()
        for result in results:
            item = QListWidgetItem(_item_text(result))
            pixmap = pixmap_from_png(result.thumbnail, RESULT_THUMB)
            if pixmap is not None:
                item.setIcon(QIcon(pixmap))
            match = f"match {result.match:.1f} of 100, " if result.match is not None else ""
            item.setToolTip(f"{result.path}\n{match}cosine {result.score:.4f}\n{MATCH_HELP}")
            item.setData(RESULT_ROLE, result)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.grid.addItem(item)
        this_case = [r for r in getattr(results, "this_case", []) if r.id != query_case_id]
        self.this_case_label.setText(
            "This case is in the library: " + ", ".join(f"#{r.id} {r.path}" for r in this_case)
            + " (not listed as a result)" if this_case else "")
        self.this_case_label.setVisible(bool(this_case))
        if results:
            self.status_label.setText(f"{len(results)} results")
        elif empty_library:
            self.status_label.setText("The library is empty: add a folder (File > Add folder…) first.")
        else:
            self.status_label.setText("No results with these filters.")

    def set_labels(self, labels: dict[int, dict[str, str]]) -> str:
        """Show each result's label under it and the top-k summary above the grid; returns the summary."""
        from engine.labels import LABEL_KEY, summarize  # (loads the catalog's SQLAlchemy: a search ran already)

        shown = self.results()
        for row, result in enumerate(shown):
            label = labels.get(result.case_id, {}).get(LABEL_KEY)
            self.grid.item(row).setText(_item_text(result) + (f"\n[{label}]" if label else ""))
        summary = summarize([labels.get(r.case_id, {}).get(LABEL_KEY) for r in shown])
        self.labels_label.setText(f"<b>{summary}</b> — the library's own labels: decision support, not a diagnosis"
                                  if summary else "")
        self.labels_label.setVisible(bool(summary))
        return summary

    def results(self) -> list[Any]:
        return [self.grid.item(i).data(RESULT_ROLE) for i in range(self.grid.count())]


def _item_text(result: Any) -> str:
    description = (result.description or "").strip() or result.path.rsplit("/", 1)[-1]
    if len(description) > 40:
        description = description[:38] + "…"
    return f"#{result.rank} · {result.score_text} · {result.record.modality_text}\n{description}"
