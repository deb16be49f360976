"""Library table: rows from a real catalog, thumbnails, sorting, free-text / modality / kind filters."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap

from engine.catalog import CaseRecord
from app.viewers.canvas import grab_widget
from tests.app.conftest import save_png
from app.library_view import DATE_COLUMN, MODALITY_COLUMN, THUMB_COLUMN, LibraryView


def _records(library_dir: Path) -> list[CaseRecord]:
    from engine.library import Library

    with Library.open(library_dir) as library:
        return library.catalog.list_cases()


def _dated(case_id: int, date: str | None, description: str) -> CaseRecord:
    return CaseRecord(id=case_id, kind="image2d", modality="XR", body_part=None, patient_id=f"P{case_id}",
                      patient_name=None, study_uid=None, series_uid=None, study_date=date, description=description,
                      shape="[4, 4]", n_files=1, thumbnail=None, uid=str(case_id), fingerprint="f", added_at=0.0,
                      source_paths=[f"/data/{case_id}.dcm"])


def test_rows_show_real_catalog_records_with_thumbnails(qtbot, app_library: Path) -> None:
    records = _records(app_library)
    view = LibraryView()
    qtbot.addWidget(view)
    view.set_records(records)
    assert view.model.rowCount() == len(records) == view.proxy.rowCount()
    assert view.count_label.text() == f"{len(records)} cases"
    index = view.model.index(0, THUMB_COLUMN)
    pixmap = view.model.data(index, Qt.ItemDataRole.DecorationRole)
    assert isinstance(pixmap, QPixmap) and not pixmap.isNull() and max(pixmap.width(), pixmap.height()) <= 56
    modalities = {view.model.index(r, MODALITY_COLUMN).data() for r in range(len(records))}
    assert modalities == {r.modality_text for r in records}
    assert view.model.data(index, Qt.ItemDataRole.ToolTipRole) == records[0].path


def test_filters_by_modality_kind_and_text(qtbot, app_library: Path) -> None:
    records = _records(app_library)
    view = LibraryView()
    qtbot.addWidget(view)
    view.set_records(records)
    view.modality_box.setCurrentIndex(view.modality_box.findData("US"))
    shown = view.visible_records()
    assert shown and all(r.modality == "US" for r in shown)
    assert len(shown) == sum(r.modality == "US" for r in records)
    view.kind_box.setCurrentIndex(view.kind_box.findData("video"))
    assert all(r.kind == "video" and r.modality == "US" for r in view.visible_records())
    assert view.count_label.text().startswith(f"{len(view.visible_records())} of {len(records)}")
    view.modality_box.setCurrentIndex(0)
    view.kind_box.setCurrentIndex(0)
    name = Path(records[0].path).name
    view.search.setText(name.upper())  # case-insensitive, matches the path
    assert [r.id for r in view.visible_records()] == [records[0].id]
    view.search.setText("no such words anywhere")
    assert view.visible_records() == []


def test_sorting_by_date_and_selection_signal(qtbot) -> None:
    view = LibraryView()
    qtbot.addWidget(view)
    view.set_records([_dated(1, "2021-05-01", "b"), _dated(2, None, "c"), _dated(3, "2019-01-31", "a")])
    view.table.sortByColumn(DATE_COLUMN, Qt.SortOrder.AscendingOrder)
    assert [r.id for r in view.visible_records()] == [2, 3, 1]  # no date first
    view.table.sortByColumn(DATE_COLUMN, Qt.SortOrder.DescendingOrder)
    assert [r.id for r in view.visible_records()] == [1, 3, 2]
    with qtbot.waitSignal(view.caseSelected) as blocker:
        assert view.select_case(3)
    assert blocker.args[0].id == 3 and view.selected_record().id == 3
    view.search.setText("p1")
    assert [r.id for r in view.visible_records()] == [1]  # patient id


def test_description_column_fits_a_narrow_dock(qtbot, app_library: Path, output_dir: Path) -> None:
    """The description (or file name) column is on screen and wide enough to read, whatever the other columns."""
    from app.library_view import DESCRIPTION_COLUMN

    view = LibraryView()
    qtbot.addWidget(view)
    view.resize(440, 500)  # the main window's default library dock
    view.show()
    view.set_records(_records(app_library))
    qtbot.wait(50)
    header = view.table.horizontalHeader()
    viewport = view.table.viewport().width()
    assert header.sectionViewportPosition(DESCRIPTION_COLUMN) + header.sectionSize(DESCRIPTION_COLUMN) <= viewport + 1
    assert header.sectionSize(DESCRIPTION_COLUMN) >= 120
    save_png(output_dir, "library_view_narrow.png", grab_widget(view))
