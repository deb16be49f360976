"""Leave-one-out retrieval quality on a user's own labelled library (``m3ret evaluate``).

Protocol: every case that has the scored key (``label`` or a tag) is a query once; its gallery is every *other*
labelled case, minus the cases of the same patient when both have a patient id (a second series of the same
patient is not a fair hit): the catalog's DICOM PatientID, else a ``patient_id`` or ``patient`` tag (a labels CSV
column, for files without headers). Unlabelled cases are left out of the gallery: they cannot be judged. A gallery case
is relevant when its value equals the query's. Per query, with ``rel(i)`` the i-th ranked case's relevance:

- ``P@k`` = (1/k) * sum_{i<=k} rel(i) (1/gallery size when the gallery holds fewer than k cases);
- ``mAP@R`` = (1/R) * sum_{i<=R} rel(i) * P@i with R = relevant cases in the query's gallery (Musgrave et al.
  2020): 1.0 exactly when the R relevant cases come first.

Queries with R = 0 are not scored (``n_scored`` counts the rest). Means are reported overall, per label value and
per modality, for two embeddings side by side:

- ``model``: the library's stored embeddings (the model the library was built with);
- ``raw_pixels``: the label-free baseline, the case's catalogued thumbnail (its middle slice / frame, 128 px)
  downsampled to 32 x 32 grey, centred and L2-normalised. Thumbnails are in the catalog already, so the baseline
  costs no re-reading of the archive (which may be gone or slow); it sees one slice of a volume, which is what a
  person skimming thumbnails sees too.

If the model does not clearly beat ``raw_pixels`` on a team's own data, it should not be trusted there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engine.catalog import CaseRecord
from engine.labels import LABEL_KEY, all_labels, labels_of
from engine.library import Library, LibraryError
from engine.thumbnails import decode_thumbnail

log = logging.getLogger(__name__)

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
PATIENT_TAGS = ("patient_id", "patient")  # tags that name a patient where the catalog has no PatientID
RAW_PIXELS_SIZE = 32
BLOCK = 1024  # queries per similarity block (N x BLOCK floats in memory)


@dataclass
class LabelledSet:
    """The cases scored: ids, values of the scored key, modalities and patient ids (None when unknown)."""

    case_ids: np.ndarray  # N int64
    values: list[str]
    modalities: list[str]
    patients: list[str | None]


def labelled_set(library: Library, key: str = LABEL_KEY) -> LabelledSet:
    """Every case of the library with ``key`` set, in id order."""
    labels = all_labels(library.catalog, key)
    ids = sorted(labels)
    records = library.catalog.get_cases(ids, with_thumbnails=False)
    ids = [i for i in ids if i in records]
    tags = labels_of(library.catalog, ids)

    def patient(case_id: int) -> str | None:
        stored = (records[case_id].patient_id or "").strip()
        tagged = next((tags.get(case_id, {}).get(t) for t in PATIENT_TAGS if tags.get(case_id, {}).get(t)), None)
        return stored or tagged or None

    return LabelledSet(
        case_ids=np.asarray(ids, dtype=np.int64), values=[labels[i] for i in ids],
        modalities=[records[i].modality for i in ids], patients=[patient(i) for i in ids],
    )


def model_embeddings(library: Library, case_ids: np.ndarray) -> np.ndarray:
    """The library's stored embeddings ``float32 N D`` in ``case_ids`` order (rows of zeros where missing)."""
    if library.model_id is None or library.embed_dim is None:
        raise LibraryError(f"{library.path}: library has no embeddings yet (run `m3ret index`)")
    out = np.zeros((len(case_ids), int(library.embed_dim)), dtype=np.float32)  # N D
    row_of = {int(c): i for i, c in enumerate(case_ids)}
    for ids, vectors in library.catalog.iter_embeddings(library.model_id, case_ids=case_ids.tolist()):
        out[[row_of[int(i)] for i in ids]] = vectors
    return _normalise(out)


def raw_pixel_embeddings(records: Sequence[CaseRecord]) -> np.ndarray:
    """The raw-pixel baseline ``float32 N (32*32)``: thumbnail -> grey 32 x 32 -> centred, L2-normalised."""
    out = np.zeros((len(records), RAW_PIXELS_SIZE * RAW_PIXELS_SIZE), dtype=np.float32)  # N P
    for row, record in enumerate(records):
        if not record.thumbnail:
            continue
        image = decode_thumbnail(record.thumbnail)  # H W [3] uint8
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        small = cv2.resize(image, (RAW_PIXELS_SIZE, RAW_PIXELS_SIZE), interpolation=cv2.INTER_AREA)
        vector = small.astype(np.float32).ravel()
        out[row] = vector - vector.mean()
    return _normalise(out)


