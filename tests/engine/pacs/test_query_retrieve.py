"""The query/retrieve SCU against a real Orthanc: C-ECHO, C-FIND, C-GET and C-MOVE bring every instance back with
the same transfer syntax and pixel data; errors are one line naming the node."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from engine.library import Library
from engine.pacs import PacsError
from engine.pacs.inbox import Inbox
from engine.pacs.nodes import Node
from engine.pacs.query_retrieve import echo, find_studies, get_study, move_study
from tests.engine.pacs.orthanc_fixtures import OUR_AE
from tests.engine.pacs.orthanc_server import ORTHANC_AE, Orthanc, free_port

CODEC_FILES = ("color3d_jpeg_baseline.dcm", "US1_J2KR.dcm", "SC_rgb_rle.dcm", "JPEG-LL.dcm",
               "MR_small_jpeg_ls_lossless.dcm", "CT_small.dcm")


@pytest.fixture(scope="module")
def loaded(orthanc: Orthanc, ct_series: list[Path]) -> dict[str, list[Path]]:
    """Orthanc holding the shared CT series and pydicom's compressed files: study uid -> files."""
    files = ct_series + [Path(get_testdata_file(name)) for name in CODEC_FILES]
    orthanc.upload(files)
    studies: dict[str, list[Path]] = {}
    for path in files:
        studies.setdefault(str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID), []).append(path)
    return studies


def _node(orthanc: Orthanc, timeout: float = 20) -> Node:
    return Node("orthanc", ORTHANC_AE, "127.0.0.1", orthanc.dicom_port, timeout)


def _assert_same_instances(sent: list[Path], received: list[Path]) -> None:
    by_uid = {str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in received}
    assert len(by_uid) == len(sent)
    for path in sent:
        original = pydicom.dcmread(path)
        got = by_uid[str(original.SOPInstanceUID)]
        assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID, path.name
        assert got.PixelData == original.PixelData, path.name


def test_echo_and_find(orthanc: Orthanc, loaded: dict[str, list[Path]], ct_series: list[Path]) -> None:
    echo(_node(orthanc), OUR_AE)
    ct = pydicom.dcmread(ct_series[0], stop_before_pixels=True)
    (study,) = find_studies(_node(orthanc), OUR_AE, patient_id=str(ct.PatientID))
    assert study.study_uid == ct.StudyInstanceUID
    assert study.fields["NumberOfStudyRelatedInstances"] == str(len(ct_series))
    assert [(s.series_uid, s.fields["Modality"]) for s in study.series] == [(ct.SeriesInstanceUID, "CT")]
    everything = find_studies(_node(orthanc), OUR_AE, with_series=False)
    assert {s.study_uid for s in everything} >= set(loaded)
    assert find_studies(_node(orthanc), OUR_AE, patient_id="NO-SUCH-PATIENT") == []


def test_get_brings_every_instance_back(orthanc: Orthanc, loaded: dict[str, list[Path]], tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "lib")
    seen = []
    for study_uid, files in loaded.items():
        result = get_study(_node(orthanc), OUR_AE, study_uid, inbox, progress=seen.append)
        assert (result.completed, result.failed, result.refused) == (len(files), 0, [])
        _assert_same_instances(files, [p for d in result.series_dirs for p in d.glob("*.dcm")])
    assert seen and seen[-1].completed >= 1


def test_move_to_our_listener(orthanc: Orthanc, loaded: dict[str, list[Path]], ct_series: list[Path],
                              tmp_path: Path, tiny_model: Path, listener_port: int) -> None:
    from engine.pacs.storage_scp import StorageSCP

    study_uid = str(pydicom.dcmread(ct_series[0], stop_before_pixels=True).StudyInstanceUID)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as library:
        scp = StorageSCP(library, OUR_AE, listener_port, [ORTHANC_AE], settle_s=0.0, bind="127.0.0.1")
        with scp:
            result = move_study(_node(orthanc), OUR_AE, study_uid, OUR_AE)
            assert (result.completed, result.failed) == (len(ct_series), 0)
            assert scp.completion.wait_idle(60)
        _assert_same_instances(ct_series, list(scp.inbox.root.rglob("*.dcm")))
        (record,) = library.catalog.list_cases()
        assert record.n_files == len(ct_series)


def test_errors_name_the_node(orthanc: Orthanc, loaded: dict[str, list[Path]]) -> None:
    closed = Node("gone", "GONE", "127.0.0.1", free_port(), timeout=5)
    with pytest.raises(PacsError, match=r"^node gone \(GONE@127.0.0.1:\d+\): connection refused"):
        echo(closed, OUR_AE)
    with pytest.raises(PacsError, match=r"^node orthanc .*C-MOVE failed with status 0x[0-9A-F]{4}"):
        move_study(_node(orthanc), OUR_AE, next(iter(loaded)), "UNKNOWN-AE")
    with socket.socket() as silent:  # accepts TCP, never speaks DICOM
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        mute = Node("mute", "MUTE", "127.0.0.1", silent.getsockname()[1], timeout=1)
        with pytest.raises(PacsError, match=r"^node mute .*no answer within 1 s"):
            echo(mute, OUR_AE)
