"""Search a library: by a catalogued case, by a file or folder read on the fly, or by an in-memory case.

Filters (modalities, kinds, study dates, same-/cross-modality, excluded ids) are resolved by the catalog into the
set of allowed case ids; the vector index then over-fetches until it has ``k`` allowed results or none are left,
so a filter never shortens the list below what exists. A query read from a path is embedded but never added.

A query whose content is already in the library (same fingerprint: the same file, or a copy of it) is that case:
it is left out of the results like ``search_by_case`` leaves its case out, and reported as ``this_case``. A query
whose file does not say its modality gets the model's predicted one (``engine.modality``) for the same-modality
and cross-modal filters. Each result carries its raw cosine (``score``) and a readable ``match`` (0-100, the
cosine placed in the library's own nearest-neighbour distribution, ``engine.score_calibration``).
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
from engine.modality import ModalityPrediction, resolve
from engine.score_calibration import ScoreCalibration, calibration_for

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
    """One hit: the case, its cosine similarity to the query, its match score (0-100) and its rank (1 = best)."""

    case_id: int
    score: float  # raw cosine similarity
    rank: int
    kind: str
    modality: str
    description: str | None
    source_paths: list[str]
    thumbnail: bytes | None
    record: CaseRecord
    query_kind: str = ""
    query_modality: str = ""
    match: float | None = None  # 0-100 against the library's score distribution; None for tiny libraries

    @property
    def path(self) -> str:
        return self.record.path

    @property
    def score_text(self) -> str:
        """How the score is shown: "match 87" (or the raw cosine where the library is too small to calibrate)."""
        return f"match {self.match:.0f}" if self.match is not None else f"cosine {self.score:.3f}"

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary (no thumbnail, no patient identifiers)."""
        return {
            "rank": self.rank, "case_id": self.case_id, "score": round(float(self.score), 6),
            "match": None if self.match is None else round(self.match, 1),
            "kind": self.kind, "modality": self.modality, "description": self.description,
            "path": self.path, "source_paths": self.source_paths, "study_date": self.record.study_date,
            "query_kind": self.query_kind, "query_modality": self.query_modality,
        }


class SearchResults(list[SearchResult]):
    """The results, best first, plus what was learnt about the query."""

    def __init__(self, results: Sequence[SearchResult] = (), this_case: Sequence[CaseRecord] = (),
                 query_prediction: ModalityPrediction | None = None) -> None:
        super().__init__(results)
        self.this_case: list[CaseRecord] = list(this_case)  # the library's copies of the query (not results)
        self.query_prediction = query_prediction  # the query's predicted modality, when its file did not say


class SearchError(Exception):
    """The query cannot be run (unreadable query file, unknown case, ...); message meant for the user."""


def search_by_case(
    library: Library, case_id: int, k: int = 10, filters: SearchFilters | None = None
) -> SearchResults:
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
    this_case = [record] + [r for r in _with_fingerprint(library, record.fingerprint) if r.id != case_id]
    exclude = tuple(filters.exclude_case_ids) + tuple(r.id for r in this_case)
    results = _search_vector(library, vector, k, filters, record.kind, record.modality, exclude)
    return SearchResults(results, this_case)


def search_by_clip_case(
    library: Library, case: Case, k: int = 10, filters: SearchFilters | None = None
) -> SearchResults:
    """Cases most similar to an in-memory case (embedded now, not added to the library).

    Library cases with the query's content fingerprint are the query itself: left out and named in
    ``this_case``. A query of unknown modality takes the predicted one (``case.modality`` is updated)."""
    vector = library.encoder.embed_cases([case])[0]  # D
    prediction = resolve(library.encoder.modality_head, case.modality, vector)
    if prediction is not None:
        case.modality = prediction.modality
    this_case = _with_fingerprint(library, case.fingerprint)
    filters = filters or SearchFilters()
    exclude = tuple(filters.exclude_case_ids) + tuple(r.id for r in this_case)
    results = _search_vector(library, vector, k, filters, case.kind, case.modality, exclude)
    return SearchResults(results, this_case, prediction)


def _with_fingerprint(library: Library, fingerprint: str) -> list[CaseRecord]:
    """The library's cases read from this content (the same file or a copy of it)."""
    if not fingerprint:
        return []
    ids = library.catalog.case_ids_with_fingerprint(fingerprint)
    return list(library.catalog.get_cases(ids, with_thumbnails=False).values()) if ids else []


def search_by_path(
    library: Library, path: Path, k: int = 10, filters: SearchFilters | None = None,
    limits: ReadLimits = DEFAULT_LIMITS, modality: str | None = None,
) -> tuple[Case, SearchResults]:
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
    calibration: ScoreCalibration | None = calibration_for(library) if len(keys) else None
    results: list[SearchResult] = []
    for key, sim in zip(keys.tolist(), sims.tolist()):
        record = records.get(key)
        if record is None:  # removed by another process since the index was loaded
            continue
        results.append(SearchResult(
            case_id=key, score=float(sim), rank=len(results) + 1, kind=record.kind, modality=record.modality,
            description=record.description, source_paths=record.source_paths, thumbnail=record.thumbnail,
            record=record, query_kind=query_kind, query_modality=query_modality,
            match=calibration.match(float(sim)) if calibration is not None else None,
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
    "LibraryError", "SearchError", "SearchFilters", "SearchResult", "SearchResults", "read_query_case", "search_by_case",
    "search_by_clip_case", "search_by_path",
]
