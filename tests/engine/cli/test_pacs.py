"""``m3ret pacs echo|find|get|move`` against a real Orthanc: JSON output, studies indexed, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from engine.cli.main import main
from engine.pacs.nodes import Node, PacsSettings
from tests.engine.pacs.orthanc_fixtures import OUR_AE, ct_series, listener_port, orthanc  # noqa: F401
from tests.engine.pacs.orthanc_server import ORTHANC_AE, Orthanc, free_port


@pytest.fixture()
def settings_file(tmp_path: Path, orthanc: Orthanc, listener_port: int) -> Path:
    settings = PacsSettings(ae_title=OUR_AE, port=listener_port, allow=[ORTHANC_AE])
    settings.nodes["main"] = Node("main", ORTHANC_AE, "127.0.0.1", orthanc.dicom_port, timeout=20)
    return settings.save(tmp_path / "pacs.ini")


@pytest.fixture(scope="module")
def study_uid(orthanc: Orthanc, ct_series: list[Path]) -> str:  # noqa: F811
    orthanc.upload(ct_series)
    return str(pydicom.dcmread(ct_series[0], stop_before_pixels=True).StudyInstanceUID)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_echo_and_find_json(settings_file: Path, study_uid: str, orthanc: Orthanc, ct_series: list[Path],  # noqa: F811
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "echo", "--node", f"{ORTHANC_AE}@127.0.0.1:{orthanc.dicom_port}"]) == 0
    assert "C-ECHO ok" in capsys.readouterr().out
    patient = str(pydicom.dcmread(ct_series[0], stop_before_pixels=True).PatientID)
    found = _json(capsys, "pacs", "find", "--node", "main", "--settings", str(settings_file),
                  "--patient-id", patient, "--json")
    assert [s["StudyInstanceUID"] for s in found] == [study_uid]
    assert found[0]["series"][0]["NumberOfSeriesRelatedInstances"] == str(len(ct_series))
    assert main(["pacs", "find", "--node", "main", "--settings", str(settings_file)]) == 0
    assert study_uid in capsys.readouterr().out


@pytest.mark.parametrize("action", ["get", "move"])
def test_retrieve_indexes_the_study(action: str, settings_file: Path, study_uid: str, tmp_path: Path,
                                    tiny_model: Path, ct_series: list[Path],  # noqa: F811
                                    capsys: pytest.CaptureFixture[str]) -> None:
    library = ["--library", str(tmp_path / "lib"), "--model", str(tiny_model)]
    done = _json(capsys, "pacs", action, "--node", "main", "--settings", str(settings_file), study_uid, *library,
                 "--json")
    assert done["studies"][0]["completed"] == len(ct_series)
    assert (done["indexed"]["added"], done["cases_in_library"]) == (1, 1)
    listed = _json(capsys, "list", *library[:2], "--json")
    assert listed[0]["n_files"] == len(ct_series) and listed[0]["modality"] == "CT"
    again = _json(capsys, "pacs", action, "--node", "main", "--settings", str(settings_file), study_uid, *library,
                  "--json")
    assert (again["indexed"]["added"], again["cases_in_library"]) == (0, 1)


def test_errors_are_one_line(settings_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["pacs", "echo", "--node", f"NOBODY@127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"m3ret pacs echo: error: node NOBODY@127.0.0.1:{port}: connection refused " \
                  "(is the DICOM service running on that port?)"
    assert main(["pacs", "find", "--node", "nowhere", "--settings", str(settings_file)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("m3ret pacs find: error: unknown node 'nowhere'") and "\n" not in err


def test_without_pynetdicom_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynetdicom", None)  # import pynetdicom -> ImportError
    assert main(["pacs", "echo", "--node", "A@127.0.0.1:104"]) == 1
    assert capsys.readouterr().err.strip() == \
        "m3ret pacs echo: error: DICOM networking needs pynetdicom: pip install 'm3ret[pacs]'"
    assert main(["listen", "--allow", "A", "--library", str(tmp_path / "lib")]) == 1
    assert "needs pynetdicom" in capsys.readouterr().err
