"""The library's catalog as a sortable, filterable table: thumbnail, modality, kind, patient, date, the library's
own labels and tags, description.

``CaseTableModel`` (QAbstractTableModel over ``CaseRecord``s and their labels) + ``CaseFilterProxy``
(QSortFilterProxyModel: free text over modality, patient, description, path and labels; modality, kind and label
pickers) + ``LibraryView`` (the widget).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSize, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

# The description (or file name) comes first after the thumbnail, DESCRIPTION_WIDTH wide and elided in the middle,
# so a narrow library dock still shows what each case is; the short columns size to their contents after it.
COLUMNS: tuple[str, ...] = ("", "Description", "Modality", "Kind", "Patient", "Study date", "Labels")
THUMB_COLUMN, DESCRIPTION_COLUMN, MODALITY_COLUMN, KIND_COLUMN, PATIENT_COLUMN, DATE_COLUMN, LABELS_COLUMN = range(7)
LABEL_KEY = "label"  # engine.labels.LABEL_KEY (not imported: engine.labels loads the catalog's SQLAlchemy)
THUMB_SIZE = 56
DESCRIPTION_WIDTH = 200
KIND_LABELS = {"image2d": "2D image", "volume": "3D volume", "video": "video"}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RECORD_ROLE = Qt.ItemDataRole.UserRole + 2


def pixmap_from_png(data: bytes | None, size: int = THUMB_SIZE) -> QPixmap | None:
    """A QPixmap of at most ``size`` px from PNG bytes (None when there are none or they do not decode)."""
    if not data:
        return None
    pixmap = QPixmap()
    if not pixmap.loadFromData(bytes(data), "PNG"):
        return None
    return pixmap.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


class CaseTableModel(QAbstractTableModel):
    """Rows = catalogued cases (``CaseRecord``), columns = ``COLUMNS``."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._records: list[Any] = []
        self._pixmaps: dict[int, QPixmap | None] = {}
        self._labels: dict[int, dict[str, str]] = {}

    def set_records(self, records: Sequence[Any]) -> None:
        self.beginResetModel()
        self._records = list(records)
        self._pixmaps = {}
        self.endResetModel()

    def set_labels(self, labels: dict[int, dict[str, str]]) -> None:
        """The labels and tags of the cases (``engine.labels.labels_of``)."""
        self._labels = dict(labels)
        if self._records:
            self.dataChanged.emit(self.index(0, LABELS_COLUMN), self.index(len(self._records) - 1, LABELS_COLUMN))

    def labels(self, case_id: int) -> dict[str, str]:
        return self._labels.get(case_id, {})

    def record(self, row: int) -> Any:
        return self._records[row]

    def records(self) -> list[Any]:
        return list(self._records)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self._records[index.row()]
        column = index.column()
        if role == RECORD_ROLE:
            return record
        if role == Qt.ItemDataRole.DecorationRole and column == THUMB_COLUMN:
            if record.id not in self._pixmaps:
                self._pixmaps[record.id] = pixmap_from_png(record.thumbnail)
            return self._pixmaps[record.id]
        if role == Qt.ItemDataRole.ToolTipRole:
            return record.path
        if column == LABELS_COLUMN and role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
            return labels_text(self.labels(record.id))
        if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
            return _cell(record, column, for_sort=role == SORT_ROLE)
        return None


def labels_text(labels: dict[str, str]) -> str:
    """``"pneumonia; site=A"``: the label first, then the tags."""
    tags = [f"{k}={v}" for k, v in sorted(labels.items()) if k != LABEL_KEY]
    return "; ".join(([labels[LABEL_KEY]] if LABEL_KEY in labels else []) + tags)


def _cell(record: Any, column: int, for_sort: bool) -> Any:
    if column == THUMB_COLUMN:
        return record.id if for_sort else None
    if column == MODALITY_COLUMN:
        return (record.modality or "") if for_sort else record.modality_text
    if column == KIND_COLUMN:
        return record.kind if for_sort else KIND_LABELS.get(record.kind, record.kind)
    if column == PATIENT_COLUMN:
        return record.patient_id or ""
    if column == DATE_COLUMN:
        return record.study_date or ""
    if column == DESCRIPTION_COLUMN:
        return record.description or record.path.rsplit("/", 1)[-1]
    return None


