"""engine.vectors: exact vs HNSW search, filters with over-fetch (top-k stays k), f16, atomic save/load."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from engine import vectors as vectors_module
from engine.vectors import VectorIndex


def _clustered(n: int, dim: int = 32, clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # N D


def _brute_force(x: np.ndarray, keys: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = x @ q
    return keys[np.argsort(-sims, kind="stable")[:k]]


def _index(x: np.ndarray, first_key: int = 1) -> tuple[VectorIndex, np.ndarray]:
    index = VectorIndex(x.shape[1])
    keys = np.arange(first_key, first_key + len(x), dtype=np.int64)
    index.add(keys, x)
    return index, keys


def test_index_is_cosine_float16() -> None:
    index = VectorIndex(16)
    assert "f16" in str(index._index.dtype).lower()
    assert "cos" in str(index._index.metric).lower()


def test_exact_search_matches_brute_force() -> None:
    x = _clustered(500)
    index, keys = _index(x)
    for qi in (0, 17, 333):
        got, sims = index.search(x[qi], 10)
        assert len(got) == 10 and got[0] == keys[qi] and sims[0] == pytest.approx(1.0, abs=2e-3)
        assert set(got) == set(_brute_force(x, keys, x[qi], 10))
        assert np.all(np.diff(sims) <= 1e-6)


def test_hnsw_above_threshold_keeps_recall(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors_module, "EXACT_SEARCH_MAX", 100)
    x = _clustered(3000, seed=1)
    index, keys = _index(x)
    queries = _clustered(50, seed=2)
    recall = np.mean([len(set(index.search(q, 10)[0]) & set(_brute_force(x, keys, q, 10))) / 10 for q in queries])
    assert recall >= 0.95


@pytest.mark.parametrize("exact_max", [100_000, 100])  # exact and HNSW paths
def test_filter_by_predicate_still_returns_k(monkeypatch: pytest.MonkeyPatch, exact_max: int) -> None:
    monkeypatch.setattr(vectors_module, "EXACT_SEARCH_MAX", exact_max)
    x = _clustered(2000, seed=3)
    index, keys = _index(x)
    rare = keys[keys % 97 == 0]  # 20 allowed keys, mostly far from the query
    accept = lambda ks: ks % 97 == 0  # noqa: E731
    got, _ = index.search(x[5], 10, accept=accept)
    assert len(got) == 10 and set(got) <= set(rare)
    assert set(got) == set(_brute_force(x[rare - 1], rare, x[5], 10))
    got_all, _ = index.search(x[5], 50, accept=accept)
    assert sorted(got_all) == sorted(rare)  # fewer than k exist: all of them, no padding


@pytest.mark.parametrize("step", [20, 3])  # 5 % of the index: gathered and compared; 33 %: over-fetched
def test_filter_by_allowed_ids_is_exact_and_full(step: int) -> None:
    x = _clustered(1000, seed=4)
    index, keys = _index(x)
    allowed = keys[::step]
    got, sims = index.search(x[3], 12, allowed=allowed)
    assert len(got) == 12 and set(got) <= set(allowed)
    assert list(got) == list(_brute_force(x[allowed - 1], allowed, x[3], 12))
    assert index.search(x[3], 5, allowed=np.array([], dtype=np.int64))[0].size == 0
    got, _ = index.search(x[3], 5, allowed=np.array([5, 99999]))  # unknown keys are ignored
    assert list(got) == [5]


def test_large_allowed_set_uses_over_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors_module, "EXACT_ALLOWED_MAX", 10)
    x = _clustered(600, seed=5)
    index, keys = _index(x)
    allowed = keys[keys % 3 == 0]
    got, _ = index.search(x[0], 15, allowed=allowed, accept=lambda ks: ks != 3)
    assert len(got) == 15 and set(got) <= set(allowed) - {3}


def test_add_replaces_and_remove_forgets() -> None:
    x = _clustered(50, seed=6)
    index, keys = _index(x)
    index.add(np.array([1]), x[10:11])
    assert len(index) == 50
    np.testing.assert_allclose(index.get(np.array([1]))[0], x[10], atol=2e-3)
    index.remove(np.array([1, 2, 12345]))
    assert len(index) == 48 and 1 not in set(index.keys())
    assert index.search(x[10], 1)[0][0] == 11


def test_save_is_atomic_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = _clustered(100, seed=7)
    index, keys = _index(x)
    path = tmp_path / "vectors.usearch"
    index.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    index.add(np.array([1000]), x[:1])

    def crash(_path: str) -> None:
        Path(_path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(index._index, "save", crash)
    with pytest.raises(OSError):
        index.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["vectors.usearch"]  # no temporary left behind
    loaded = VectorIndex.load(path, x.shape[1])
    assert sorted(loaded.keys()) == sorted(keys)


def test_load_refuses_wrong_dimension_or_garbage(tmp_path: Path) -> None:
    index, _ = _index(_clustered(10))
    index.save(tmp_path / "v.usearch")
    with pytest.raises(ValueError, match="dimensions"):
        VectorIndex.load(tmp_path / "v.usearch", 64)
    (tmp_path / "bad.usearch").write_bytes(b"\0" * 100)
    with pytest.raises(ValueError):
        VectorIndex.load(tmp_path / "bad.usearch", 32)


def test_a_quantized_index_reranks_its_candidates_with_the_exact_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors_module, "EXACT_SEARCH_MAX", 100)
    x = _clustered(3000, seed=3)
    keys = np.arange(1, 3001, dtype=np.int64)
    asked: list[int] = []

    def exact_vectors(wanted: np.ndarray) -> np.ndarray:
        asked.append(len(wanted))
        return x[wanted - 1]

    index = VectorIndex(32, quantized=True, exact_vectors=exact_vectors)
    index.add(keys, x)
    assert index.quantized and "i8" in str(index._index.dtype).lower()
    queries = _clustered(40, seed=4)
    recalls = []
    for q in queries:
        got, sims = index.search(q, 10)
        assert np.allclose(sims, x[got - 1] @ q / np.linalg.norm(q), atol=1e-5)  # exact cosine, not int8's
        assert np.all(np.diff(sims) <= 0)
        recalls.append(len(set(got) & set(_brute_force(x, keys, q, 10))) / 10)
    assert np.mean(recalls) >= 0.95
    assert asked and min(asked) >= vectors_module.RERANK_CANDIDATES  # every search re-ranked its candidates


def test_a_large_index_file_is_memory_mapped_and_loaded_on_first_change(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    x = _clustered(400, seed=5)
    index, keys = _index(x)
    index.save(tmp_path / "v.usearch")
    monkeypatch.setenv("M3RET_INDEX_VIEW_SHARE", "1e9")
    assert not VectorIndex.load(tmp_path / "v.usearch", 32).memory_mapped
    monkeypatch.setenv("M3RET_INDEX_VIEW_SHARE", "0")  # any file is larger than 0 % of the RAM
    viewed = VectorIndex.load(tmp_path / "v.usearch", 32)
    assert viewed.memory_mapped
    got, _ = viewed.search(x[7], 5)
    assert got[0] == keys[7]
    viewed.add(np.array([10_000]), x[:1] * -1)  # a change loads the file: the view is read-only
    assert not viewed.memory_mapped and len(viewed) == 401
    assert viewed.search(x[7], 5)[0][0] == keys[7]