def per_query_scores(
    embeddings: np.ndarray, values: Sequence[str], patients: Sequence[str | None], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per query: ``P@k`` for each k, ``mAP@R`` and ``R`` (NaN scores where R = 0), leave-one-out with the
    same-patient exclusion of the module docstring."""
    emb = np.asarray(embeddings, dtype=np.float32)  # N D
    n = emb.shape[0]
    _, value_ids = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    patient_ids = _patient_codes(patients)  # N, -1 = unknown
    out = {f"P@{k}": np.full(n, np.nan) for k in ks}
    out["mAP@R"] = np.full(n, np.nan)
    out["R"] = np.zeros(n, dtype=np.int64)
    for start in range(0, n, BLOCK):
        queries = np.arange(start, min(start + BLOCK, n))
        sims = emb[queries] @ emb.T  # Q N
        excluded = np.zeros_like(sims, dtype=bool)  # Q N
        excluded[np.arange(len(queries)), queries] = True
        same_patient = (patient_ids[queries, None] == patient_ids[None, :]) & (patient_ids[queries, None] >= 0)
        excluded |= same_patient
        sims[excluded] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")  # Q N, excluded last
        relevant = (value_ids[order] == value_ids[queries, None]) & ~np.take_along_axis(excluded, order, axis=1)
        gallery_size = n - excluded.sum(axis=1)  # Q
        for row, q in enumerate(queries):
            r = int(relevant[row].sum())
            out["R"][q] = r
            if r == 0:
                continue
            hits = relevant[row, : max(max(ks), r)].astype(np.float64)
            for k in ks:
                out[f"P@{k}"][q] = hits[:k].sum() / min(k, int(gallery_size[row]))
            top = hits[:r]
            out["mAP@R"][q] = float((top * np.cumsum(top) / np.arange(1, r + 1)).sum() / r)
    return out


def summarize_scores(scores: dict[str, np.ndarray], groups: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Mean of every metric over the scored queries of each group (and ``all``), with query counts."""
    names = [m for m in scores if m != "R"]
    groups_arr = np.asarray(groups, dtype=object)
    out: dict[str, dict[str, float | int]] = {}
    for group in ["all", *sorted(set(groups))]:
        mask = np.ones(len(groups_arr), bool) if group == "all" else groups_arr == group
        scored = mask & (scores["R"] > 0)
        row: dict[str, float | int] = {"n_queries": int(mask.sum()), "n_scored": int(scored.sum())}
        for name in names:
            row[name] = float(np.mean(scores[name][scored])) if scored.any() else float("nan")
        out[group] = row
    return out


def evaluate_library(
    library: Library, key: str = LABEL_KEY, ks: Sequence[int] = DEFAULT_KS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Leave-one-out P@k and mAP@R of the library's model and the raw-pixel baseline, per value and modality."""
    cases = labelled_set(library, key)
    if len(cases.case_ids) < 2:
        raise LibraryError(f"{library.path}: fewer than two cases have a {key!r} (import labels first: "
                           f"`m3ret labels import FILE.csv`)")
    records_by_id = library.catalog.get_cases(cases.case_ids.tolist(), with_thumbnails=True)
    records = [records_by_id[int(i)] for i in cases.case_ids]
    embeddings = {"model": model_embeddings(library, cases.case_ids), "raw_pixels": raw_pixel_embeddings(records)}
    methods: dict[str, object] = {}
    for name, emb in embeddings.items():
        if progress:
            progress(f"scoring {name} on {len(cases.case_ids)} cases")
        scores = per_query_scores(emb, cases.values, cases.patients, ks)
        methods[name] = {
            "overall": summarize_scores(scores, ["all"] * len(cases.values))["all"],
            "per_label": {k: v for k, v in summarize_scores(scores, cases.values).items() if k != "all"},
            "per_modality": {k: v for k, v in summarize_scores(scores, cases.modalities).items() if k != "all"},
        }
    return {
        "key": key, "ks": list(ks), "n_cases": int(len(cases.case_ids)),
        "n_patients": len({p for p in cases.patients if p}), "model_id": library.model_id,
        "same_patient_excluded": any(p for p in cases.patients), "methods": methods,
    }


def _patient_codes(patients: Sequence[str | None]) -> np.ndarray:
    codes: dict[str, int] = {}
    return np.asarray([codes.setdefault(p, len(codes)) if p else -1 for p in patients], dtype=np.int64)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


__all__ = [
    "DEFAULT_KS", "LabelledSet", "evaluate_library", "labelled_set", "model_embeddings", "per_query_scores",
    "raw_pixel_embeddings", "summarize_scores",
]
