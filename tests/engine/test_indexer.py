"""engine.indexer: incremental runs, re-embedding changed files only, prune, failures, workers, cancel, SIGKILL."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.indexer import IndexProgress, index_paths
from engine.library import INDEX_FILE, Library
from engine.vectors import VectorIndex
from tests.engine.conftest import copy_subset, phantom_image, shared_subset, write_phantoms

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    write_phantoms(tmp_path / "files", 6)
    return tmp_path / "files"


@pytest.fixture()
def library(tmp_path: Path, tiny_model: Path) -> Library:
    lib = Library.open(tmp_path / "lib", model_path=tiny_model)
    yield lib
    lib.close()


def assert_consistent(library_dir: Path) -> int:
    """Every case has files + an embedding by the library's model, and the index holds exactly those ids."""
    with Library.open(library_dir) as lib:
        case_ids = {r.id for r in lib.catalog.list_cases(with_thumbnails=False)}
        embedded = set(lib.catalog.embedding_ids(lib.model_id).tolist()) if lib.model_id else set()
        assert embedded == case_ids
        assert all(r.source_paths for r in lib.catalog.list_cases(with_thumbnails=False))
        assert set(lib.index.keys().tolist()) == case_ids
    return len(case_ids)


def _forbid_embedding(library: Library, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = library.encoder.embed_clips

    def counting(clips):  # noqa: ANN001, ANN202
        calls.append(len(clips))
        return original(clips)

    monkeypatch.setattr(library.encoder, "embed_clips", counting)
    return calls


def test_first_run_adds_every_case(library: Library, files: Path) -> None:
    report = index_paths(library, [files], workers=0)
    assert (report.n_added, report.n_failed, report.cancelled) == (12, 0, False)
    assert assert_consistent(library.path) == 12
    record = library.catalog.list_cases(limit=1)[0]
    assert record.kind == "image2d" and record.thumbnail and record.reader == "image"


def test_rerun_embeds_nothing(library: Library, files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index_paths(library, [files], workers=0)
    calls = _forbid_embedding(library, monkeypatch)
    report = index_paths(library, [files], workers=0)
    assert (report.n_added, report.n_updated, report.n_unchanged) == (0, 0, 12)
    assert sum(calls) == 0


def test_changed_content_reembeds_only_that_file(library: Library, files: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    index_paths(library, [files], workers=0)
    target = sorted((files / "disc").iterdir())[0]
    [(case_id, _)] = library.catalog.file_states([str(target)])[str(target)]
    before = library.catalog.embedding(case_id, library.model_id)
    cv2.imwrite(str(target), phantom_image("frame", 77))  # new content
    calls = _forbid_embedding(library, monkeypatch)
    report = index_paths(library, [files], workers=0)
    assert (report.n_added, report.n_updated, report.n_unchanged) == (0, 1, 11)
    assert sum(calls) == 1
    after = library.catalog.embedding(case_id, library.model_id)
    assert float(before @ after) < 0.99  # the stored vector follows the new content
    assert assert_consistent(library.path) == 12


def test_touched_but_identical_file_is_skipped_by_fingerprint(library: Library, files: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    index_paths(library, [files], workers=0)
    target = sorted((files / "frame").iterdir())[0]
    os.utime(target, (time.time() + 100, time.time() + 100))
    calls = _forbid_embedding(library, monkeypatch)
    report = index_paths(library, [files], workers=0)
    assert report.n_unchanged == 12 and sum(calls) == 0
    [(_, state)] = library.catalog.file_states([str(target)])[str(target)]
    assert state.mtime == target.stat().st_mtime  # recorded, so the next run skips it by stat alone


def test_deleted_files_are_pruned_only_when_asked(library: Library, files: Path) -> None:
    index_paths(library, [files], workers=0)
    victim = sorted((files / "disc").iterdir())[1]
    victim.unlink()
    assert index_paths(library, [files], workers=0).n_pruned == 0
    assert library.catalog.count_cases() == 12
    report = index_paths(library, [files], workers=0, prune=True)
    assert report.n_pruned == 1 and report.n_unchanged == 11
    assert assert_consistent(library.path) == 11
    assert not library.catalog.file_states([str(victim)])


def test_prune_only_touches_the_given_folder(library: Library, files: Path) -> None:
    index_paths(library, [files], workers=0)
    shutil.rmtree(files / "disc")
    report = index_paths(library, [files / "frame"], workers=0, prune=True)
    assert report.n_pruned == 0 and library.catalog.count_cases() == 12


def test_bad_files_are_recorded_reported_and_cleared(library: Library, files: Path) -> None:
    bad_png = files / "bad.png"
    bad_png.write_bytes((files / "disc" / "disc_000.png").read_bytes()[:60])  # truncated
    (files / "bad.nii.gz").write_bytes(b"\x1f\x8b" + os.urandom(100))  # not a gzip stream
    (files / "notes.xyz").write_bytes(os.urandom(64))  # unsupported
    report = index_paths(library, [files], workers=0)
    assert report.n_added == 12 and report.n_failed == 3
    failed = {str(f.path): f.reason for f in report.failures}
    assert set(failed) == {str(bad_png), str(files / "bad.nii.gz"), str(files / "notes.xyz")}
    assert all(reason and "\n" not in reason for reason in failed.values())
    assert {f.path for f in library.catalog.failures()} == set(failed)
    cv2.imwrite(str(bad_png), phantom_image("disc", 50))  # fixed
    report = index_paths(library, [files], workers=0)
    assert report.n_added == 1 and str(bad_png) not in {f.path for f in library.catalog.failures()}


def test_worker_processes_give_the_same_vectors(tmp_path: Path, tiny_model: Path, files: Path) -> None:
    vectors = {}
    for workers in (0, 2):
        with Library.open(tmp_path / f"lib{workers}", model_path=tiny_model) as lib:
            report = index_paths(lib, [files], workers=workers, batch_size=5)
            assert report.n_added == 12
            ids, vecs = next(lib.catalog.iter_embeddings(lib.model_id))
            paths = lib.catalog.case_file_paths(ids.tolist())
            vectors[workers] = {next(iter(paths[i])): v for i, v in zip(ids.tolist(), vecs)}
    assert vectors[0].keys() == vectors[2].keys()
    for path, vec in vectors[0].items():
        np.testing.assert_allclose(vec, vectors[2][path], atol=1e-3)


def test_modality_given_only_to_cases_that_lack_one(library: Library, files: Path, shared_data: Path,
                                                    tmp_path: Path) -> None:
    series = shared_data / "formats" / "mri" / "dcm_qa_siemens" / "series" / "ax" / "axasc35"
    shutil.copytree(series, tmp_path / "dicom" / "axasc35")
    report = index_paths(library, [files / "disc", tmp_path / "dicom"], workers=0, modality="XR")
    assert report.n_failed == 0
    modalities = {r.reader: r.modality for r in library.catalog.list_cases(with_thumbnails=False)}
    assert modalities == {"image": "XR", "dicom": "MR"}
    dicom = library.catalog.list_cases(modality="MR")[0]
    assert dicom.n_files == len(list(series.iterdir())) and dicom.series_uid


def test_progress_is_throttled_and_ends_with_done(library: Library, files: Path) -> None:
    states: list[IndexProgress] = []
    started = time.monotonic()
    index_paths(library, [files], workers=0, progress=states.append)
    elapsed = time.monotonic() - started
    assert states[-1].stage == "done"
    assert len(states) <= elapsed * 10 + 6  # ~10/s, plus one per stage change and the final ones
    assert {"indexing", "done"} <= {s.stage for s in states}


def test_cancel_leaves_a_consistent_catalog_and_a_rerun_completes(library: Library, files: Path, tiny_model: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.indexer as indexer

    cancel = threading.Event()
    read = indexer.prepare_unit
    calls: list[int] = []

    def read_then_cancel(*args, **kw):  # noqa: ANN002, ANN003, ANN202  (a user pressing Cancel mid-run)
        calls.append(1)
        if len(calls) == 5:
            cancel.set()
        return read(*args, **kw)

    monkeypatch.setattr(indexer, "prepare_unit", read_then_cancel)
    report = index_paths(library, [files], workers=0, batch_size=2, cancel=cancel)
    assert report.cancelled and report.n_added == 4  # two committed batches; the half-full third is dropped
    monkeypatch.undo()
    library.close()
    assert assert_consistent(library.path) == 4
    with Library.open(library.path, model_path=tiny_model) as lib:
        again = index_paths(lib, [files], workers=0)
    assert (again.n_unchanged, again.n_added) == (4, 8)
    assert assert_consistent(library.path) == 12


def test_sigkill_midrun_then_rerun_completes(tmp_path: Path, tiny_model: Path, shared_data: Path) -> None:
    """Real files (X-ray PNGs, CT NIfTI volumes, MRI JPEGs), a real SIGKILL, a re-run that finishes the job."""
    files = tmp_path / "real"
    copy_subset(shared_data, shared_subset(shared_data, {"xray": 5, "ct": 4, "mri": 3}), files)
    library_dir = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        import engine.indexer as indexer
        from engine.library import Library
        slow = indexer.prepare_unit
        def prepare(*args, **kw):
            time.sleep(0.15)
            return slow(*args, **kw)
        indexer.prepare_unit = prepare
        library = Library.open(Path({str(library_dir)!r}), model_path=Path({str(tiny_model)!r}))
        indexer.index_paths(library, [Path({str(files)!r})], workers=0, batch_size=2)
        print("finished")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    db = library_dir / "catalog.sqlite"
    deadline = time.monotonic() + 60
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    committed = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
        if committed >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"indexer ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stale = len(VectorIndex.load(library_dir / INDEX_FILE, 32)) if (library_dir / INDEX_FILE).exists() else 0
    survived = assert_consistent(library_dir)  # catalog intact; index topped up from it on open
    assert stale < survived  # the saved index file missed committed embeddings: the catalog is the truth
    assert 4 <= survived < 12
    with Library.open(library_dir, model_path=tiny_model) as lib:
        report = index_paths(lib, [files], workers=0)
    assert report.n_unchanged == survived and report.n_added == 12 - survived
    assert assert_consistent(library_dir) == 12
    assert len(VectorIndex.load(library_dir / INDEX_FILE, 32)) == 12


def test_reembed_switches_the_library_to_the_new_model(library: Library, files: Path, other_model: Path) -> None:
    index_paths(library, [files], workers=0)
    old_ids = {r.id for r in library.catalog.list_cases()}
    library.close()
    with Library.open(library.path, model_path=other_model) as lib:
        report = index_paths(lib, [], workers=0, reembed=True)  # no paths: every catalogued case
        assert report.n_updated == 12 and lib.model_id == "test-pooling-b"
        assert {r.id for r in lib.catalog.list_cases()} == old_ids
        assert lib.catalog.stats()["embeddings_by_model"] == {"test-pooling-b": 12}
    assert assert_consistent(library.path) == 12


def test_real_subset_indexes_every_kind(subset_library: tuple[Path, list, Path]) -> None:
    library_dir, rows, _ = subset_library
    assert assert_consistent(library_dir) == len(rows)
    with Library.open(library_dir) as lib:
        stats = lib.catalog.stats()
    assert set(stats["by_kind"]) == {"image2d", "volume", "video"}
    assert set(stats["by_modality"]) == {"XR", "MR", "CT", "US"}
    assert stats["failures"] == 0


def test_one_unit_with_two_cases_of_one_uid_keeps_both(library: Library, files: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.indexer as indexer
    from engine.io.scan import read_unit

    def two_stacks(unit, limits):  # noqa: ANN001, ANN202  (a series holding two stacks with one uid)
        cases = read_unit(unit, limits)
        twin = copy.deepcopy(cases[0])
        twin.pixels = 255 - twin.pixels
        for case in (cases[0], twin):
            case.uid = "1.2.3.series"
        return [cases[0], twin]

    monkeypatch.setattr(indexer, "iter_unit", two_stacks)
    report = index_paths(library, [next(files.glob("disc/*.png"))], workers=0)
    assert report.n_added == 2
    uids = sorted(r.uid for r in library.catalog.list_cases())
    assert uids == ["1.2.3.series", "1.2.3.series#2"]
    monkeypatch.undo()
    assert index_paths(library, [next(files.glob("disc/*.png"))], workers=0).n_unchanged == 2


def test_failures_of_deleted_files_are_forgotten(library: Library, files: Path) -> None:
    bad = files / "frame" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n")
    index_paths(library, [files], workers=0)
    assert [f.path for f in library.catalog.failures()] == [str(bad)]
    index_paths(library, [files / "disc"], workers=0)  # another folder: the failure stays
    assert len(library.catalog.failures()) == 1
    bad.unlink()
    index_paths(library, [files], workers=0)
    assert library.catalog.failures() == []


def test_interrupted_reembed_resumes(library: Library, files: Path, other_model: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.indexer as indexer

    index_paths(library, [files], workers=0)
    library.close()
    cancel = threading.Event()
    read = indexer.prepare_unit

    def read_then_cancel(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        if cancel.is_set() is False and read_then_cancel.calls == 3:
            cancel.set()
        read_then_cancel.calls += 1
        return read(*args, **kw)

    read_then_cancel.calls = 0
    monkeypatch.setattr(indexer, "prepare_unit", read_then_cancel)
    with Library.open(library.path, model_path=other_model) as lib:
        first = index_paths(lib, [], workers=0, reembed=True, batch_size=2, cancel=cancel)
        assert first.cancelled and first.n_updated == 4  # two batches of two committed
        monkeypatch.undo()
        second = index_paths(lib, [], workers=0, reembed=True)
        assert (second.n_updated, second.n_unchanged) == (8, 4)  # only what still lacked a new embedding
        third = index_paths(lib, [files], workers=0, reembed=True)
        assert (third.n_updated, third.n_unchanged) == (0, 12)
    assert assert_consistent(library.path) == 12


def test_real_files_rerun_and_one_changed_file(library: Library, tmp_path: Path, shared_data: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rows = shared_subset(shared_data, {"xray": 4, "ct": 3, "mri": 3, "ultrasound": 2})
    files = tmp_path / "real"
    copy_subset(shared_data, rows, files)
    first = index_paths(library, [files], workers=0)
    assert (first.n_added, first.n_failed) == (12, 0)
    calls = _forbid_embedding(library, monkeypatch)
    again = index_paths(library, [files], workers=0)
    assert (again.n_added, again.n_updated, again.n_unchanged, sum(calls)) == (0, 0, 12, 0)
    ct = [r for r in rows if r["modality"] == "ct"]
    target = files / ct[0]["path"]
    shutil.copy2(shared_data / ct[1]["path"], target)  # the file now holds another patient's volume
    changed = index_paths(library, [files], workers=0)
    assert (changed.n_updated, changed.n_unchanged, sum(calls)) == (1, 11, 1)
    [(case_id, state)] = library.catalog.file_states([str(target)])[str(target)]
    twin = files / ct[1]["path"]
    [(twin_id, twin_state)] = library.catalog.file_states([str(twin)])[str(twin)]
    assert state.fingerprint == twin_state.fingerprint
    np.testing.assert_allclose(library.catalog.embedding(case_id, library.model_id),
                               library.catalog.embedding(twin_id, library.model_id), atol=2e-3)


def test_pruning_a_folder_that_is_gone(library: Library, files: Path) -> None:
    index_paths(library, [files], workers=0)
    shutil.rmtree(files / "frame")
    report = index_paths(library, [files / "frame"], workers=0, prune=True)
    assert (report.n_pruned, report.n_failed) == (6, 0)
    assert assert_consistent(library.path) == 6


def test_a_reader_process_that_dies_fails_only_its_file(library: Library, files: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.indexer as indexer
    from tests.engine.crashing_reader import prepare_or_crash

    shutil.copy2(next(files.glob("disc/*.png")), files / "crash_me.png")
    monkeypatch.setattr(indexer, "prepare_unit", prepare_or_crash)
    report = index_paths(library, [files], workers=2)
    assert report.n_added == 12
    assert [(f.path.name, f.reason) for f in report.failures] == [
        ("crash_me.png", "reader process crashed while reading it")]
    assert assert_consistent(library.path) == 12


def test_modality_given_later_labels_unchanged_unknown_cases(library: Library, files: Path) -> None:
    index_paths(library, [files], workers=0)
    assert library.catalog.stats()["by_modality"] == {"OT": 12}
    report = index_paths(library, [files / "disc"], workers=0, modality="us")
    assert report.n_unchanged == 6
    assert library.catalog.stats()["by_modality"] == {"OT": 6, "US": 6}


def test_overlapping_paths_index_each_file_once(library: Library, files: Path) -> None:
    one = next(files.glob("disc/*.png"))
    report = index_paths(library, [files, one, files / "disc"], workers=0)
    assert (report.n_added, report.n_updated) == (12, 0)
