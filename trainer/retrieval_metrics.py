"""Retrieval metrics over one split's embeddings (numpy only, so the engine could use it too).

Protocol (leave-one-out): every item is a query once; its gallery is every *other* item of the split; the
gallery is ranked by cosine similarity (dot product of L2-normalised embeddings), highest first, ties broken by
item order (stable, deterministic).

Relevance: a gallery item is relevant to a query when both have the same label key ``dataset/label`` (labels
are only comparable within a dataset). ``R`` = number of relevant items in the query's gallery.

Per query, with ``rel(i)`` = 1 when the i-th ranked item is relevant:

- ``P@k`` = (1/k) * sum_{i<=k} rel(i)   (k fixed, even when R < k, so P@k <= R/k);
- ``mAP@R`` = (1/R) * sum_{i<=R} rel(i) * P@i   (Musgrave et al. 2020, "A Metric Learning Reality Check"):
  1.0 exactly when the R relevant items are ranked first;
- ``same_modality@k`` = fraction of the top min(k, N-1) whose modality equals the query's (label-free: tells
  whether the embedding separates modalities).

Queries with R = 0 are left out of P@k and mAP@R (``n_scored`` counts the rest) but kept in the modality
metrics. Every metric is the mean over queries: overall, per query modality, per query dataset.

Cross-modal views (labels mean nothing across datasets, so these are label-free):

- ``modality_confusion``: for each query modality, the share of queries whose top-1 (full gallery) is of each
  modality; its diagonal is ``same_modality@1``.
- ``other_modality``: the gallery restricted to the *other* modalities: the share of queries whose top-1 is of
  each modality (which modality is nearest), and ``modality_gap``, the mean over queries of
  (best similarity to another item of the same modality) - (best similarity to an item of another modality):
  positive when a query's own modality is nearer than any other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def ranked_galleries(embeddings: np.ndarray, block: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For blocks of queries: (query indices, ranked gallery indices ``Q N-1``, their similarities ``Q N-1``)."""
    n = embeddings.shape[0]
    for start in range(0, n, block):
        queries = np.arange(start, min(start + block, n))
        sims = embeddings[queries] @ embeddings.T  # Q N
        sims[np.arange(len(queries)), queries] = -np.inf  # leave the query out
        order = np.argsort(-sims, axis=1, kind="stable")[:, : n - 1]  # Q N-1, the query (last) dropped
        yield queries, order, np.take_along_axis(sims, order, axis=1)


def average_precision_at_r(relevant: np.ndarray, r: int) -> float:
    """mAP@R of one ranked relevance vector (bool, ranked) with ``r`` relevant items in the gallery."""
    if r == 0:
        return float("nan")
    top = relevant[:r].astype(np.float64)
    precision_at_i = np.cumsum(top) / np.arange(1, r + 1)
    return float((top * precision_at_i).sum() / r)


