"""engine.catalog: schema + migrations, WAL, permissions, upserts, filters, failures, embeddings round trip."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from engine import catalog_schema
from engine.catalog import Catalog, CatalogError, FileState, NewCase, blob_to_vector, iso_date, vector_to_blob
from engine.io.case import Case, Failure
from tests.engine.conftest import phantom_image


def _file(folder: Path, name: str, content: bytes = b"pixels") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _new(folder: Path, name: str, modality: str = "CT", kind: str = "volume", date: str | None = None,
         description: str | None = None) -> NewCase:
    path = _file(folder, name, name.encode())
    return NewCase(uid=str(path), kind=kind, modality=modality, shape=[4, 8, 8], fingerprint="f" + name,
                   reader="nifti", unit_key=str(path), files=[FileState.of(path)], thumbnail=b"png:" + name.encode(),
                   study_date=date, description=description or name)


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_new_catalog_has_schema_version_wal_and_private_file(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    cat.write_batch([_new(tmp_path, "a.nii")], _vectors(1), "m")
    cat.close()
    db = tmp_path / "lib" / "catalog.sqlite"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == catalog_schema.SCHEMA_VERSION
        indexed = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    for column in ("modality", "kind", "study_date", "path", "model_id", "unit_key"):
        assert any(column in name for name in indexed), column


def test_upsert_keeps_id_and_replaces_files_and_embedding(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    new = _new(tmp_path, "a.nii")
    [(case_id, created)] = cat.write_batch([new], _vectors(1, seed=1), "m")
    assert created
    other = _file(tmp_path, "a_extra.nii")
    new.files = [FileState.of(other)]
    new.modality = "MR"
    [(again, created)] = cat.write_batch([new], _vectors(1, seed=2), "m")
    assert again == case_id and not created
    record = cat.get_case(case_id)
    assert record.modality == "MR" and record.source_paths == [str(other)] and record.n_files == 1
    np.testing.assert_allclose(cat.embedding(case_id, "m"), _vectors(1, seed=2)[0], atol=1e-3)
    assert cat.count_cases() == 1


def test_filters_text_dates_paging(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    cases = [
        _new(tmp_path, "ct1.nii", "CT", "volume", "2024-01-05", "chest low dose"),
        _new(tmp_path, "ct2.nii", "CT", "volume", "2024-03-01", "abdomen"),
        _new(tmp_path, "xr1.png", "XR", "image2d", "2023-12-31", "chest pa"),
        _new(tmp_path, "us1.mp4", "US", "video", None, "lung cine"),
    ]
    ids = [i for i, _ in cat.write_batch(cases, _vectors(4), "m")]
    assert {r.id for r in cat.list_cases(modality="CT")} == set(ids[:2])
    assert {r.id for r in cat.list_cases(modality=["CT", "US"])} == {ids[0], ids[1], ids[3]}
    assert [r.id for r in cat.list_cases(kind="video")] == [ids[3]]
    assert {r.id for r in cat.list_cases(text="chest")} == {ids[0], ids[2]}
    assert [r.id for r in cat.list_cases(text="xr1.png")] == [ids[2]]  # matches the source path
    assert {r.id for r in cat.list_cases(date_from="2024-01-01", date_to="2024-02-01")} == {ids[0]}
    page = cat.list_cases(limit=2, offset=1)
    assert [r.id for r in page] == [ids[2], ids[1]]  # newest first
    assert cat.count_cases(modality="CT") == 2
    assert page[0].thumbnail == b"png:xr1.png"
    assert cat.list_cases(limit=1, with_thumbnails=False)[0].thumbnail is None
    np.testing.assert_array_equal(cat.filter_case_ids(exclude_modalities=["CT"]), sorted(ids[2:]))


def test_embeddings_round_trip_as_float16(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    vectors = _vectors(3)
    ids = [i for i, _ in cat.write_batch([_new(tmp_path, f"{i}.nii") for i in range(3)], vectors, "model-a")]
    got_ids, got = next(cat.iter_embeddings("model-a"))
    assert got_ids.tolist() == ids
    np.testing.assert_allclose(got, vectors, atol=2e-3)
    assert len(vector_to_blob(vectors[0])) == 2 * vectors.shape[1]
    np.testing.assert_allclose(blob_to_vector(vector_to_blob(vectors[0])), vectors[0], atol=2e-3)
    assert cat.embedding_ids("model-b").size == 0
    assert cat.stats()["embeddings_by_model"] == {"model-a": 3}


def test_remove_cascades_to_files_embeddings_thumbnails(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    ids = [i for i, _ in cat.write_batch([_new(tmp_path, "a.nii"), _new(tmp_path, "b.nii")], _vectors(2), "m")]
    assert cat.remove_cases([ids[0], 999]) == 1
    with cat.session() as s:
        assert s.execute(text("SELECT count(*) FROM source_files")).scalar() == 1
        assert s.execute(text("SELECT count(*) FROM embeddings")).scalar() == 1
        assert s.execute(text("SELECT count(*) FROM thumbnails")).scalar() == 1
    with pytest.raises(KeyError):
        cat.get_case(ids[0])


def test_failures_are_recorded_updated_and_cleared_by_success(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    good = _new(tmp_path, "a.nii")
    cat.record_failures([Failure(Path(good.files[0].path), "truncated"), Failure(tmp_path / "b.png", "bad header")])
    cat.record_failures([Failure(tmp_path / "b.png", "still bad")])
    assert {f.path: f.reason for f in cat.failures()} == {good.files[0].path: "truncated",
                                                          str(tmp_path / "b.png"): "still bad"}
    cat.write_batch([good], _vectors(1), "m")
    assert [f.path for f in cat.failures()] == [str(tmp_path / "b.png")]


def test_case_ids_under_a_folder_escapes_like_wildcards(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    ids = [i for i, _ in cat.write_batch(
        [_new(tmp_path, "dir_1/a.nii"), _new(tmp_path, "dirX1/b.nii"), _new(tmp_path, "dir_1b/c.nii")], _vectors(3),
        "m")]
    assert cat.case_ids_under([tmp_path / "dir_1"]) == {ids[0]}
    assert cat.case_ids_under([tmp_path / "dir_1" / "a.nii"]) == {ids[0]}
    assert cat.case_ids_under([tmp_path]) == set(ids)


def test_new_case_from_dicom_metadata(tmp_path: Path) -> None:
    path = _file(tmp_path, "im.dcm")
    case = Case(pixels=phantom_image("disc", 0), kind="image2d", modality="CR", source_files=[path],
                fingerprint="abc", uid="1.2.3",
                metadata={"PatientID": "P1", "PatientName": "Doe^J", "StudyDate": "20240229",
                          "SeriesDescription": "PA", "StudyDescription": "Chest", "BodyPartExamined": "CHEST"})
    new = NewCase.from_case(case, "dicom", "1.2.3")
    assert (new.study_date, new.patient_id, new.body_part) == ("2024-02-29", "P1", "CHEST")
    assert new.description == "Chest / PA"
    assert new.files[0].size == path.stat().st_size and len(new.files[0].fingerprint) == 40


def test_iso_date() -> None:
    assert iso_date("20240105") == "2024-01-05"
    assert iso_date("2024-01-05") == "2024-01-05"
    assert iso_date("2024") is None and iso_date(None) is None and iso_date("abcdefgh") is None


def test_migration_steps_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat = Catalog.open(tmp_path / "lib")
    cat.write_batch([_new(tmp_path, "a.nii")], _vectors(1), "m")
    cat.close()
    ran: list[int] = []

    def add_column(conn) -> None:  # noqa: ANN001
        ran.append(1)
        conn.execute(text("ALTER TABLE cases ADD COLUMN note VARCHAR"))

    current = catalog_schema.SCHEMA_VERSION  # the catalog was written at this version; the next step is added
    monkeypatch.setattr(catalog_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(catalog_schema.MIGRATIONS, current, add_column)
    cat = Catalog.open(tmp_path / "lib")
    assert ran == [1] and cat.count_cases() == 1
    cat.close()
    with sqlite3.connect(tmp_path / "lib" / "catalog.sqlite") as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == current + 1
        assert "note" in {row[1] for row in conn.execute("PRAGMA table_info(cases)")}
    Catalog.open(tmp_path / "lib").close()  # already at the new version: nothing runs again
    assert ran == [1]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Catalog.open(tmp_path / "lib").close()
    with sqlite3.connect(tmp_path / "lib" / "catalog.sqlite") as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(CatalogError, match="newer"):
        Catalog.open(tmp_path / "lib")


def test_clear_failures_under_a_folder(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "lib")
    cat.record_failures([Failure(tmp_path / "a" / "x.png", "bad"), Failure(tmp_path / "a" / "y.png", "bad"),
                         Failure(tmp_path / "a_b" / "z.png", "bad")])
    assert cat.clear_failures_under([tmp_path / "a"], keep=[str(tmp_path / "a" / "y.png")]) == 1
    assert sorted(f.path for f in cat.failures()) == [str(tmp_path / "a" / "y.png"), str(tmp_path / "a_b" / "z.png")]
