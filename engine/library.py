"""A library: one folder holding a catalog, a vector index, and the id of the model that embedded it.

::

    <library>/
        catalog.sqlite    cases, source files, embeddings (f16), thumbnails, failures  (the source of truth)
        vectors.usearch   USearch index of the current model's embeddings              (a cache)
        library.json      {"format": 1, "model_id": ..., "embed_dim": ...}

On open the index is loaded and reconciled with the catalog: embeddings the index misses (an indexer killed
before it saved) are added, keys the catalog no longer has are dropped, and an unreadable index is rebuilt. A
library built with model A refuses model B (``ModelMismatchError``) until it is re-embedded
(``m3ret index --reembed``). The folder and its files are private to the user (they hold patient identifiers).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engine.catalog import CATALOG_FILENAME, Catalog, CaseRecord
from engine.config import DEFAULT_LIMITS, ReadLimits, default_library_dir
from engine.encoder import Encoder
from engine.io.case import Case, Failure, ReadError
from engine.io.scan import SourceUnit, read_unit
from engine.library_lock import WriterLock
from engine.vectors import QUANTIZED_MIN, VectorIndex

log = logging.getLogger(__name__)

LIBRARY_FILE = "library.json"
INDEX_FILE = "vectors.usearch"
LIBRARY_FORMAT = 1


class LibraryError(Exception):
    """A library cannot be used as asked (message is meant for the user)."""


class ModelMismatchError(LibraryError):
    """The library's vectors were made by another model than the one given."""


