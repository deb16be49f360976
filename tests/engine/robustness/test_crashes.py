"""A native abort while reading in the indexing process: the run dies once, never twice on the same file.

The first run (0 reader processes, the default on <= 2 cores) aborts like gdcm's SIGABRT on one file; the next
run reads that file in a reader process of its own, records it as having crashed the reader and indexes the
rest; later runs skip it without reading until it changes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.crash_journal import CRASH_REASON
from engine.indexer import index_paths
from engine.library import Library
from tests.engine.conftest import write_phantoms
from tests.engine.test_indexer import assert_consistent

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_a_native_abort_is_attributed_and_never_kills_a_second_run(tmp_path: Path, tiny_model: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.indexer as indexer
    from tests.engine.crashing_reader import prepare_or_abort

    files = tmp_path / "files"
    write_phantoms(files, 3)
    abort_file = files / "abort_me.png"
    shutil.copy2(next(files.glob("disc/*.png")), abort_file)
    library_dir = tmp_path / "lib"
    script = textwrap.dedent(f"""
        from pathlib import Path
        import engine.indexer as indexer
        from engine.library import Library
        from tests.engine.crashing_reader import prepare_or_abort
        indexer.prepare_unit = prepare_or_abort
        library = Library.open(Path({str(library_dir)!r}), model_path=Path({str(tiny_model)!r}))
        indexer.index_paths(library, [Path({str(files)!r})], workers=0, batch_size=2)
    """)
    first = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == -signal.SIGABRT, first.stderr

    monkeypatch.setattr(indexer, "prepare_unit", prepare_or_abort)  # the file still aborts any reader
    with Library.open(library_dir, model_path=tiny_model) as lib:
        second = index_paths(lib, [files], workers=0)
        assert [(f.path, f.reason) for f in second.failures] == [(abort_file, CRASH_REASON)]
        assert lib.catalog.count_cases() == 6
        third = index_paths(lib, [files], workers=0)  # quarantined: not read again
        assert (third.n_unchanged, third.n_added, [f.reason for f in third.failures]) == (6, 0, [CRASH_REASON])
        assert [(f.path, f.reason) for f in lib.catalog.failures()] == [(str(abort_file), CRASH_REASON)]
    monkeypatch.undo()
    abort_file.write_bytes(next(files.glob("frame/*.png")).read_bytes())  # the file changed: read again
    with Library.open(library_dir, model_path=tiny_model) as lib:
        fourth = index_paths(lib, [files], workers=0)
    assert (fourth.n_added, fourth.n_failed) == (1, 0)
    assert assert_consistent(library_dir) == 7


def test_a_kill_by_the_user_does_not_quarantine_an_innocent_file(tmp_path: Path, tiny_model: Path) -> None:
    from engine.crash_journal import CrashJournal

    files = tmp_path / "files"
    write_phantoms(files, 2)
    library_dir = tmp_path / "lib"
    library_dir.mkdir()
    innocent = sorted(files.rglob("*.png"))[0]
    CrashJournal(library_dir).reading(str(innocent.resolve()), (innocent,)).__enter__()  # "killed" mid-read
    with Library.open(library_dir, model_path=tiny_model) as lib:
        report = index_paths(lib, [files], workers=0)
    assert (report.n_added, report.n_failed) == (4, 0)


def test_a_reader_process_stuck_past_its_budget_is_killed_and_the_run_goes_on(tmp_path: Path, tiny_model: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    import engine.indexer as indexer
    from engine.config import ReadLimits
    from engine.crash_journal import HANG_REASON
    from tests.engine.crashing_reader import prepare_or_hang

    files = tmp_path / "files"
    write_phantoms(files, 4)
    shutil.copy2(next(files.glob("disc/*.png")), files / "hang_me.png")
    monkeypatch.setattr(indexer, "prepare_unit", prepare_or_hang)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        report = index_paths(lib, [files], workers=2, limits=ReadLimits(unit_seconds=4.0))
    assert report.n_added == 8
    assert [(f.path.name, f.reason) for f in report.failures] == [("hang_me.png", HANG_REASON)]


def test_with_no_reader_processes_a_dicom_abort_fails_only_its_file(tmp_path: Path, tiny_model: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """DICOM units are read in one reader process even with workers=0 (gdcm aborts on some broken files)."""
    import pydicom
    from pydicom.data import get_testdata_file

    import engine.indexer as indexer
    from tests.engine.crashing_reader import prepare_or_abort

    files = tmp_path / "dicom"
    files.mkdir()
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for i in range(indexer.POOL_MIN_UNITS + 1):
        ds = source.copy()
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.9{i}"
        ds.save_as(files / (f"abort_{i}.dcm" if i == 3 else f"ct_{i}.dcm"), enforce_file_format=False)
    monkeypatch.setattr(indexer, "prepare_unit", prepare_or_abort)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        report = index_paths(lib, [files], workers=0)  # before: this process died (SIGABRT)
    assert report.n_added == indexer.POOL_MIN_UNITS
    assert [(f.path.name, f.reason) for f in report.failures] == [
        ("abort_3.dcm", "reader process crashed while reading it")]
