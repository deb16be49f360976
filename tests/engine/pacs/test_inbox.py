"""The inbox: one file per instance under study/series, identical re-sends not rewritten, bad UIDs refused."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from engine.pacs.inbox import Inbox, InstanceRefused


def _encoded(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_store_writes_under_study_and_series(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    data = _encoded(ds)
    stored = Inbox(tmp_path).store(data)
    assert stored.new
    assert stored.path == tmp_path / "inbox" / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    assert stored.path.read_bytes() == data
    assert [p.name for p in stored.path.parent.iterdir()] == [stored.path.name]  # no temporary file left


def test_identical_instance_is_not_rewritten(tmp_path: Path) -> None:
    data = _encoded(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    inbox = Inbox(tmp_path)
    first = inbox.store(data)
    mtime = first.path.stat().st_mtime_ns
    again = inbox.store(data)
    assert not again.new and again.path == first.path and first.path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uid_is_refused(tmp_path: Path, keyword: str) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    delattr(ds, keyword)
    with pytest.raises(InstanceRefused, match=f"no {keyword}"):
        Inbox(tmp_path).store(_encoded(ds))
    assert not (tmp_path / "inbox").exists()


def test_invalid_uid_and_garbage_are_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SeriesInstanceUID = "../../etc"
    with pytest.raises(InstanceRefused, match="not a valid UID"):
        Inbox(tmp_path).store(_encoded(ds))
    with pytest.raises(InstanceRefused) as refused:
        Inbox(tmp_path).store(b"not a DICOM file " * 20)
    assert refused.value.unparseable
