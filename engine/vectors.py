"""The vector index: USearch, cosine metric, float16 storage, keys = catalog case ids.

A cache of the catalog's embeddings (``Library`` rebuilds or tops it up from the catalog when they disagree).
Search is exact (brute force) while the index holds at most ``EXACT_SEARCH_MAX`` vectors and HNSW with a raised
``expansion_search`` (256) above. The threshold is measured (benchmarks/README.md, "Exact-search threshold",
``python -m benchmarks.vector_search``; D=192, f16, top-10, one query at a time, 2-core VM): USearch exact search
is no slower than HNSW at expansion_search=256 up to 10,000 vectors (p50 0.50 vs 0.61 ms at 10k; 0.84 vs 0.62 ms
at 20k, 11.0 vs 0.54 ms at 50k) and HNSW recall@10 there is >= 0.999.

Filtered searches that leave at most ``EXACT_ALLOWED_MAX`` cases are exact over just those cases (a dot product
over their vectors) unless they are at least ``OVERFETCH_MIN_SHARE`` of the index: then over-fetching finds k of
them among a few k / share candidates, cheaper than gathering vectors (20k vectors, 25 % filter: 60 -> ~15 ms).

Large indexes (built for more than ``QUANTIZED_MIN`` vectors: ``m3ret rebuild-index``, a Ray indexing run) store
int8 vectors in a graph of connectivity 32 and re-rank the top ``RERANK_CANDIDATES`` HNSW candidates with the exact
vectors — the catalog's f16 embeddings, through ``exact_vectors`` — so results are ordered by exact cosine; int8
keeps the denser graph about the size of an f16 M=16 one (benchmarks/README.md, "Vector search at 1M": recall@10
0.930 -> 0.992 at 1M, p50 2.9 ms + ~1 ms for the catalog fetch). An index
file larger than a configurable share of the RAM (``engine.config.vector_index_view_share``) is memory-mapped
(USearch ``view``) instead of loaded; the first change to it loads it.

Saving writes a temporary file next to the target and moves it into place with ``os.replace`` (atomic), so an
interrupted save leaves the previous index intact.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.config import vector_index_view_share

# onnxruntime must be loaded before usearch in one process (the reverse order segfaults with
# onnxruntime 1.32 + usearch 2.26 wheels); engine modules that search also embed.
import onnxruntime  # noqa: F401  isort: skip
from usearch.index import Index  # isort: skip

log = logging.getLogger(__name__)

EXACT_SEARCH_MAX = 10_000  # measured, see module docstring
EXACT_ALLOWED_MAX = 20_000  # a filter leaving at most this many cases: brute force over just those
OVERFETCH_MIN_SHARE = 0.125  # a filter leaving at least this share of the index: over-fetch instead
EXPANSION_SEARCH = 256  # USearch default 64; raised for recall at top-k up to a few hundred
EXPANSION_ADD = 128
CONNECTIVITY = 16  # f16 indexes (built for at most QUANTIZED_MIN vectors)
QUANTIZED_MIN = 100_000  # an index built for more vectors stores them as int8 and re-ranks exactly (below)
QUANTIZED_CONNECTIVITY = 32  # measured at 1M (benchmarks/README.md, "Vector search at 1M")
QUANTIZED_EXPANSION_SEARCH = 512
RERANK_CANDIDATES = 100  # int8 index: this many HNSW candidates (at least k) re-ranked with the exact vectors

ExactVectors = Callable[[np.ndarray], np.ndarray]  # keys int64 [n] -> float32 [n, D] (the catalog's f16 vectors)


class VectorIndex:
    """Cosine nearest neighbours over float16 vectors keyed by case id (thread-safe)."""

    def __init__(self, ndim: int, quantized: bool = False, exact_vectors: ExactVectors | None = None) -> None:
        """``quantized``: int8 storage (for large indexes), candidates re-ranked with ``exact_vectors``."""
        self.ndim = ndim
        self._index = _new_index(ndim, quantized)
        self._lock = threading.RLock()
        self._viewed: Path | None = None  # the file this index memory-maps (read-only) until its first change
        self._exact = exact_vectors

    @property
    def quantized(self) -> bool:
        """True for an int8 index (its own vectors are approximate: results are re-ranked exactly)."""
        return str(self._index.dtype).lower().endswith("i8")

    def use_exact_vectors(self, exact_vectors: ExactVectors | None) -> None:
        """Where a quantized index gets the exact vectors of its candidates (the catalog's f16 embeddings)."""
        self._exact = exact_vectors

    @property
    def memory_mapped(self) -> bool:
        """True while the index is a read-only view of its file (``load(..., view=True)``)."""
        return self._viewed is not None

    def _make_writable(self) -> None:
        """A change to a viewed index first loads the file into memory (a view cannot be modified)."""
        if self._viewed is not None:
            log.info("vector index %s: loading the memory-mapped file to modify it", self._viewed)
            self._index.load(str(self._viewed))
            self._viewed = None

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> np.ndarray:
        """Every key (int64, sorted)."""
        with self._lock:
            if len(self._index) == 0:
                return np.zeros(0, dtype=np.int64)
            return np.sort(np.asarray(self._index.keys, dtype=np.int64))

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors ``float32 [N, D]`` under ``keys [N]``."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(keys), self.ndim)  # N D
        with self._lock:
            self._make_writable()
            present = keys[self._contains(keys)]
            if len(present):
                self._index.remove(present)
            self._index.add(keys, vectors, threads=0)

    def remove(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        with self._lock:
            present = keys[self._contains(keys)]
            if len(present):
                self._make_writable()
                self._index.remove(present)

    def _contains(self, keys: np.ndarray) -> np.ndarray:
        if len(keys) == 0 or len(self._index) == 0:
            return np.zeros(len(keys), dtype=bool)
        return np.asarray(self._index.contains(keys), dtype=bool).reshape(len(keys))

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors ``float32 [N, D]`` for keys that are present."""
        keys = np.asarray(keys, dtype=np.uint64)
        with self._lock:
            vectors = self._index.get(keys, dtype=np.float32)
        return np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.ndim)

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        accept: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(keys int64, similarities float32)``, best first, among ``allowed`` keys (None = all).

        ``accept`` (keys -> bool mask) is an extra filter; candidates are over-fetched and the fetch grown until
        ``k`` accepted results are found or the index is exhausted, so a filter never shortens the list below
        what exists.
        """
        query = np.asarray(query, dtype=np.float32).reshape(1, self.ndim)  # 1 D
        with self._lock:
            size = len(self._index)
            if size == 0 or k <= 0:
                return _empty()
            share = 1.0
            if allowed is not None:
                allowed = np.asarray(allowed, dtype=np.int64)
                share = max(len(allowed), 1) / size
                if len(allowed) <= EXACT_ALLOWED_MAX and share < OVERFETCH_MIN_SHARE:
                    return self._exact_among(query, k, allowed, accept)
                accept = _both(lambda keys: np.isin(keys, allowed), accept)
            # expect k accepted among k / share candidates; fetch twice that, grow by 4x until full or exhausted
            fetch = k if accept is None else min(size, max(4 * k, 32, int(2 * k / share)))
            while True:
                keys, sims = self._search(query, fetch, size)
                if accept is not None and len(keys):
                    mask = accept(keys)
                    keys, sims = keys[mask], sims[mask]
                if len(keys) >= k or fetch >= size:
                    return keys[:k], sims[:k]
                fetch = min(size, fetch * 4)

    def _search(self, query: np.ndarray, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        exact = size <= EXACT_SEARCH_MAX or count >= size // 2
        fetch = min(size, max(count, RERANK_CANDIDATES)) if self.quantized else count
        keys, sims = _unpack(self._index.search(query, fetch, exact=exact))
        if not exact and len(keys) < min(fetch, size):
            log.debug("HNSW returned %d of %d; falling back to exact search", len(keys), fetch)
            keys, sims = _unpack(self._index.search(query, fetch, exact=True))
        if self.quantized:
            keys, sims = self._rerank(query, keys)
        return keys[:count], sims[:count]

    def _rerank(self, query: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates ordered by exact cosine similarity to ``query [1, D]``."""
        if len(keys) == 0:
            return keys, np.zeros(0, dtype=np.float32)
        sims = _cosine(self._vectors(keys), query[0])
        order = np.argsort(-sims, kind="stable")
        return keys[order], sims[order]

    def _vectors(self, keys: np.ndarray) -> np.ndarray:
        """Exact vectors ``float32 [n, D]``: the catalog's for a quantized index, the index's own otherwise."""
        if self.quantized and self._exact is not None:
            return np.asarray(self._exact(np.asarray(keys, dtype=np.int64)), dtype=np.float32)
        return self.get(keys)

    def _exact_among(
        self, query: np.ndarray, k: int, allowed: np.ndarray, accept: Callable[[np.ndarray], np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        present = allowed[self._contains(allowed.astype(np.uint64))]
        if accept is not None and len(present):
            present = present[accept(present)]
        if len(present) == 0:
            return _empty()
        sims = _cosine(self._vectors(present), query[0])  # n
        order = np.argsort(-sims, kind="stable")[:k]
        return present[order], sims[order].astype(np.float32)

    def save(self, path: Path) -> None:
        """Write atomically: temporary file in the same folder, then ``os.replace``."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with self._lock:
                self._index.save(tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path, ndim: int, view: bool | None = None, exact_vectors: ExactVectors | None = None
             ) -> "VectorIndex":
        """Load a saved index; ``ValueError`` when it is unreadable or of another dimension.

        ``view=True`` memory-maps the file instead of reading it (USearch ``view``: pages are read on demand and
        shared with the OS cache; the first change loads it); ``None``: view when the file is larger than
        ``engine.config.vector_index_view_share()`` of this machine's RAM."""
        index = cls(ndim, exact_vectors=exact_vectors)
        view = should_view(Path(path)) if view is None else view
        try:
            if view:
                index._index.view(str(path))
                index._viewed = Path(path)
            else:
                index._index.load(str(path))
        except Exception as exc:  # noqa: BLE001 (a damaged cache is rebuilt from the catalog)
            raise ValueError(f"{path}: unreadable vector index ({exc})") from exc
        if index._index.ndim != ndim:
            raise ValueError(f"{path}: vector index has {index._index.ndim} dimensions, expected {ndim}")
        index._index.expansion_search = QUANTIZED_EXPANSION_SEARCH if index.quantized else EXPANSION_SEARCH
        return index


def physical_memory_bytes() -> int | None:
    """This machine's RAM (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def should_view(path: Path, share: float | None = None) -> bool:
    """Whether an index file is large enough to memory-map: more than ``share`` (default
    ``engine.config.vector_index_view_share()``) of the RAM."""
    ram = physical_memory_bytes()
    share = vector_index_view_share() if share is None else share
    try:
        return ram is not None and path.stat().st_size > share * ram
    except OSError:
        return False


def _new_index(ndim: int, quantized: bool = False) -> Index:
    if quantized:
        return Index(ndim=ndim, metric="cos", dtype="i8", connectivity=QUANTIZED_CONNECTIVITY,
                     expansion_add=EXPANSION_ADD, expansion_search=QUANTIZED_EXPANSION_SEARCH)
    return Index(
        ndim=ndim, metric="cos", dtype="f16", connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH,
    )


def _cosine(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``vectors [n, D]`` to ``query [D]`` -> float32 [n]."""
    norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
    return ((vectors @ query) / (norms * max(float(np.linalg.norm(query)), 1e-12))).astype(np.float32)


def _both(first: Callable[[np.ndarray], np.ndarray], second: Callable[[np.ndarray], np.ndarray] | None
          ) -> Callable[[np.ndarray], np.ndarray]:
    """A predicate accepting the keys both accept (``second`` may be None)."""
    if second is None:
        return first
    return lambda keys: first(keys) & second(keys)


def _unpack(matches: object) -> tuple[np.ndarray, np.ndarray]:
    """Keys and cosine similarities of the first query, only the ``counts`` found (never padding)."""
    counts = getattr(matches, "counts", None)
    keys, distances = np.asarray(matches.keys), np.asarray(matches.distances)  # type: ignore[attr-defined]
    if counts is not None:  # BatchMatches: rows padded past counts[i]
        found = int(np.asarray(counts).reshape(-1)[0])
        keys, distances = keys.reshape(len(counts), -1)[0, :found], distances.reshape(len(counts), -1)[0, :found]
    else:  # Matches: already trimmed to what was found
        keys, distances = keys.reshape(-1), distances.reshape(-1)
        found = min(len(keys), len(distances))
        keys, distances = keys[:found], distances[:found]
    return keys.astype(np.int64), (1.0 - distances.astype(np.float32)).astype(np.float32)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