def per_query_metrics(
    embeddings: np.ndarray, label_keys: Sequence[str], modalities: Sequence[str], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per-query arrays: ``P@k``, ``mAP@R``, ``R``, ``same_modality@k``, ``top1_modality``,
    ``other_top1_modality`` (index into the sorted modality list, -1 if none) and ``modality_gap``."""
    emb = np.asarray(embeddings, dtype=np.float32)
    n = emb.shape[0]
    if emb.ndim != 2 or n < 2:
        raise ValueError(f"need at least two embeddings N D, got shape {emb.shape}")
    if len(label_keys) != n or len(modalities) != n:
        raise ValueError("embeddings, labels and modalities differ in length")
    _, label_ids = np.unique(np.asarray(label_keys, dtype=object).astype(str), return_inverse=True)
    _, mod_ids = np.unique(np.asarray(modalities, dtype=object).astype(str), return_inverse=True)
    out: dict[str, np.ndarray] = {f"P@{k}": np.full(n, np.nan) for k in ks}
    out.update({f"same_modality@{k}": np.zeros(n) for k in ks})
    out["mAP@R"] = np.full(n, np.nan)
    out["R"] = np.bincount(label_ids)[label_ids] - 1
    out["top1_modality"] = np.zeros(n, dtype=np.int64)
    out["other_top1_modality"] = np.full(n, -1, dtype=np.int64)
    out["modality_gap"] = np.full(n, np.nan)
    for queries, order, sims in ranked_galleries(emb):
        relevant = label_ids[order] == label_ids[queries, None]  # Q N-1
        same_mod = mod_ids[order] == mod_ids[queries, None]  # Q N-1
        for row, q in enumerate(queries):
            r = int(out["R"][q])
            if r > 0:
                for k in ks:
                    out[f"P@{k}"][q] = relevant[row, :k].sum() / k
                out["mAP@R"][q] = average_precision_at_r(relevant[row], r)
            for k in ks:
                out[f"same_modality@{k}"][q] = same_mod[row, :k].mean()
            out["top1_modality"][q] = mod_ids[order[row, 0]]
            other = np.flatnonzero(~same_mod[row])
            if other.size:  # ranked, so the first other-modality item is the other-gallery top-1
                out["other_top1_modality"][q] = mod_ids[order[row, other[0]]]
                same = np.flatnonzero(same_mod[row])
                if same.size:
                    out["modality_gap"][q] = sims[row, same[0]] - sims[row, other[0]]
    return out


def retrieval_metrics(
    embeddings: np.ndarray,
    labels: Sequence[str],
    modalities: Sequence[str],
    datasets: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict:
    """All metrics of the module docstring as a JSON-ready dict.

    ``embeddings``: float ``N D``, L2-normalised; ``labels``/``datasets``: per item (label key = dataset/label);
    ``modalities``: per item (the manifest's modality, the truth).
    Returns ``{"overall": {...}, "per_modality": {m: {...}}, "per_dataset": {d: {...}}, "modality_confusion":
    {query_modality: {top1_modality: share}}, "other_modality": {"confusion": {...}, "modality_gap": {m: mean}}}``;
    each ``{...}`` holds ``P@k``, ``mAP@R``, ``same_modality@k``, ``n_queries`` and ``n_scored`` (queries with R > 0).
    """
    label_keys = [f"{d}/{lab}" for d, lab in zip(datasets, labels, strict=True)]
    per_query = per_query_metrics(embeddings, label_keys, modalities, ks)
    metric_names = [f"P@{k}" for k in ks] + ["mAP@R"] + [f"same_modality@{k}" for k in ks]
    mods = np.asarray(modalities, dtype=object).astype(str)
    sets = np.asarray(datasets, dtype=object).astype(str)
    names = sorted(set(mods))

    def summary(mask: np.ndarray) -> dict[str, float]:
        scored = mask & (per_query["R"] > 0)
        row: dict[str, float] = {}
        for name in metric_names:
            values = per_query[name][scored if not name.startswith("same_modality") else mask]
            row[name] = float(values.mean()) if values.size else float("nan")
        row["n_queries"] = int(mask.sum())
        row["n_scored"] = int(scored.sum())
        return row

    def confusion(top1: np.ndarray) -> dict[str, dict[str, float]]:
        table = {}
        for m in names:
            hits = top1[(mods == m) & (top1 >= 0)]
            table[m] = {other: float((hits == o_id).mean()) if hits.size else float("nan")
                        for o_id, other in enumerate(names)}
        return table

    gaps = {m: _nanmean(per_query["modality_gap"][mods == m]) for m in names}
    return {
        "overall": summary(np.ones(len(mods), dtype=bool)),
        "per_modality": {m: summary(mods == m) for m in names},
        "per_dataset": {d: summary(sets == d) for d in sorted(set(sets))},
        "modality_confusion": confusion(per_query["top1_modality"]),
        "other_modality": {
            "confusion": confusion(per_query["other_top1_modality"]),
            "modality_gap": gaps,
            "modality_gap_overall": _nanmean(per_query["modality_gap"]),
        },
    }


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