class Library:
    """One library folder: ``.catalog``, ``.index`` (vectors), ``.encoder`` (loaded on first use)."""

    def __init__(self, path: Path, catalog: Catalog, model_path: Path | None, threads: int | None) -> None:
        self.path = path
        self.catalog = catalog
        self.model_path = model_path
        self.threads = threads
        self._info: dict[str, Any] = _read_info(path)
        self._encoder: Encoder | None = None
        self._index: VectorIndex | None = None
        self._lock = threading.RLock()
        self.writer = WriterLock(path)  # one writing process per library (engine.library_lock)

    @classmethod
    def open(cls, path: Path | None = None, model_path: Path | None = None, threads: int | None = None,
             create: bool = True) -> "Library":
        """Open a library folder, creating it unless ``create=False``; ``None`` -> the user's default library."""
        path = Path(path).expanduser().absolute() if path is not None else default_library_dir()
        if path.exists() and not path.is_dir():
            raise LibraryError(f"{path}: not a folder")
        if not create and not (path / CATALOG_FILENAME).is_file():
            raise LibraryError(f"{path}: no library here (`m3ret index PATH --library {path}` creates one)")
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
        return cls(path, Catalog.open(path), model_path, threads)

    def close(self) -> None:
        with self._lock:
            self._index = None
            self.catalog.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- model ---------------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str | None:
        """The id of the model whose vectors this library holds (None for a library never indexed)."""
        return self._info.get("model_id")

    @property
    def embed_dim(self) -> int | None:
        return self._info.get("embed_dim")

    @property
    def encoder(self) -> Encoder:
        """The encoder (loaded on first use); ``ModelMismatchError`` when it is not the library's model."""
        with self._lock:
            if self._encoder is None:
                encoder = Encoder.shared(self.model_path, threads=self.threads)
                self.check_model(encoder)
                if self.model_id is None:
                    self._set_model(encoder)
                self._encoder = encoder
            return self._encoder

    def check_model(self, encoder: Encoder) -> None:
        """Raise ``ModelMismatchError`` (with how to fix it) when ``encoder`` is not the library's model."""
        if self.model_id is not None and encoder.model_id != self.model_id:
            raise ModelMismatchError(
                f"library {self.path} was built with model {self.model_id!r}, not {encoder.model_id!r}: "
                f"re-embed it with `m3ret index --reembed --library {self.path}` "
                f"(or pass the model it was built with)"
            )

    def switch_model(self, encoder: Encoder) -> None:
        """Make ``encoder`` the library's model (re-embedding): the index now holds its vectors only."""
        with self._lock:
            self._set_model(encoder)
            self._encoder = encoder
            self._index = None
            self.rebuild_index()

    def _set_model(self, encoder: Encoder) -> None:
        self._info.update(format=LIBRARY_FORMAT, model_id=encoder.model_id, embed_dim=encoder.embed_dim)
        _write_info(self.path, self._info)

    # ---- vector index --------------------------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        """The vector index of the library's model, reconciled with the catalog on first use."""
        with self._lock:
            if self._index is None:
                self._index = self._load_index()
            return self._index

    def _load_index(self) -> VectorIndex:
        dim = self.embed_dim or 1
        file = self.path / INDEX_FILE
        if self.model_id is None:
            return VectorIndex(dim)
        index: VectorIndex | None = None
        if file.is_file():
            try:
                index = VectorIndex.load(file, dim, exact_vectors=self._catalog_vectors)
            except ValueError as exc:
                log.warning("%s; rebuilding it from the catalog", exc)
        if index is None:
            return self._build_index(save=True)
        added, removed = self._reconcile(index)
        if added or removed:
            log.info("vector index reconciled with the catalog: %d added, %d removed", added, removed)
            index.save(file)
        return index

    def _reconcile(self, index: VectorIndex) -> tuple[int, int]:
        assert self.model_id is not None
        wanted = self.catalog.embedding_ids(self.model_id)
        have = index.keys()
        missing = np.setdiff1d(wanted, have, assume_unique=True)
        extra = np.setdiff1d(have, wanted, assume_unique=True)
        if len(extra):
            index.remove(extra)
        for ids, vectors in self.catalog.iter_embeddings(self.model_id, case_ids=missing.tolist()):
            index.add(ids, vectors)
        return len(missing), len(extra)

    def _build_index(self, save: bool) -> VectorIndex:
        count = len(self.catalog.embedding_ids(self.model_id)) if self.model_id is not None else 0
        index = VectorIndex(self.embed_dim or 1, quantized=count > QUANTIZED_MIN, exact_vectors=self._catalog_vectors)
        if self.model_id is not None:
            for ids, vectors in self.catalog.iter_embeddings(self.model_id):
                index.add(ids, vectors)
        if save:
            index.save(self.path / INDEX_FILE)
        return index

    def _catalog_vectors(self, case_ids: np.ndarray) -> np.ndarray:
        """The catalog's embeddings of ``case_ids`` (float32 [n, D], in that order; zeros where there is none):
        the exact vectors a quantized index re-ranks with."""
        dim = self.embed_dim or 1
        out = np.zeros((len(case_ids), dim), dtype=np.float32)  # n D
        if self.model_id is None or len(case_ids) == 0:
            return out
        row = {int(case_id): i for i, case_id in enumerate(case_ids)}
        for ids, vectors in self.catalog.iter_embeddings(self.model_id, case_ids=list(row)):
            out[[row[int(i)] for i in ids]] = vectors
        return out

    def rebuild_index(self) -> int:
        """Rebuild the vector index from the catalog's embeddings (``m3ret rebuild-index``); returns its size."""
        with self._lock:
            self._index = self._build_index(save=True)
            return len(self._index)

    def refresh_index(self) -> tuple[int, int]:
        """Catch up with another process that indexed into this library: re-read its model id, top up / prune the
        loaded index from the catalog; returns (added, removed)."""
        with self._lock:
            info = _read_info(self.path)
            if info.get("model_id") != self.model_id:  # first indexed, or re-embedded, elsewhere
                self._info, self._encoder, self._index = info, None, None
            if self._index is None:  # loading reconciles it anyway (a library never indexed has nothing to load)
                if self.model_id is not None:
                    self._index = self._load_index()
                return 0, 0
            added, removed = self._reconcile(self._index)
            if added or removed:
                self.save_index()
            return added, removed

    def save_index(self) -> None:
        with self._lock:
            if self._index is not None and self.model_id is not None:
                self._index.save(self.path / INDEX_FILE)

    # ---- cases ---------------------------------------------------------------------------------------------

    def remove_cases(self, case_ids: list[int]) -> int:
        """Remove cases from the catalog and the index; returns how many existed."""
        removed = self.catalog.remove_cases(case_ids)
        with self._lock:
            if self._index is not None:
                self._index.remove(np.asarray(case_ids, dtype=np.int64))
                self.save_index()
        return removed

    def read_case(self, case_id: int, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
        """Re-read a catalogued case's pixels from its source files (``LibraryError`` when they are gone)."""
        record = self.catalog.get_case(case_id)
        return read_record(record, limits)


def read_record(record: CaseRecord, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
    """Decode the case a catalog record describes from its source files (with the catalogued modality when the
    file does not say it, e.g. a PNG indexed with ``--modality XR``)."""
    case = _read_record(record, limits)
    if case.modality in ("", "OT") and record.modality:
        case.modality = record.modality
    return case


def _read_record(record: CaseRecord, limits: ReadLimits) -> Case:
    files = tuple(Path(p) for p in record.source_paths)
    missing = [p for p in files if not p.is_file()]
    if not files or missing:
        raise LibraryError(f"{missing[0] if missing else record.path}: source file missing (case {record.id})")
    results = read_unit(SourceUnit(record.reader, files, record.unit_key), limits)
    cases = [r for r in results if isinstance(r, Case)]
    base, _, nth = record.uid.partition("#")  # "#2": the second case of the unit with that uid
    same_uid = [c for c in cases if (c.uid or str(c.path)) == base]
    index = int(nth) - 1 if nth.isdigit() else 0
    if 0 <= index < len(same_uid):
        return same_uid[index]
    if len(cases) == 1:
        return cases[0]
    reasons = "; ".join(f.reason for f in results if isinstance(f, Failure)) or "case no longer in its files"
    raise LibraryError(f"{record.path}: cannot re-read case {record.id} ({reasons})")


def _read_info(path: Path) -> dict[str, Any]:
    file = path / LIBRARY_FILE
    if not file.is_file():
        return {}
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LibraryError(f"{file}: unreadable library description ({exc})") from exc
    if int(info.get("format", LIBRARY_FORMAT)) > LIBRARY_FORMAT:
        raise LibraryError(f"{file}: library made by a newer m3ret")
    return info


def _write_info(path: Path, info: dict[str, Any]) -> None:
    file = path / LIBRARY_FILE
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, file)


__all__ = ["Library", "LibraryError", "ModelMismatchError", "ReadError", "read_record"]
