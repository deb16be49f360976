"""engine.library: folder layout, model id check, index reconciled with the catalog, re-reading cases."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest

from engine.config import default_library_dir
from engine.indexer import index_paths
from engine.library import INDEX_FILE, LIBRARY_FILE, Library, LibraryError, ModelMismatchError
from engine.vectors import VectorIndex
from tests.engine.conftest import write_phantoms


@pytest.fixture()
def phantom_library(tmp_path: Path, tiny_model: Path) -> Library:
    write_phantoms(tmp_path / "files", 5)
    library = Library.open(tmp_path / "lib", model_path=tiny_model)
    report = index_paths(library, [tmp_path / "files"], workers=0)
    assert report.n_added == 10
    yield library
    library.close()


def test_default_library_lives_under_m3ret_home(isolated_home: Path, tiny_model: Path) -> None:
    with Library.open(model_path=tiny_model) as library:
        assert library.path == default_library_dir()
        assert str(library.path).startswith(str(isolated_home))
        assert stat.S_IMODE(library.path.stat().st_mode) == 0o700


def test_library_records_its_model_on_first_use(tmp_path: Path, tiny_model: Path) -> None:
    with Library.open(tmp_path / "lib", model_path=tiny_model) as library:
        assert library.model_id is None
        assert library.encoder.model_id == "test-pooling-32"
    info = json.loads((tmp_path / "lib" / LIBRARY_FILE).read_text())
    assert info["model_id"] == "test-pooling-32" and info["embed_dim"] == 32


def test_other_model_is_refused_with_reembed_hint(phantom_library: Library, other_model: Path) -> None:
    with Library.open(phantom_library.path, model_path=other_model) as library:
        with pytest.raises(ModelMismatchError, match="m3ret index --reembed"):
            library.encoder
        with pytest.raises(ModelMismatchError):
            index_paths(library, [phantom_library.path.parent / "files"], workers=0)
        assert library.catalog.count_cases() == 10  # nothing touched


def test_missing_index_is_rebuilt_from_the_catalog(phantom_library: Library) -> None:
    path = phantom_library.path
    phantom_library.close()
    (path / INDEX_FILE).unlink()
    with Library.open(path) as library:
        assert len(library.index) == 10
        assert (path / INDEX_FILE).is_file()


def test_stale_index_is_reconciled_on_open(phantom_library: Library) -> None:
    path, model_id = phantom_library.path, phantom_library.model_id
    ids = phantom_library.catalog.embedding_ids(model_id)
    phantom_library.close()
    stale = VectorIndex.load(path / INDEX_FILE, 32)
    stale.remove(ids[:3])  # an indexer killed before saving: the index misses committed embeddings
    stale.add(np.array([9999]), np.ones((1, 32), np.float32))  # and holds a removed case
    stale.save(path / INDEX_FILE)
    with Library.open(path) as library:
        assert sorted(library.index.keys()) == sorted(ids)
    assert sorted(VectorIndex.load(path / INDEX_FILE, 32).keys()) == sorted(ids)  # repaired file saved


def test_damaged_index_file_is_rebuilt(phantom_library: Library) -> None:
    path = phantom_library.path
    phantom_library.close()
    (path / INDEX_FILE).write_bytes(b"garbage")
    with Library.open(path) as library:
        assert len(library.index) == 10


def test_remove_and_rebuild(phantom_library: Library) -> None:
    ids = phantom_library.catalog.embedding_ids(phantom_library.model_id)
    assert phantom_library.remove_cases([int(ids[0])]) == 1
    assert len(phantom_library.index) == 9
    assert phantom_library.rebuild_index() == 9


def test_read_case_rereads_pixels(phantom_library: Library, tmp_path: Path) -> None:
    import cv2

    record = phantom_library.catalog.list_cases(limit=1)[0]
    case = phantom_library.read_case(record.id)
    expected = cv2.imread(record.source_paths[0], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(case.pixels, expected)
    Path(record.source_paths[0]).unlink()
    with pytest.raises(LibraryError, match="source file missing"):
        phantom_library.read_case(record.id)


def test_read_case_of_a_real_volume(subset_library: tuple[Path, list, Path]) -> None:
    library_dir, _, _ = subset_library
    with Library.open(library_dir) as library:
        record = library.catalog.list_cases(kind="volume", limit=1)[0]
        case = library.read_case(record.id)
    assert case.kind == "volume" and list(case.shape) == list(record.shape_tuple)
    assert case.modality == "CT"  # the NIfTI says nothing; the modality given at indexing is put back


def test_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LibraryError, match="not a folder"):
        Library.open(tmp_path / "file")


def test_refresh_picks_up_what_another_process_indexed(tmp_path: Path, tiny_model: Path) -> None:
    files = write_phantoms(tmp_path / "files", 3)
    viewer = Library.open(tmp_path / "lib", model_path=tiny_model)  # e.g. the GUI, opened on an empty library
    assert len(viewer.index) == 0
    with Library.open(tmp_path / "lib", model_path=tiny_model) as other:  # e.g. `m3ret index` in a terminal
        index_paths(other, [tmp_path / "files" / "disc"], workers=0)
    viewer.refresh_index()
    assert viewer.model_id == "test-pooling-32" and len(viewer.index) == 3
    with Library.open(tmp_path / "lib", model_path=tiny_model) as other:
        index_paths(other, [tmp_path / "files"], workers=0)
    assert viewer.refresh_index() == (3, 0)
    assert len(viewer.index) == len(files)
    viewer.close()


def test_a_large_library_rebuilds_a_quantized_index_reranked_from_the_catalog(
        phantom_library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.library as library_module

    monkeypatch.setattr(library_module, "QUANTIZED_MIN", 5)  # 10 cases count as a large library here
    phantom_library.rebuild_index()
    index = phantom_library.index
    assert index.quantized
    record = phantom_library.catalog.list_cases(with_thumbnails=False)[0]
    vector = phantom_library.catalog.embedding(record.id, phantom_library.model_id)
    keys, sims = index.search(vector, 3)
    assert keys[0] == record.id and sims[0] == pytest.approx(1.0, abs=1e-6)  # the catalog's f16 vector, exactly
    path = phantom_library.path
    phantom_library.close()
    with Library.open(path) as reopened:  # the saved file keeps int8 + the re-ranking
        assert reopened.index.quantized
        assert reopened.index.search(vector, 1)[0][0] == record.id
