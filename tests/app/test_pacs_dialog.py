"""The PACS dialog against a real Orthanc: C-ECHO, find by patient id, retrieve the selected study into the
window's library (it appears in the library list), and the listener started from the dialog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from app.main_window import MainWindow
from app.settings import AppSettings
from app.viewers.canvas import grab_widget
from engine.library import Library
from engine.pacs.nodes import Node, PacsSettings, default_settings_path
from tests.app.conftest import save_png
from tests.engine.pacs.orthanc_fixtures import OUR_AE, ct_series, listener_port, orthanc  # noqa: F401
from tests.engine.pacs.orthanc_server import ORTHANC_AE, Orthanc

TIMEOUT = 90_000
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def settings(orthanc: Orthanc, listener_port: int) -> PacsSettings:  # noqa: F811
    """pacs.ini in the test's user config folder, naming the Orthanc node and allowing it to send."""
    pacs = PacsSettings(ae_title=OUR_AE, port=listener_port, allow=[ORTHANC_AE], settle_seconds=0.3)
    pacs.nodes["orthanc"] = Node("orthanc", ORTHANC_AE, "127.0.0.1", orthanc.dicom_port, timeout=20)
    pacs.save(default_settings_path())
    return pacs


@pytest.fixture()
def window(qtbot, app_model: Path, tmp_path: Path) -> MainWindow:  # noqa: ANN001
    with Library.open(tmp_path / "lib", model_path=app_model):
        pass  # an empty library to open
    win = MainWindow(AppSettings(), model_path=app_model, interactive=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.libraryOpened, timeout=TIMEOUT):
        win.open_library(tmp_path / "lib")
    return win


def test_find_and_retrieve_into_the_library(qtbot, window: MainWindow, settings: PacsSettings,  # noqa: ANN001
                                            orthanc: Orthanc, ct_series: list[Path],  # noqa: F811
                                            output_dir: Path) -> None:
    orthanc.upload(ct_series)
    header = pydicom.dcmread(ct_series[0], stop_before_pixels=True)
    dialog = window.show_pacs()
    assert window.show_pacs() is dialog  # one dialog per window
    assert dialog.node_box.currentText() == "orthanc"

    worker = dialog.echo()
    qtbot.waitUntil(lambda: worker.is_finished and dialog.status.text().endswith("C-ECHO ok"), timeout=TIMEOUT)

    dialog.patient_edit.setText(str(header.PatientID))
    worker = dialog.find()
    qtbot.waitUntil(lambda: worker.is_finished and dialog.table.rowCount() == 1, timeout=TIMEOUT)
    assert dialog.table.item(0, 7).text() == header.StudyInstanceUID
    assert dialog.table.item(0, 6).text() == str(len(ct_series))
    dialog.table.selectRow(0)
    assert dialog.retrieve_button.isEnabled()
    with qtbot.waitSignal(dialog.libraryChanged, timeout=TIMEOUT):
        dialog.retrieve_selected()
    assert dialog.last_report.n_added == 1 and dialog.status.text().startswith("Retrieved and indexed")
    qtbot.waitUntil(lambda: len(window.library_view.model.records()) == 1, timeout=TIMEOUT)
    (record,) = window.library_view.model.records()
    assert record.modality == "CT" and record.n_files == len(ct_series)
    assert list(window.library.index.keys()) == [record.id]  # the window's vector index was topped up

    path = save_png(output_dir, "pacs_dialog.png", grab_widget(dialog))
    shutil.copy(path, REPO_ROOT / "docs" / "screenshots" / "pacs_dialog.png")


def test_listener_started_from_the_dialog(qtbot, window: MainWindow, settings: PacsSettings,  # noqa: ANN001
                                          orthanc: Orthanc, ct_series: list[Path]) -> None:  # noqa: F811
    dialog = window.show_pacs()
    dialog.listen_button.click()
    try:
        assert dialog.listener is not None and dialog.listen_button.text() == "Stop listener"
        study = orthanc.upload(ct_series)[0]["ParentStudy"]
        with qtbot.waitSignal(dialog.listenerIndexed, timeout=TIMEOUT) as indexed:
            assert orthanc.store_to("m3ret", [study])["FailedInstancesCount"] == 0
        assert indexed.args[0].n_added == 1
        qtbot.waitUntil(lambda: len(window.library_view.model.records()) == 1, timeout=TIMEOUT)
        assert f"{len(ct_series)} instance(s) received" in dialog.listener_status.text()
    finally:
        dialog.stop_listener()
    assert dialog.listener is None and dialog.listen_button.text() == "Start listener"


def test_listener_without_allowed_callers_says_why(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    pytest.importorskip("pynetdicom")
    dialog = window.show_pacs()
    dialog.listen_button.click()
    assert dialog.listener is None and not dialog.listen_button.isChecked()
    assert "no calling AE title is allowed" in dialog.listener_status.text()

