"""Retrieval metrics over one split's embeddings (numpy only, so the engine could use it too).

Protocol (leave-one-out): every item is a query once; its gallery is every *other* item of the split, less the
items of the query's exclusion group (``groups``: the same patient, volume or video; see
``exclusion_groups``); the gallery is ranked by cosine similarity (dot product of L2-normalised embeddings),
highest first, ties broken by item order (stable, deterministic).

Relevance: a gallery item is relevant to a query when both have the same label key ``dataset/label`` (labels
are only comparable within a dataset). ``R`` = number of relevant items in the query's gallery.

Per query, with ``rel(i)`` = 1 when the i-th ranked item is relevant:

- ``P@k`` = (1/k) * sum_{i<=k} rel(i)   (k fixed, even when R < k, so P@k <= R/k);
- ``mAP@R`` = (1/R) * sum_{i<=R} rel(i) * P@i   (Musgrave et al. 2020, "A Metric Learning Reality Check"):
  1.0 exactly when the R relevant items are ranked first;
- ``same_modality@k`` = fraction of the top min(k, N-1) whose modality equals the query's (label-free: tells
  whether the embedding separates modalities).

Queries with R = 0 are left out of P@k and mAP@R (``n_scored`` counts the rest) but kept in the modality
metrics. Every metric is the mean over queries: overall, per query modality, per query dataset. ``macro`` is the
mean over label keys of the per-key means (each class counts once, however many queries it has), and ``ci95`` its
bootstrap 95 % interval (queries resampled with replacement within each key, 1,000 rounds, fixed seed).

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


MAX_ITEMS_PER_PATIENT = 20
BOOTSTRAP_ROUNDS = 1000


def exclusion_groups(patients: Sequence[str], max_items: int = MAX_ITEMS_PER_PATIENT) -> np.ndarray:
    """One group id per item: items sharing a patient id are one group (kept out of each other's galleries).

    An empty id, or one shared by more than ``max_items`` items, names a block or a whole source rather than a
    patient (``wce_block_test``; pneumoniamnist has none): such items are each their own group."""
    ids = np.asarray(patients, dtype=object).astype(str)
    names, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    groups = inverse.astype(np.int64)
    alone = (names[inverse] == "") | (counts[inverse] > max_items)
    groups[alone] = len(names) + np.flatnonzero(alone)
    return groups


def ranked_galleries(
    embeddings: np.ndarray, groups: np.ndarray | None = None, block: int = 1024
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """For blocks of queries: (query indices, ranked gallery indices ``Q N-1``, their similarities ``Q N-1``,
    ``valid`` ``Q N-1``: False where the item is in the query's exclusion group, ranked last)."""
    n = embeddings.shape[0]
    for start in range(0, n, block):
        queries = np.arange(start, min(start + block, n))
        sims = embeddings[queries] @ embeddings.T  # Q N
        sims[np.arange(len(queries)), queries] = -np.inf  # leave the query out
        excluded = np.zeros_like(sims, dtype=bool) if groups is None else groups[queries, None] == groups[None]
        excluded[np.arange(len(queries)), queries] = False
        sims[excluded] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, : n - 1]  # Q N-1, the query (last) dropped
        valid = ~np.take_along_axis(excluded, order, axis=1)
        yield queries, order, np.take_along_axis(sims, order, axis=1), valid


def average_precision_at_r(relevant: np.ndarray, r: int) -> float:
    """mAP@R of one ranked relevance vector (bool, ranked) with ``r`` relevant items in the gallery."""
    if r == 0:
        return float("nan")
    top = relevant[:r].astype(np.float64)
    precision_at_i = np.cumsum(top) / np.arange(1, r + 1)
    return float((top * precision_at_i).sum() / r)


def per_query_metrics(
    embeddings: np.ndarray,
    label_keys: Sequence[str],
    modalities: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
    groups: np.ndarray | None = None,
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
    if groups is None:
        out["R"] = np.bincount(label_ids)[label_ids] - 1
    else:  # relevant items outside the query's own group
        groups = np.asarray(groups)
        pair_counts: dict[tuple[int, int], int] = {}
        for lab, grp in zip(label_ids, groups):
            pair_counts[(lab, grp)] = pair_counts.get((lab, grp), 0) + 1
        out["R"] = np.bincount(label_ids)[label_ids] - np.array([pair_counts[(lab, grp)] for lab, grp in
                                                                 zip(label_ids, groups)])
    out["top1_modality"] = np.zeros(n, dtype=np.int64)
    out["other_top1_modality"] = np.full(n, -1, dtype=np.int64)
    out["modality_gap"] = np.full(n, np.nan)
    for queries, orders, all_sims, valid in ranked_galleries(emb, groups):
        for row, q in enumerate(queries):
            order, sims = orders[row][valid[row]], all_sims[row][valid[row]]  # the query's gallery, ranked
            if order.size == 0:
                continue
            relevant = label_ids[order] == label_ids[q]
            same_mod = mod_ids[order] == mod_ids[q]
            r = int(out["R"][q])
            if r > 0:
                for k in ks:
                    out[f"P@{k}"][q] = relevant[:k].sum() / k
                out["mAP@R"][q] = average_precision_at_r(relevant, r)
            for k in ks:
                out[f"same_modality@{k}"][q] = same_mod[:k].mean()
            out["top1_modality"][q] = mod_ids[order[0]]
            other = np.flatnonzero(~same_mod)
            if other.size:  # ranked, so the first other-modality item is the other-gallery top-1
                out["other_top1_modality"][q] = mod_ids[order[other[0]]]
                same = np.flatnonzero(same_mod)
                if same.size:
                    out["modality_gap"][q] = sims[same[0]] - sims[other[0]]
    return out


def retrieval_metrics(
    embeddings: np.ndarray,
    labels: Sequence[str],
    modalities: Sequence[str],
    datasets: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
    patients: Sequence[str] | None = None,
) -> dict:
    """All metrics of the module docstring as a JSON-ready dict.

    ``embeddings``: float ``N D``, L2-normalised; ``labels``/``datasets``: per item (label key = dataset/label);
    ``modalities``: per item (the manifest's modality, the truth); ``patients``: per item, for the exclusion groups
    (``exclusion_groups``); None = leave-one-out only.
    Returns ``{"overall": {...}, "per_modality": {m: {...}}, "per_dataset": {d: {...}}, "modality_confusion":
    {query_modality: {top1_modality: share}}, "other_modality": {"confusion": {...}, "modality_gap": {m: mean}}}``;
    each ``{...}`` holds ``P@k``, ``mAP@R``, ``same_modality@k``, ``n_queries``, ``n_scored`` (queries with R > 0),
    ``macro`` (``P@k`` and ``mAP@R`` averaged per label key first) and ``ci95`` (``[lo, hi]`` of each macro value).
    """
    label_keys = [f"{d}/{lab}" for d, lab in zip(datasets, labels, strict=True)]
    groups = exclusion_groups(patients) if patients is not None else None
    per_query = per_query_metrics(embeddings, label_keys, modalities, ks, groups)
    keys = np.asarray(label_keys, dtype=object).astype(str)
    scored_names = [f"P@{k}" for k in ks] + ["mAP@R"]
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
        row["macro"], row["ci95"] = macro_with_ci({n: per_query[n][scored] for n in scored_names}, keys[scored])
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


def macro_with_ci(
    values: dict[str, np.ndarray], keys: np.ndarray, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Macro means (mean over ``keys`` of per-key means) of each per-query array, and bootstrap 95 % intervals
    (queries resampled with replacement within each key)."""
    names = sorted(set(keys))
    if not names:
        nan = float("nan")
        return {m: nan for m in values}, {m: [nan, nan] for m in values}
    members = [np.flatnonzero(keys == k) for k in names]
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(m), size=(rounds, len(m))) for m in members]  # per key: rounds x n_key
    macro, ci = {}, {}
    for metric, per_query in values.items():
        macro[metric] = float(np.mean([per_query[m].mean() for m in members]))
        boot = np.mean([per_query[m][d].mean(axis=1) for m, d in zip(members, draws)], axis=0)  # rounds
        ci[metric] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
    return macro, ci


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
