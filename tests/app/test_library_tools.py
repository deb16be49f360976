"""Labels and export in the app: CSV import fills the labels column and filter, results show the top-k's labels,
editing a case's labels, exporting the results report (de-identified) from the main window."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.library_view import LABELS_COLUMN
from app.main_window import MainWindow
from app.settings import AppSettings
from app.viewers.canvas import grab_widget
from engine.labels import summarize
from tests.app.conftest import save_png

TIMEOUT = 120_000
LABEL_OF_MODALITY = {"XR": "chest", "MR": "brain", "CT": "nodule", "US": "lung"}


@pytest.fixture()
def window(qtbot, app_model: Path, app_library: Path, tmp_path: Path) -> MainWindow:  # noqa: ANN001
    library = tmp_path / "library"
    shutil.copytree(app_library, library)  # the shared test library must not be modified
    win = MainWindow(AppSettings(), model_path=app_model, interactive=False)
    qtbot.addWidget(win)
    win.resize(1280, 820)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.libraryOpened, timeout=TIMEOUT):
        win.open_library(library)
    return win


def _import_labels(win: MainWindow, tmp_path: Path) -> dict[int, str]:
    records = win.library_view.model.records()
    csv_file = tmp_path / "labels.csv"
    lines = ["path,label,reader"] + [f"{r.path},{LABEL_OF_MODALITY[r.modality]},dr-a" for r in records]
    csv_file.write_text("\n".join(lines + ["/nowhere/x.png,chest,dr-b"]) + "\n", encoding="utf-8")
    report = win.library_tools.import_csv(csv_file)
    assert report.cases_labelled == len(records) and len(report.unknown) == 1
    return {r.id: LABEL_OF_MODALITY[r.modality] for r in records}


def test_labels_column_filter_and_results_summary(qtbot, window: MainWindow, tmp_path: Path,  # noqa: ANN001
                                                  output_dir: Path) -> None:
    labels = _import_labels(window, tmp_path)
    view = window.library_view
    first = view.proxy.index(0, LABELS_COLUMN)
    assert first.data() == f"{labels[view.visible_records()[0].id]}; reader=dr-a"
    view.label_box.setCurrentIndex(view.label_box.findData("chest"))
    shown = view.visible_records()
    assert shown and all(r.modality == "XR" for r in shown)
    assert len(shown) == sum(1 for v in labels.values() if v == "chest")
    view.label_box.setCurrentIndex(0)
    view.search.setText("brain")  # free text finds labels too
    assert {r.modality for r in view.visible_records()} == {"MR"}
    view.search.setText("")

    with qtbot.waitSignal(window.caseShown, timeout=TIMEOUT):
        view.select_case(shown[0].id)
    window.results_view.k_box.setValue(5)
    with qtbot.waitSignal(window.resultsShown, timeout=TIMEOUT) as blocker:
        window.find_similar()
    results = blocker.args[0]
    expected = summarize([labels[r.case_id] for r in results])
    assert expected and expected in window.results_view.labels_label.text()
    assert "not a diagnosis" in window.results_view.labels_label.text()
    assert window.results_view.grid.item(0).text().endswith(f"[{labels[results[0].case_id]}]")
    save_png(output_dir, "results_view_labels.png", grab_widget(window))

    window.library_tools.apply_labels(shown[0].id, {"label": "edited", "reader": None})
    assert window.library_view.model.labels(shown[0].id) == {"label": "edited"}
    assert view.label_box.findData("edited") >= 0


def test_export_results_report_from_the_app(qtbot, window: MainWindow, tmp_path: Path) -> None:  # noqa: ANN001
    _import_labels(window, tmp_path)
    record = next(r for r in window.library_view.visible_records() if r.modality == "XR")
    with qtbot.waitSignal(window.caseShown, timeout=TIMEOUT):
        window.library_view.select_case(record.id)
    window.results_view.k_box.setValue(3)
    with qtbot.waitSignal(window.resultsShown, timeout=TIMEOUT):
        window.find_similar()
    out = tmp_path / "export"
    with qtbot.waitSignal(window.library_tools.exported, timeout=TIMEOUT) as blocker:
        window.library_tools.export_results(out, copies=True)
    doc = blocker.args[0]
    assert doc["deidentified"] is True and len(doc["cases"]) == 3
    report = json.loads((out / "report.json").read_text())
    assert [r["rank"] for r in report["rows"]] == [1, 2, 3] and report["query"]["kind"] == "image2d"
    page = (out / "report.html").read_text()
    assert str(tmp_path) not in page and record.path not in page and "Exported" not in window.last_error
    assert "Exported 3 case(s)" in window.status_label.text()
    with qtbot.waitSignal(window.library_tools.exported, timeout=TIMEOUT) as blocker:
        window.library_tools.export_selected(tmp_path / "one")
    assert [c["case_id"] for c in blocker.args[0]["cases"]] == [record.id]
