"""The storage SCP against a real Orthanc (and pynetdicom as a misbehaving sender): pushes become searchable,
re-sends add nothing, aborted series wait, bad instances are refused or recorded, unknown callers refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from engine.library import Library
from engine.pacs import PacsError
from engine.pacs.inbox import INCOMPLETE_MARKER
from engine.pacs.nodes import Node
from engine.pacs.query_retrieve import echo
from engine.search import search_by_path
from tests.engine.pacs.orthanc_fixtures import OUR_AE, require_networking
from tests.engine.pacs.orthanc_server import ORTHANC_AE, Orthanc

SETTLE_S = 0.5
WAIT_S = 60.0
# Compressed and multi-frame instances from pydicom's test files: US cine (JPEG baseline), US (JPEG 2000
# lossless), enhanced MR (JPEG 2000), MR (JPEG-LS), CR X-ray (JPEG 2000), secondary captures (RLE, JPEG
# lossless, deflate), CT (explicit LE).
CODEC_FILES = ("color3d_jpeg_baseline.dcm", "US1_J2KR.dcm", "emri_small_jpeg_2k_lossless.dcm",
               "MR_small_jpeg_ls_lossless.dcm", "RG3_J2KR.dcm", "SC_rgb_rle.dcm", "JPEG-LL.dcm", "image_dfl.dcm",
               "CT_small.dcm")


@pytest.fixture()
def library(tmp_path: Path, tiny_model: Path) -> Iterator[Library]:
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        yield lib


@pytest.fixture()
def scp(library: Library, orthanc: Orthanc, listener_port: int) -> Iterator[object]:
    from engine.pacs.storage_scp import StorageSCP

    listener = StorageSCP(library, OUR_AE, listener_port, [ORTHANC_AE, "SENDER"], SETTLE_S, bind="127.0.0.1")
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()


def _push(orthanc: Orthanc, files: list[Path]) -> str:
    """Upload ``files`` to Orthanc and have it C-STORE their study to us; the Orthanc study id."""
    answers = orthanc.upload(files)
    studies = {a["ParentStudy"] for a in answers}
    assert len(studies) == 1
    study = studies.pop()
    job = orthanc.store_to("m3ret", [study])
    assert job["FailedInstancesCount"] == 0 and job["InstancesCount"] == len(files)
    return study


def _sender(port: int, ae_title: str = "SENDER"):  # noqa: ANN202
    from pynetdicom import AE, StoragePresentationContexts

    ae = AE(ae_title=ae_title)
    ae.requested_contexts = StoragePresentationContexts
    ae.dimse_timeout = 10
    return ae.associate("127.0.0.1", port, ae_title=OUR_AE)


def _send_whole_series(port: int, paths: list[Path], attempts: int = 3) -> None:
    """Send every instance on one association and release it. pynetdicom's requestor can lose a response to its
    own reactor thread under heavy load (a race, cf. pydicom/pynetdicom#875; it then times out and aborts): like a
    real sender, send the series again on a new association."""
    for _ in range(attempts):
        assoc = _sender(port)
        statuses = [assoc.send_c_store(pydicom.dcmread(p)) if assoc.is_established else None for p in paths]
        if assoc.is_established and all(s is not None and s.get("Status") == 0 for s in statuses):
            assoc.release()
            return
        if assoc.is_established:
            assoc.abort()
    raise AssertionError(f"the series could not be sent in {attempts} attempts")


def test_echo_from_orthanc_and_unknown_caller_refused(scp: object, orthanc: Orthanc, listener_port: int) -> None:
    assert orthanc.post_json("/modalities/m3ret/echo", {}) == {}  # Orthanc's C-ECHO to us succeeded
    with pytest.raises(PacsError, match=r"association rejected: Calling AE title not recognised"):
        echo(Node("us", OUR_AE, "127.0.0.1", listener_port, timeout=10), "STRANGER")


def test_push_becomes_searchable_and_resend_adds_nothing(scp, orthanc: Orthanc, ct_series: list[Path],  # noqa: ANN001
                                                         library: Library) -> None:
    _push(orthanc, ct_series)
    assert scp.completion.wait_idle(WAIT_S)
    assert scp.stats.received == len(ct_series) and not scp.stats.refused
    (record,) = library.catalog.list_cases()
    assert record.n_files == len(ct_series) and record.kind == "volume" and record.modality == "CT"
    series_dir = Path(record.path)
    _case, results = search_by_path(library, series_dir, k=1)
    assert [r.id for r in results.this_case] == [record.id] and list(results) == []  # found: it is "this case"
    mtimes = {p: p.stat().st_mtime_ns for p in series_dir.glob("*.dcm")}

    _push(orthanc, ct_series)  # the same study again
    assert scp.completion.wait_idle(WAIT_S)
    assert scp.stats.duplicates == len(ct_series)
    assert library.catalog.count_cases() == 1
    assert scp.completion.reports[-1].n_added == 0 and scp.completion.reports[-1].n_unchanged == 1
    assert {p: p.stat().st_mtime_ns for p in series_dir.glob("*.dcm")} == mtimes


def test_compressed_and_multiframe_instances_arrive_bit_identical(scp, orthanc: Orthanc,  # noqa: ANN001
                                                                  library: Library) -> None:
    files = [Path(get_testdata_file(name)) for name in CODEC_FILES]
    for path in files:
        orthanc.store_to("m3ret", [orthanc.upload([path])[0]["ID"]])
    assert scp.completion.wait_idle(WAIT_S)
    assert not scp.stats.refused
    for path in files:
        sent = pydicom.dcmread(path)
        (received,) = scp.inbox.root.glob(f"*/*/{sent.SOPInstanceUID}.dcm")
        got = pydicom.dcmread(received)
        assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID, path.name
        assert got.PixelData == sent.PixelData, path.name
    assert library.catalog.count_cases() == len(files)
    assert not library.catalog.failures()


def test_aborted_series_waits_then_indexes_whole(scp, ct_series: list[Path], library: Library,  # noqa: ANN001
                                                 listener_port: int) -> None:
    assoc = _sender(listener_port)
    assert assoc.is_established
    for path in ct_series[:10]:
        assert assoc.send_c_store(pydicom.dcmread(path)).Status == 0
    assoc.abort()
    series_dir = next(scp.inbox.series_dirs())
    _wait_until(lambda: (series_dir / INCOMPLETE_MARKER).exists())
    assert scp.completion.wait_idle(3 * SETTLE_S)  # nothing left to index: the half series is held
    assert library.catalog.count_cases() == 0 and len(list(series_dir.glob("*.dcm"))) == 10
    assert scp.completion.pending() == {series_dir: True}

    _send_whole_series(listener_port, ct_series)
    _wait_until(lambda: library.catalog.count_cases() == 1)
    assert scp.completion.wait_idle(WAIT_S)
    (record,) = library.catalog.list_cases()
    assert record.n_files == len(ct_series)
    assert not (series_dir / INCOMPLETE_MARKER).exists()


def test_bad_instances_refused_or_recorded_and_listener_survives(scp, library: Library,  # noqa: ANN001
                                                                 listener_port: int) -> None:
    no_uids = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del no_uids.StudyInstanceUID, no_uids.SeriesInstanceUID  # like the real anonymised CT Orthanc refuses
    truncated = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    truncated.PixelData = truncated.PixelData[: len(truncated.PixelData) // 3]
    assoc = _sender(listener_port)
    refused = assoc.send_c_store(no_uids)
    stored = assoc.send_c_store(truncated)
    assoc.release()
    assert refused.Status == 0xA900 and "no StudyInstanceUID" in refused.ErrorComment
    assert stored.Status == 0
    assert scp.completion.wait_idle(WAIT_S)
    assert [r.reason for r in scp.stats.refused] == ["no StudyInstanceUID"]
    (failure,) = library.catalog.failures()
    assert truncated.SOPInstanceUID in failure.path and failure.reason
    assert library.catalog.count_cases() == 0
    echo(Node("us", OUR_AE, "127.0.0.1", listener_port, timeout=10), "SENDER")  # still answering


def _wait_until(condition, timeout: float = WAIT_S) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_listener_requires_allowed_callers(library: Library) -> None:
    require_networking()
    from engine.pacs.storage_scp import StorageSCP

    with pytest.raises(PacsError, match="no calling AE title is allowed"):
        StorageSCP(library, OUR_AE, 0, [], SETTLE_S)
