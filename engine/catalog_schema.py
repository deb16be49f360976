"""The catalog's tables (SQLAlchemy 2 ORM) and its schema migrations.

Tables: ``cases`` (one retrievable case and its metadata), ``source_files`` (the files a case was read from, with
size, mtime and content fingerprint for incremental indexing), ``embeddings`` (one float16 vector per case and
model id), ``thumbnails`` (a small PNG per case), ``case_labels`` (the user's own labels and key/value tags,
``engine.labels``), ``failures`` (paths that could not be read), ``schema_version``.
Every column a query filters or joins on is indexed.

Migrations: ``SCHEMA_VERSION`` is the version this code writes. ``MIGRATIONS[v]`` upgrades a catalog from version
``v`` to ``v + 1`` inside one transaction; ``migrate`` runs the missing steps in order when a catalog is opened.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Connection,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    inspect,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 2


class Base(DeclarativeBase):
    pass


class FsText(TypeDecorator[str]):
    """Text that may hold file-name bytes which are not UTF-8 (surrogate escapes, as ``os.fsdecode`` gives them).

    Valid text is stored as TEXT; text with surrogate escapes as the raw file-name bytes (a BLOB in the same
    column, SQLite columns are dynamically typed) and read back as the same ``str``: lossless, no schema change,
    and never equal to any TEXT value."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: object, dialect: object) -> object:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return value.encode("utf-8", "surrogateescape")
        return value

    def process_result_value(self, value: object, dialect: object) -> object:
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        return value


class CaseRow(Base):
    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("unit_key", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(FsText, index=True)  # Case.uid (SeriesInstanceUID, or the file path)
    kind: Mapped[str] = mapped_column(String, index=True)
    modality: Mapped[str] = mapped_column(String, index=True)
    # the modality head's guess for a case whose file does not say its modality (engine.modality); NULL otherwise
    predicted_modality: Mapped[str | None] = mapped_column(String, nullable=True)
    modality_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    body_part: Mapped[str | None] = mapped_column(String, index=True)
    patient_id: Mapped[str | None] = mapped_column(String, index=True)
    patient_name: Mapped[str | None] = mapped_column(String)
    study_uid: Mapped[str | None] = mapped_column(String, index=True)
    series_uid: Mapped[str | None] = mapped_column(String, index=True)
    study_date: Mapped[str | None] = mapped_column(String, index=True)  # YYYY-MM-DD
    description: Mapped[str | None] = mapped_column(String)
    shape: Mapped[str] = mapped_column(String)  # JSON list
    n_files: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String, index=True)
    reader: Mapped[str] = mapped_column(String)  # engine.io.scan reader name, to re-read the case
    unit_key: Mapped[str] = mapped_column(FsText, index=True)  # engine.io.scan SourceUnit.key
    added_at: Mapped[float] = mapped_column(Float, index=True)  # unix seconds
    updated_at: Mapped[float] = mapped_column(Float)

    files: Mapped[list["SourceFileRow"]] = relationship(
        back_populates="case", cascade="all, delete-orphan", passive_deletes=True, order_by="SourceFileRow.path"
    )


class SourceFileRow(Base):
    __tablename__ = "source_files"
    __table_args__ = (UniqueConstraint("case_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(FsText, index=True)
    size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    fingerprint: Mapped[str] = mapped_column(String)

    case: Mapped[CaseRow] = relationship(back_populates="files")


class EmbeddingRow(Base):
    __tablename__ = "embeddings"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String, primary_key=True, index=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float16 little-endian, dim values


class ThumbnailRow(Base):
    __tablename__ = "thumbnails"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)


class CaseLabelRow(Base):
    """One label or tag of a case: key ``label`` is the case's label, any other key a tag (``engine.labels``)."""

    __tablename__ = "case_labels"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True, index=True)
    value: Mapped[str] = mapped_column(String, index=True)


class FailureRow(Base):
    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(FsText, unique=True, index=True)
    reason: Mapped[str] = mapped_column(String)
    at: Mapped[float] = mapped_column(Float, index=True)


class SchemaVersionRow(Base):
    __tablename__ = "schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


Migration = Callable[[Connection], None]

def _add_modality_prediction(conn: Connection) -> None:
    """v1 -> v2: cases.predicted_modality and cases.modality_confidence (NULL: the file said the modality)."""
    conn.exec_driver_sql("ALTER TABLE cases ADD COLUMN predicted_modality VARCHAR")
    conn.exec_driver_sql("ALTER TABLE cases ADD COLUMN modality_confidence FLOAT")


# MIGRATIONS[v] upgrades version v to v + 1. Add a step here (and bump SCHEMA_VERSION) for every schema change.
MIGRATIONS: dict[int, Migration] = {1: _add_modality_prediction}


class SchemaError(Exception):
    """The catalog's schema cannot be used by this version of m3ret."""


def current_version(conn: Connection) -> int | None:
    """The stored schema version; None for an empty database."""
    tables = set(inspect(conn).get_table_names())
    if "schema_version" not in tables:
        return None if "cases" not in tables else 0
    row = conn.execute(select(SchemaVersionRow.version)).first()
    return int(row[0]) if row else 0


def migrate(conn: Connection) -> int:
    """Create the schema in an empty database or upgrade an older one; returns the version now stored."""
    version = current_version(conn)
    if version is None:
        Base.metadata.create_all(conn)
        conn.execute(SchemaVersionRow.__table__.insert().values(id=1, version=SCHEMA_VERSION))
        return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise SchemaError(f"catalog schema v{version} is newer than this m3ret (v{SCHEMA_VERSION}); upgrade m3ret")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SchemaError(f"no migration from catalog schema v{version}")
        step(conn)
        version += 1
        conn.execute(SchemaVersionRow.__table__.delete())
        conn.execute(SchemaVersionRow.__table__.insert().values(id=1, version=version))
    Base.metadata.create_all(conn)  # tables added by this version without a data migration
    return version
