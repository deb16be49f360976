"""Series completion: settle time, held series after an abort, resuming the inbox after a restart."""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_testdata_file

from engine.library import Library
from engine.pacs.inbox import Inbox
from engine.pacs.series_completion import SeriesCompletion
from tests.engine.pacs.orthanc_server import write_series_from_slice


def _received_series(library: Library, n: int) -> Path:
    """A series written into the inbox as the listener would (one folder of n CT slices)."""
    files = write_series_from_slice(Path(get_testdata_file("CT_small.dcm")), n, library.path / "sent")
    inbox = Inbox(library.path)
    stored = [inbox.store(f.read_bytes()) for f in files]
    return stored[0].series_dir


def test_settled_series_is_indexed_once(tmp_path: Path, tiny_model: Path) -> None:
    with Library.open(tmp_path / "lib", model_path=tiny_model) as library:
        series = _received_series(library, 4)
        completion = SeriesCompletion(library, settle_s=3600)
        completion.arrived(series, association_id=1)
        completion.association_ended(1, aborted=False)
        assert completion.index_ready() is None  # not settled yet
        report = completion.index_ready(ignore_settle=True)
        assert report is not None and report.n_added == 1
        assert completion.pending() == {}
        completion.arrived(series, association_id=2)  # the same instances again
        completion.association_ended(2, aborted=False)
        again = completion.index_ready(ignore_settle=True)
        assert again is not None and (again.n_added, again.n_unchanged) == (0, 1)
        assert library.catalog.count_cases() == 1


def test_aborted_series_is_held_until_completed_and_survives_a_restart(tmp_path: Path, tiny_model: Path) -> None:
    with Library.open(tmp_path / "lib", model_path=tiny_model) as library:
        series = _received_series(library, 3)
        completion = SeriesCompletion(library, settle_s=0)
        completion.arrived(series, association_id=1)
        completion.association_ended(1, aborted=True)
        assert completion.index_ready(ignore_settle=True) is None
        assert Inbox.is_incomplete(series) and completion.pending() == {series: True}

        restarted = SeriesCompletion(library, settle_s=0)  # a new listener on the same inbox
        restarted.resume(Inbox(library.path))
        assert restarted.pending() == {series: True}
        assert restarted.index_ready() is None
        restarted.arrived(series, association_id=7)
        restarted.association_ended(7, aborted=False)
        report = restarted.index_ready()
        assert report is not None and report.n_added == 1 and not Inbox.is_incomplete(series)
        (record,) = library.catalog.list_cases()
        assert record.n_files == 3
