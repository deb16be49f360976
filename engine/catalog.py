"""The catalog: every case of a library, its source files, embeddings, thumbnails and read failures (SQLite).

The catalog is the library's source of truth (the vector index is a cache rebuilt from its embeddings). SQLite
runs in WAL mode so readers (the GUI) never block the one writer (the indexer); every write is one transaction
per batch. The database file is readable by its owner only: it holds patient identifiers.

Reads return plain ``CaseRecord`` / ``FailureRecord`` dataclasses, safe to hand to another thread.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog_schema import (
    CaseRow,
    EmbeddingRow,
    FailureRow,
    SourceFileRow,
    ThumbnailRow,
    migrate,
)
from engine.io.case import Case, Failure, safe_text
from engine.io.fingerprint import file_fingerprint
from engine.library_lock import opening_lock
from engine.modality import describe as describe_modality

CATALOG_FILENAME = "catalog.sqlite"
_SQL_CHUNK = 500  # ids per IN (...) clause


class CatalogError(Exception):
    """The catalog cannot be opened or used."""


@dataclass
class CaseRecord:
    """One catalogued case (no pixels; ``Library.read_case`` re-reads them)."""

    id: int
    kind: str
    modality: str
    body_part: str | None
    patient_id: str | None
    patient_name: str | None
    study_uid: str | None
    series_uid: str | None
    study_date: str | None  # YYYY-MM-DD
    description: str | None
    shape: str  # JSON list, e.g. "[64, 64, 64]"
    n_files: int
    thumbnail: bytes | None  # PNG
    uid: str
    fingerprint: str
    added_at: float  # unix seconds
    source_paths: list[str] = field(default_factory=list)
    reader: str = ""
    unit_key: str = ""
    predicted_modality: str | None = None  # the modality head's guess when the file did not say (engine.modality)
    modality_confidence: float | None = None

    @property
    def modality_text(self) -> str:
        """The modality as shown: "CT", "XR, predicted 0.97", or "OT (US? 0.41)"."""
        return describe_modality(self.modality, self.predicted_modality, self.modality_confidence)

    @property
    def shape_tuple(self) -> tuple[int, ...]:
        return tuple(json.loads(self.shape))

    @property
    def path(self) -> str:
        """The path that names the case: its file, or the folder of a multi-file series."""
        if len(self.source_paths) == 1:
            return self.source_paths[0]
        return os.path.commonpath(self.source_paths) if self.source_paths else ""


@dataclass
class FailureRecord:
    path: str
    reason: str
    at: float


@dataclass(frozen=True)
class FileState:
    """A source file as last indexed: size and mtime (cheap check), content fingerprint (sure check)."""

    path: str
    size: int
    mtime: float
    fingerprint: str

    @classmethod
    def of(cls, path: Path | str, fingerprint: str | None = None) -> "FileState":
        st = os.stat(path)
        return cls(str(path), st.st_size, st.st_mtime, fingerprint or file_fingerprint(path))


@dataclass
class NewCase:
    """A case ready to be written: catalog fields, source file states and thumbnail (picklable, no pixels)."""

    uid: str
    kind: str
    modality: str
    shape: list[int]
    fingerprint: str
    reader: str
    unit_key: str
    files: list[FileState]
    thumbnail: bytes | None = None
    body_part: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    study_date: str | None = None
    description: str | None = None
    predicted_modality: str | None = None
    modality_confidence: float | None = None

    @classmethod
    def from_case(cls, case: Case, reader: str, unit_key: str, thumbnail: bytes | None = None) -> "NewCase":
        meta = case.metadata
        files = [FileState.of(Path(p).absolute()) for p in case.source_files]
        return cls(
            uid=case.uid or str(case.path),
            kind=case.kind,
            modality=case.modality or "OT",
            shape=list(case.shape),
            fingerprint=case.fingerprint,
            reader=reader,
            unit_key=unit_key,
            files=files,
            thumbnail=thumbnail,
            body_part=meta.get("BodyPartExamined"),
            patient_id=meta.get("PatientID"),
            patient_name=meta.get("PatientName"),
            study_uid=meta.get("StudyInstanceUID"),
            series_uid=meta.get("SeriesInstanceUID"),
            study_date=iso_date(meta.get("StudyDate") or meta.get("SeriesDate")),
            description=_description(meta, case),
        )


def iso_date(value: str | None) -> str | None:
    """DICOM ``YYYYMMDD`` (or already ``YYYY-MM-DD``) -> ``YYYY-MM-DD``; None when absent or malformed."""
    if not value:
        return None
    digits = value.strip().replace("-", "").replace(".", "")[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"


def _description(meta: dict[str, str], case: Case) -> str:
    parts = [meta.get(k) for k in ("StudyDescription", "SeriesDescription", "ProtocolName")]
    text = " / ".join(dict.fromkeys(p for p in parts if p))
    return safe_text(text or case.path.name)  # shown, not a key: undecodable file-name bytes as \xNN


def vector_to_blob(vector: np.ndarray) -> bytes:
    """float32 [D] -> float16 little-endian bytes."""
    return np.asarray(vector, dtype="<f2").tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    """float16 bytes -> float32 [D]."""
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)


def _chunks(items: Sequence[Any], size: int = _SQL_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _like_prefix(folder: str) -> str:
    escaped = folder.rstrip(os.sep).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + os.sep + "%"


class Catalog:
    """The SQLite catalog of one library folder."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.path = path
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, library_dir: Path) -> "Catalog":
        """Open (or create) ``library_dir/catalog.sqlite``, migrating an older schema."""
        library_dir = Path(library_dir)
        library_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = library_dir / CATALOG_FILENAME
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # user-only before any row is written
            os.close(fd)
        engine = create_engine(
            f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30}, future=True
        )
        event.listen(engine, "connect", _configure_connection)
        try:
            with opening_lock(library_dir), engine.begin() as conn:  # two processes never both create tables
                migrate(conn)
        except Exception as exc:
            engine.dispose()
            raise CatalogError(f"{path}: cannot open catalog ({exc})") from exc
        _restrict_permissions(path)
        return cls(engine, path)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error (one transaction)."""
        with self._sessions.begin() as session:
            yield session

    # ---- reads ---------------------------------------------------------------------------------------------

    def list_cases(
        self,
        modality: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
        text: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_thumbnails: bool = True,
    ) -> list[CaseRecord]:
        """Cases matching every given filter, newest first (``text`` searches descriptions, ids and paths)."""
        query = select(*_RECORD_COLUMNS).where(*self._conditions(modality, kind, text, date_from, date_to))
        query = query.order_by(CaseRow.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._sessions() as session:
            return self._records(session, session.execute(query).all(), with_thumbnails)

    def count_cases(self, modality=None, kind=None, text=None, date_from=None, date_to=None) -> int:  # noqa: ANN001
        """How many cases ``list_cases`` would return without a limit."""
        query = select(func.count(CaseRow.id)).where(*self._conditions(modality, kind, text, date_from, date_to))
        with self._sessions() as session:
            return int(session.scalar(query) or 0)

    def get_case(self, case_id: int) -> CaseRecord:
        """One case by id; ``KeyError`` when there is none."""
        records = self.get_cases([case_id])
        if case_id not in records:
            raise KeyError(f"no case with id {case_id}")
        return records[case_id]

    def get_cases(self, case_ids: Sequence[int], with_thumbnails: bool = True) -> dict[int, CaseRecord]:
        """Cases by id (missing ids are left out)."""
        ids = [int(i) for i in case_ids]
        out: dict[int, CaseRecord] = {}
        with self._sessions() as session:
            for chunk in _chunks(ids):
                rows = session.execute(select(*_RECORD_COLUMNS).where(CaseRow.id.in_(chunk))).all()
                out.update((r.id, r) for r in self._records(session, rows, with_thumbnails))
        return out

    def thumbnail(self, case_id: int) -> bytes | None:
        with self._sessions() as session:
            return session.scalar(select(ThumbnailRow.png).where(ThumbnailRow.case_id == case_id))

    def failures(self) -> list[FailureRecord]:
        """Every recorded read failure, most recent first."""
        with self._sessions() as session:
            rows = session.scalars(select(FailureRow).order_by(FailureRow.at.desc(), FailureRow.path)).all()
            return [FailureRecord(r.path, r.reason, r.at) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Counts: cases (total, per modality, per kind), files, failures, embeddings per model; file size."""
        with self._sessions() as session:
            by_modality = dict(session.execute(select(CaseRow.modality, func.count()).group_by(CaseRow.modality)).all())
            by_kind = dict(session.execute(select(CaseRow.kind, func.count()).group_by(CaseRow.kind)).all())
            by_model = dict(
                session.execute(select(EmbeddingRow.model_id, func.count()).group_by(EmbeddingRow.model_id)).all()
            )
            n_files = session.scalar(select(func.count(SourceFileRow.id))) or 0
            n_failures = session.scalar(select(func.count(FailureRow.id))) or 0
        size = sum(p.stat().st_size for p in self.path.parent.glob(CATALOG_FILENAME + "*") if p.is_file())
        return {
            "cases": sum(by_modality.values()),
            "by_modality": by_modality,
            "by_kind": by_kind,
            "files": int(n_files),
            "failures": int(n_failures),
            "embeddings_by_model": by_model,
            "catalog_bytes": size,
        }

    def filter_case_ids(
        self,
        modalities: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        exclude_modalities: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Ids (int64, sorted) of the cases passing the filters."""
        query = select(CaseRow.id).where(*self._conditions(modalities, kinds, None, date_from, date_to))
        if exclude_modalities:
            query = query.where(CaseRow.modality.not_in(list(exclude_modalities)))
        with self._engine.connect() as conn:  # plain rows: up to millions of ids
            rows = conn.execute(query.order_by(CaseRow.id)).all()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def case_ids_with_fingerprint(self, fingerprint: str) -> list[int]:
        """Ids of the cases read from content with this fingerprint (the same file or a copy of it)."""
        with self._sessions() as session:
            return sorted(session.scalars(select(CaseRow.id).where(CaseRow.fingerprint == fingerprint)).all())

    def embedding(self, case_id: int, model_id: str) -> np.ndarray | None:
        """A case's stored embedding (float32 [D]) for a model, or None."""
        query = select(EmbeddingRow.vector).where(EmbeddingRow.case_id == case_id, EmbeddingRow.model_id == model_id)
        with self._sessions() as session:
            blob = session.scalar(query)
        return None if blob is None else blob_to_vector(blob)

    def embedding_ids(self, model_id: str) -> np.ndarray:
        """Ids (int64, sorted) of the cases with an embedding by ``model_id``."""
        query = select(EmbeddingRow.case_id).where(EmbeddingRow.model_id == model_id).order_by(EmbeddingRow.case_id)
        with self._sessions() as session:
            return np.asarray(session.scalars(query).all(), dtype=np.int64)

    def iter_embeddings(
        self, model_id: str, case_ids: Sequence[int] | None = None, chunk: int = 5000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids int64 [n], vectors float32 [n, D])`` in chunks, for every (or the given) case with an embedding."""
        base = select(EmbeddingRow.case_id, EmbeddingRow.vector).where(EmbeddingRow.model_id == model_id)
        with self._sessions() as session:
            if case_ids is None:
                last = -1
                while True:
                    query = base.where(EmbeddingRow.case_id > last).order_by(EmbeddingRow.case_id).limit(chunk)
                    rows = session.execute(query).all()
                    if not rows:
                        return
                    yield _stack(rows)
                    last = rows[-1][0]
            else:
                for ids in _chunks([int(i) for i in case_ids], chunk if chunk < _SQL_CHUNK else _SQL_CHUNK):
                    rows = session.execute(base.where(EmbeddingRow.case_id.in_(ids))).all()
                    if rows:
                        yield _stack(rows)

    def file_states(self, paths: Iterable[str]) -> dict[str, list[tuple[int, FileState]]]:
        """For each known path: the cases it belongs to, with the file's state when they were indexed."""
        out: dict[str, list[tuple[int, FileState]]] = {}
        with self._sessions() as session:
            for chunk in _chunks(list(paths)):
                rows = session.scalars(select(SourceFileRow).where(SourceFileRow.path.in_(chunk))).all()
                for r in rows:
                    out.setdefault(r.path, []).append((r.case_id, FileState(r.path, r.size, r.mtime, r.fingerprint)))
        return out

    def case_file_paths(self, case_ids: Iterable[int]) -> dict[int, set[str]]:
        """Each case's source file paths."""
        out: dict[int, set[str]] = {}
        with self._sessions() as session:
            for chunk in _chunks(sorted(set(case_ids))):
                query = select(SourceFileRow.case_id, SourceFileRow.path).where(SourceFileRow.case_id.in_(chunk))
                for case_id, path in session.execute(query):
                    out.setdefault(case_id, set()).add(path)
        return out

    def case_ids_under(self, roots: Sequence[Path | str]) -> set[int]:
        """Cases with a source file at or under one of ``roots`` (absolute paths)."""
        ids: set[int] = set()
        with self._sessions() as session:
            for root in roots:
                text = str(root)
                cond = or_(SourceFileRow.path == text, SourceFileRow.path.like(_like_prefix(text), escape="\\"))
                ids.update(session.scalars(select(SourceFileRow.case_id).where(cond).distinct()).all())
        return ids

    # ---- writes --------------------------------------------------------------------------------------------

    def write_batch(
        self,
        cases: Sequence[NewCase],
        vectors: np.ndarray | None,
        model_id: str,
        delete_ids: Iterable[int] = (),
        failures: Sequence[Failure] = (),
        touched: Sequence[FileState] = (),
    ) -> list[tuple[int, bool]]:
        """One transaction: upsert ``cases`` with their embeddings (``vectors [N, D]``), delete stale cases,
        record failures, refresh the stat of files whose content did not change. Returns ``(id, created)``.

        A case is identified by (unit_key, uid); an updated case keeps its id and loses its old files,
        embeddings (of every model: the content changed) and thumbnail."""
        now = time.time()
        out: list[tuple[int, bool]] = []
        with self.session() as session:
            existing = self._existing_ids(session, cases)
            files, embeddings, thumbnails = [], [], []
            for i, new in enumerate(cases):
                values = _case_values(new, now)
                case_id = existing.get((new.unit_key, new.uid))
                if case_id is None:
                    result = session.execute(insert(CaseRow).values(added_at=now, **values))
                    case_id = int(result.inserted_primary_key[0])
                    existing[(new.unit_key, new.uid)] = case_id
                    out.append((case_id, True))
                else:
                    session.execute(update(CaseRow).where(CaseRow.id == case_id).values(**values))
                    for table in (SourceFileRow, EmbeddingRow, ThumbnailRow):
                        session.execute(delete(table).where(table.case_id == case_id))
                    out.append((case_id, False))
                files += [dict(case_id=case_id, path=f.path, size=f.size, mtime=f.mtime, fingerprint=f.fingerprint)
                          for f in new.files]
                if vectors is not None:
                    embeddings.append(dict(case_id=case_id, model_id=model_id, dim=int(vectors.shape[1]),
                                           vector=vector_to_blob(vectors[i])))
                if new.thumbnail is not None:
                    thumbnails.append(dict(case_id=case_id, png=new.thumbnail))
            for table, rows in ((SourceFileRow, files), (EmbeddingRow, embeddings), (ThumbnailRow, thumbnails)):
                if rows:
                    session.execute(insert(table), rows)
            stale = set(int(i) for i in delete_ids) - {case_id for case_id, _ in out}
            for chunk in _chunks(sorted(stale)):
                session.execute(delete(CaseRow).where(CaseRow.id.in_(chunk)))
            for chunk in _chunks([f["path"] for f in files]):
                session.execute(delete(FailureRow).where(FailureRow.path.in_(chunk)))
            for failure in failures:
                self._record_failure(session, failure, now)
            for state in touched:
                session.execute(
                    update(SourceFileRow)
                    .where(SourceFileRow.path == state.path, SourceFileRow.fingerprint == state.fingerprint)
                    .values(size=state.size, mtime=state.mtime)
                )
        return out

    def record_failures(self, failures: Sequence[Failure]) -> None:
        now = time.time()
        with self.session() as session:
            for failure in failures:
                self._record_failure(session, failure, now)

    def set_unknown_modality(self, case_ids: Iterable[int], modality: str, unknown: Sequence[str] = ("", "OT")) -> None:
        """Give ``modality`` to those of the cases whose modality is one of ``unknown`` or was predicted (the
        user's word beats the modality head's guess; a modality read from the file is kept)."""
        with self.session() as session:
            for chunk in _chunks(sorted(set(case_ids))):
                not_from_file = or_(CaseRow.modality.in_(list(unknown)), CaseRow.modality_confidence.is_not(None))
                session.execute(
                    update(CaseRow).where(CaseRow.id.in_(chunk), not_from_file)
                    .values(modality=modality, predicted_modality=None, modality_confidence=None)
                )

    def clear_failures_under(self, roots: Sequence[Path | str], keep: Sequence[str] = ()) -> int:
        """Forget failures at or under ``roots`` except the ``keep`` paths; returns how many were removed."""
        kept = set(keep)
        removed = 0
        with self.session() as session:
            for root in roots:
                text_root = str(root)
                cond = or_(FailureRow.path == text_root, FailureRow.path.like(_like_prefix(text_root), escape="\\"))
                paths = [p for p in session.scalars(select(FailureRow.path).where(cond)) if p not in kept]
                for chunk in _chunks(paths):
                    removed += int(session.execute(delete(FailureRow).where(FailureRow.path.in_(chunk))).rowcount or 0)
        return removed

    def remove_cases(self, case_ids: Iterable[int]) -> int:
        """Delete cases (with their files, embeddings, thumbnails); returns how many existed."""
        ids = sorted(set(int(i) for i in case_ids))
        removed = 0
        with self.session() as session:
            for chunk in _chunks(ids):
                result = session.execute(delete(CaseRow).where(CaseRow.id.in_(chunk)))
                removed += int(result.rowcount or 0)
        return removed

    def delete_embeddings(self, model_id: str | None = None, keep_model_id: str | None = None) -> None:
        """Drop the embeddings of one model, or of every model but ``keep_model_id``."""
        with self.session() as session:
            query = delete(EmbeddingRow)
            if model_id is not None:
                query = query.where(EmbeddingRow.model_id == model_id)
            if keep_model_id is not None:
                query = query.where(EmbeddingRow.model_id != keep_model_id)
            session.execute(query)

    # ---- helpers -------------------------------------------------------------------------------------------

    @staticmethod
    def _conditions(modality, kind, text, date_from, date_to) -> list[Any]:  # noqa: ANN001
        conds: list[Any] = []
        if modality:
            conds.append(CaseRow.modality.in_([modality] if isinstance(modality, str) else list(modality)))
        if kind:
            conds.append(CaseRow.kind.in_([kind] if isinstance(kind, str) else list(kind)))
        if date_from:
            conds.append(CaseRow.study_date >= date_from)
        if date_to:
            conds.append(CaseRow.study_date <= date_to)
        if text:
            like = f"%{text}%"
            in_files = select(SourceFileRow.case_id).where(SourceFileRow.path.like(like))
            conds.append(
                or_(
                    CaseRow.description.like(like),
                    CaseRow.patient_id.like(like),
                    CaseRow.patient_name.like(like),
                    CaseRow.body_part.like(like),
                    CaseRow.modality.like(like),
                    CaseRow.uid.like(like),
                    CaseRow.id.in_(in_files),
                )
            )
        return conds

    def _records(self, session: Session, rows: Sequence[Any], with_thumbnails: bool) -> list[CaseRecord]:
        """Plain records from ``_RECORD_COLUMNS`` rows, with their source paths (and thumbnails)."""
        ids = [row.id for row in rows]
        paths: dict[int, list[str]] = {}
        for chunk in _chunks(ids):
            query = select(SourceFileRow.case_id, SourceFileRow.path).where(SourceFileRow.case_id.in_(chunk))
            for case_id, path in session.execute(query.order_by(SourceFileRow.path)):
                paths.setdefault(case_id, []).append(path)
        thumbs = self._thumbnails(session, ids) if with_thumbnails else {}
        return [CaseRecord(**row._asdict(), thumbnail=thumbs.get(row.id), source_paths=paths.get(row.id, []))
                for row in rows]

    @staticmethod
    def _thumbnails(session: Session, ids: list[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for chunk in _chunks(ids):
            query = select(ThumbnailRow.case_id, ThumbnailRow.png).where(ThumbnailRow.case_id.in_(chunk))
            out.update((case_id, png) for case_id, png in session.execute(query))
        return out

    @staticmethod
    def _existing_ids(session: Session, cases: Sequence[NewCase]) -> dict[tuple[str, str], int]:
        unit_keys = sorted({c.unit_key for c in cases})
        found: dict[tuple[str, str], int] = {}
        for chunk in _chunks(unit_keys):
            query = select(CaseRow.unit_key, CaseRow.uid, CaseRow.id).where(CaseRow.unit_key.in_(chunk))
            found.update(((unit_key, uid), case_id) for unit_key, uid, case_id in session.execute(query))
        return found

    @staticmethod
    def _record_failure(session: Session, failure: Failure, now: float) -> None:
        path = str(failure.path)
        row = session.scalar(select(FailureRow).where(FailureRow.path == path))
        if row is None:
            session.add(FailureRow(path=path, reason=failure.reason, at=now))
        else:
            row.reason, row.at = failure.reason, now


_RECORD_COLUMNS = (
    CaseRow.id, CaseRow.kind, CaseRow.modality, CaseRow.body_part, CaseRow.patient_id, CaseRow.patient_name,
    CaseRow.study_uid, CaseRow.series_uid, CaseRow.study_date, CaseRow.description, CaseRow.shape, CaseRow.n_files,
    CaseRow.uid, CaseRow.fingerprint, CaseRow.added_at, CaseRow.reader, CaseRow.unit_key,
    CaseRow.predicted_modality, CaseRow.modality_confidence,
)


def _configure_connection(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _restrict_permissions(db_path: Path) -> None:
    """Owner-only access to the catalog and its WAL/shared-memory files (they hold patient identifiers)."""
    for path in db_path.parent.glob(db_path.name + "*"):
        try:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        except OSError:
            pass


def _case_values(new: NewCase, now: float) -> dict[str, Any]:
    return dict(
        uid=new.uid, unit_key=new.unit_key, kind=new.kind, modality=new.modality, body_part=new.body_part,
        patient_id=new.patient_id, patient_name=new.patient_name, study_uid=new.study_uid,
        series_uid=new.series_uid, study_date=new.study_date, description=new.description,
        shape=json.dumps(new.shape), n_files=len(new.files), fingerprint=new.fingerprint, reader=new.reader,
        predicted_modality=new.predicted_modality, modality_confidence=new.modality_confidence, updated_at=now,
    )


def _stack(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    vectors = np.stack([blob_to_vector(r[1]) for r in rows])  # n D
    return ids, vectors