class CaseFilterProxy(QSortFilterProxyModel):
    """Filters rows by free text (modality, patient, description, path), modality and kind; sorts by SORT_ROLE."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._modality: str | None = None
        self._kind: str | None = None
        self._label: str | None = None
        self.setSortRole(SORT_ROLE)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_filters(self, text: str, modality: str | None, kind: str | None, label: str | None = None) -> None:
        """Free text (every word must appear), modality code, case kind and label value (None = any)."""
        self._begin_filter_change()
        self._text = text.strip().lower()
        self._modality = modality or None
        self._kind = kind or None
        self._label = label or None
        self._end_filter_change()

    def _begin_filter_change(self) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter() is deprecated there
            self.beginFilterChange()

    def _end_filter_change(self) -> None:
        if hasattr(self, "endFilterChange"):
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        record = self.sourceModel().record(source_row)
        if self._modality and record.modality != self._modality:
            return False
        if self._kind and record.kind != self._kind:
            return False
        labels = self.sourceModel().labels(record.id)
        if self._label and labels.get(LABEL_KEY) != self._label:
            return False
        if not self._text:
            return True
        haystack = " ".join(
            str(v) for v in (record.modality, record.patient_id, record.description, record.path, record.study_date,
                             labels_text(labels)) if v
        ).lower()
        return all(word in haystack for word in self._text.split())


class LibraryView(QWidget):
    """The catalog table with a search box and modality/kind pickers."""

    caseSelected = Signal(object)  # CaseRecord (selection changed)
    caseActivated = Signal(object)  # CaseRecord (double click / Enter)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = CaseTableModel(self)
        self.proxy = CaseFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Filter: description, patient, path…")
        self.search.setClearButtonEnabled(True)
        self.modality_box = QComboBox(self)
        self.kind_box = QComboBox(self)
        self.label_box = QComboBox(self)
        self.label_box.setToolTip("Only cases with this label (the library's own labels)")
        self.count_label = QLabel("", self)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(THUMB_COLUMN, Qt.SortOrder.DescendingOrder)  # newest (highest id) first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.table.verticalHeader().setDefaultSectionSize(THUMB_SIZE + 4)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(THUMB_COLUMN, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(THUMB_COLUMN, THUMB_SIZE + 8)
        header.setSectionResizeMode(DESCRIPTION_COLUMN, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(DESCRIPTION_COLUMN, DESCRIPTION_WIDTH)
        header.setResizeContentsPrecision(200)  # size the short columns from at most 200 rows (big libraries)
        header.setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)

        filters = QHBoxLayout()
        filters.addWidget(self.search, 1)
        filters.addWidget(self.modality_box)
        filters.addWidget(self.kind_box)
        filters.addWidget(self.label_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.count_label)

        self.search.textChanged.connect(self._filter_changed)
        self.modality_box.currentIndexChanged.connect(self._filter_changed)
        self.kind_box.currentIndexChanged.connect(self._filter_changed)
        self.label_box.currentIndexChanged.connect(self._filter_changed)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.table.activated.connect(lambda index: self.caseActivated.emit(index.data(RECORD_ROLE)))
        self._fill_pickers([])

    def set_records(self, records: Sequence[Any]) -> None:
        """Show these catalog records (keeps the current filters)."""
        self.model.set_records(records)
        self._fill_pickers(records)
        self._update_count()

    def set_labels(self, labels: dict[int, dict[str, str]]) -> None:
        """Show the cases' labels and tags (column, filter text) and offer their label values in the picker."""
        self.model.set_labels(labels)
        self.table.resizeColumnToContents(LABELS_COLUMN)
        values = sorted({v[LABEL_KEY] for v in labels.values() if LABEL_KEY in v})
        _refill(self.label_box, "All labels", [(v, v) for v in values])
        self._filter_changed()

    def selected_record(self) -> Any | None:
        index = self.table.currentIndex()
        return index.data(RECORD_ROLE) if index.isValid() else None

    def select_case(self, case_id: int) -> bool:
        """Select the row of a case id (True when it is shown)."""
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data(RECORD_ROLE).id == case_id:
                self.table.setCurrentIndex(index)
                return True
        return False

    def visible_records(self) -> list[Any]:
        return [self.proxy.index(row, 0).data(RECORD_ROLE) for row in range(self.proxy.rowCount())]

    def _fill_pickers(self, records: Sequence[Any]) -> None:
        for box, label, values in (
            (self.modality_box, "All modalities", sorted({r.modality for r in records if r.modality})),
            (self.kind_box, "All kinds", sorted({r.kind for r in records})),
        ):
            _refill(box, label, [(KIND_LABELS.get(v, v), v) for v in values])
        if self.label_box.count() == 0:
            _refill(self.label_box, "All labels", [])
        self._filter_changed()

    def _filter_changed(self, *_: object) -> None:
        self.proxy.set_filters(self.search.text(), self.modality_box.currentData(), self.kind_box.currentData(),
                               self.label_box.currentData())
        self._update_count()

    def _update_count(self) -> None:
        total, shown = self.model.rowCount(), self.proxy.rowCount()
        self.count_label.setText(f"{total} cases" if shown == total else f"{shown} of {total} cases")

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.caseSelected.emit(current.data(RECORD_ROLE))


def _refill(box: QComboBox, all_text: str, items: Sequence[tuple[str, str]]) -> None:
    """Replace a picker's entries (first: ``all_text`` = no filter), keeping the current choice when it remains."""
    current = box.currentData()
    box.blockSignals(True)
    box.clear()
    box.addItem(all_text, None)
    for text, value in items:
        box.addItem(text, value)
    box.setCurrentIndex(max(0, box.findData(current)) if current else 0)
    box.blockSignals(False)
