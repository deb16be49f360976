"""Search a library: by a catalogued case, by a file or folder read on the fly, or by an in-memory case.

Filters (modalities, kinds, study dates, same-/cross-modality, excluded ids) are resolved by the catalog into the
set of allowed case ids; the vector index then over-fetches until it has ``k`` allowed results or none are left,
so a filter never shortens the list below what exists. A query read from a path is embedded but never added.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.catalog import CaseRecord
from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, Failure, ReadError
from engine.io.scan import read_path
from engine.library import Library, LibraryError

log = logging.getLogger(__name__)


@dataclass
class SearchFilters:
    """Which cases may be returned. ``same_modality`` / ``cross_modal`` compare with the query's modality."""

    modalities: Sequence[str] | None = None
    kinds: Sequence[str] | None = None
    same_modality: bool = False
    cross_modal: bool = False
    date_from: str | None = None  # YYYY-MM-DD
    date_to: str | None = None
    exclude_case_ids: Sequence[int] = ()

    @property
    def restricts_catalog(self) -> bool:
        return bool(self.modalities or self.kinds or self.same_modality or self.cross_modal
                    or self.date_from or self.date_to)


@dataclass
class SearchResult:
    """One hit: the case, its cosine similarity to the query and its rank (1 = best)."""

    case_id: int
    score: float
    rank: int
    kind: str
    modality: str
    description: str | None
    source_paths: list[str]
    thumbnail: bytes | None
    record: CaseRecord
    query_kind: str = ""
    query_modality: str = ""

    @property
    def path(self) -> str:
        return self.record.path

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary (no thumbnail, no patient identifiers)."""
        return {
            "rank": self.rank, "case_id": self.case_id, "score": round(float(self.score), 6),
            "kind": self.kind, "modality": self.modality, "description": self.description,
            "path": self.path, "source_paths": self.source_paths, "study_date": self.record.study_date,
            "query_kind": self.query_kind, "query_modality": self.query_modality,
        }


class SearchError(Exception):
    """The query cannot be run (unreadable query file, unknown case, ...); message meant for the user."""


def search_by_case(
    library: Library, case_id: int, k: int = 10, filters: SearchFilters | None = None
) -> list[SearchResult]:
    """Cases most similar to a catalogued case (the case itself is left out), using its stored embedding."""
    try:
        record = library.catalog.get_case(case_id)
    except KeyError as exc:
        raise SearchError(f"no case with id {case_id} in {library.path}") from exc
    if library.model_id is None:
        raise SearchError(f"library {library.path} holds no embeddings yet")
    vector = library.catalog.embedding(case_id, library.model_id)
    if vector is None:
        raise SearchError(
            f"case {case_id} has no embedding by model {library.model_id!r}: run `m3ret index --reembed`"
        )
    filters = filters or SearchFilters()
    exclude = tuple(filters.exclude_case_ids) + (case_id,)
    return _search_vector(library, vector, k, filters, record.kind, record.modality, exclude)


def search_by_clip_case(
    library: Library, case: Case, k: int = 10, filters: SearchFilters | None = None
) -> list[SearchResult]:
    """Cases most similar to an in-memory case (embedded now, not added to the library)."""
    vector = library.encoder.embed_cases([case])[0]  # D
    filters = filters or SearchFilters()
    return _search_vector(library, vector, k, filters, case.kind, case.modality, tuple(filters.exclude_case_ids))


def search_by_path(
    library: Library, path: Path, k: int = 10, filters: SearchFilters | None = None,
    limits: ReadLimits = DEFAULT_LIMITS, modality: str | None = None,
) -> tuple[Case, list[SearchResult]]:
    """Read a file or folder (its first case), embed it, search. ``modality`` overrides an unknown ("OT") one."""
    case = read_query_case(path, limits)
    if modality and case.modality in ("", "OT"):
        case.modality = modality
    return case, search_by_clip_case(library, case, k, filters)


def read_query_case(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
    """The first case under ``path``; ``SearchError`` naming the file and reason when there is none."""
    path = Path(path)
    if not path.exists():
        raise SearchError(f"{path}: no such file or folder")
    failures: list[Failure] = []
    try:
        for item in read_path(path, limits):
            if isinstance(item, Case):
                return item
            failures.append(item)
    except ReadError as exc:
        raise SearchError(f"{path}: {exc}") from exc
    if failures:
        raise SearchError(str(failures[0]))
    raise SearchError(f"{path}: no readable case found")


def _search_vector(
    library: Library, vector: np.ndarray, k: int, filters: SearchFilters, query_kind: str, query_modality: str,
    exclude: Sequence[int],
) -> list[SearchResult]:
    if filters.same_modality and filters.cross_modal:
        raise SearchError("--same-modality and --cross-modal exclude each other")
    if library.model_id is None:
        return []
    allowed = _allowed_ids(library, filters, query_modality)
    excluded = np.asarray(sorted(set(int(i) for i in exclude)), dtype=np.int64)
    if allowed is not None and len(excluded):
        allowed = np.setdiff1d(allowed, excluded, assume_unique=True)
        accept = None
    else:
        accept = (lambda keys: ~np.isin(keys, excluded)) if len(excluded) else None
    keys, sims = library.index.search(vector, k, allowed=allowed, accept=accept)
    records = library.catalog.get_cases(keys.tolist())
    results: list[SearchResult] = []
    for key, sim in zip(keys.tolist(), sims.tolist()):
        record = records.get(key)
        if record is None:  # removed by another process since the index was loaded
            continue
        results.append(SearchResult(
            case_id=key, score=float(sim), rank=len(results) + 1, kind=record.kind, modality=record.modality,
            description=record.description, source_paths=record.source_paths, thumbnail=record.thumbnail,
            record=record, query_kind=query_kind, query_modality=query_modality,
        ))
    return results


def _allowed_ids(library: Library, filters: SearchFilters, query_modality: str) -> np.ndarray | None:
    if not filters.restricts_catalog:
        return None
    modalities = list(filters.modalities) if filters.modalities else None
    exclude_modalities = None
    if filters.same_modality:
        modalities = [m for m in (modalities or [query_modality]) if m == query_modality]
        if not modalities:
            return np.zeros(0, dtype=np.int64)
    if filters.cross_modal:
        exclude_modalities = [query_modality]
    return library.catalog.filter_case_ids(
        modalities=modalities, kinds=list(filters.kinds) if filters.kinds else None,
        date_from=filters.date_from, date_to=filters.date_to, exclude_modalities=exclude_modalities,
    )


__all__ = [
    "LibraryError", "SearchError", "SearchFilters", "SearchResult", "read_query_case", "search_by_case",
    "search_by_clip_case", "search_by_path",
]
