"""Vector search benchmark: single-query latency, recall@k, build time and index size of the search back-ends.

Compares, on the same synthetic embeddings (a clustered mixture on the unit sphere, not uniform noise):

- USearch HNSW (f16 set explicitly, cosine; a few ``expansion_search`` values; connectivity default and 32),
- USearch exact search (``Index.search(..., exact=True)`` on the same f16 index),
- FAISS ``IndexHNSWFlat`` (inner product on L2-normalised vectors, ``efSearch`` matched to USearch's),
- numpy brute force (float32 ``matrix @ query`` + ``argpartition``), which also gives the exact ground truth.

A second pass (the crossover) finds the collection size below which exact search is as fast as HNSW, the
threshold the engine uses to skip the graph. Run: ``python -m benchmarks.vector_search [--quick]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCH_DIR / "results" / "vector_search.json"
README = BENCH_DIR / "README.md"
SECTION_TITLE = "## Vector search"
THRESHOLD_FILE = Path(__file__).resolve().parent / "results" / "exact_threshold.txt"  # read by people tuning engine.vectors
USEARCH_DEFAULT_CONNECTIVITY = 16  # what usearch.index.Index uses when connectivity is None
LIBRARIES = ("usearch", "usearch_i8", "faiss", "numpy")  # a row's library is the first word of its method name
CACHE_DIR = BENCH_DIR.parent / ".cache" / "vector_search"  # datasets and int8 graphs (git-ignored), reused by re-runs
QUANTIZED_CONNECTIVITY = 32  # engine.vectors.QUANTIZED_CONNECTIVITY
RERANK_CANDIDATES = 100  # engine.vectors.RERANK_CANDIDATES
EXACT_QUERY_CAP = 200  # exact methods at >= 1M vectors are slow per query: time this many queries there

SearchOne = Callable[[np.ndarray], np.ndarray]  # query [D] -> keys [k] (int64, -1 where fewer than k found)


# ----------------------------------------------------------------------------------------------- data


@dataclass
class Dataset:
    """Base vectors, held-out queries from the same distribution, and their exact top-k neighbours."""

    base: np.ndarray  # N D float32, L2-normalised
    queries: np.ndarray  # Q D float32, L2-normalised
    truth: np.ndarray  # Q k int64, exact neighbours of each query (best first)


def clustered_vectors(n: int, dim: int, n_clusters: int = 200, seed: int = 0) -> np.ndarray:
    """Draw ``n`` L2-normalised points from a mixture of gaussian clusters centred on the unit sphere.

    Cluster weights are uneven (Dirichlet) and spreads differ per cluster (cosine to the centre about
    0.65-0.85), which is closer to real embeddings than uniform noise. Returns float32 ``N D``.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)  # C D
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    spreads = rng.uniform(0.6, 1.2, n_clusters).astype(np.float32)
    labels = rng.choice(n_clusters, size=n, p=weights)
    out = np.empty((n, dim), dtype=np.float32)  # N D
    for start in range(0, n, 100_000):  # chunks bound the temporary memory
        lab = labels[start : start + 100_000]
        noise = rng.standard_normal((len(lab), dim), dtype=np.float32) / np.sqrt(dim)
        chunk = centres[lab] + spreads[lab, None] * noise
        out[start : start + len(lab)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int, block: int = 64) -> np.ndarray:
    """Exact top-``k`` by inner product (= cosine on normalised vectors), numpy only. Returns int64 ``Q k``."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ base.T  # b N
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # b k, unordered
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + block] = np.take_along_axis(top, order, axis=1)
    return out


def make_dataset(n: int, n_queries: int, dim: int, k: int, n_clusters: int = 200, seed: int = 0) -> Dataset:
    """Draw ``n + n_queries`` points from one mixture; the last ``n_queries`` are the held-out queries.

    Datasets of 100k vectors and more are cached under ``CACHE_DIR`` (the 1M ground truth alone takes minutes)."""
    cache = CACHE_DIR / f"data_n{n}_q{n_queries}_d{dim}_k{k}_c{n_clusters}_s{seed}.npz"
    if n >= 100_000 and cache.is_file():
        with np.load(cache) as saved:
            return Dataset(base=saved["base"], queries=saved["queries"], truth=saved["truth"])
    points = clustered_vectors(n + n_queries, dim, n_clusters, seed)
    base, queries = points[:n], points[n:]
    data = Dataset(base=base, queries=queries, truth=exact_top_k(base, queries, k))
    if n >= 100_000:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(cache, base=data.base, queries=data.queries, truth=data.truth)
    return data


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k present in its found top-k (``Q k`` each; -1 = no result)."""
    k = truth.shape[1]
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2)  # Q k
    return float(hits.sum() / (len(truth) * k))


# --------------------------------------------------------------------------------------------- methods


@dataclass
class Row:
    """One measured configuration: a method at one collection size."""

    n: int
    method: str
    params: dict
    build_s: float | None  # None: no build of its own (reuses another index or the raw matrix)
    index_bytes: int
    p50_ms: float
    p99_ms: float
    recall: float
    queries_timed: int
    short_results: int = 0  # queries that returned fewer than k results (USearch ``matches.counts``)
    note: str = ""


def time_queries(search_one: SearchOne, queries: np.ndarray, warmup: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Run each query alone; return found keys ``Q k`` and per-query latency in seconds ``Q``."""
    for q in queries[:warmup]:
        search_one(q)
    found, seconds = [], np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        keys = search_one(q)
        seconds[i] = time.perf_counter() - t0
        found.append(keys)
    return np.stack(found), seconds


def measure(
    n: int,
    method: str,
    params: dict,
    search_one: SearchOne,
    data: Dataset,
    build_s: float | None,
    index_bytes: int,
    max_queries: int | None = None,
    note: str = "",
) -> Row:
    """Time ``search_one`` over the dataset's queries and score its recall against the exact truth."""
    count = len(data.queries) if max_queries is None else min(max_queries, len(data.queries))
    found, seconds = time_queries(search_one, data.queries[:count])
    return Row(
        n=n,
        method=method,
        params=params,
        build_s=None if build_s is None else round(build_s, 3),
        index_bytes=int(index_bytes),
        p50_ms=round(float(np.percentile(seconds, 50)) * 1e3, 4),
        p99_ms=round(float(np.percentile(seconds, 99)) * 1e3, 4),
        recall=round(recall_at_k(found, data.truth[:count]), 4),
        queries_timed=count,
        note=note,
    )


class ShortCounter:
    """Counts queries whose USearch ``matches.counts`` came back below k."""

    def __init__(self) -> None:
        self.short = 0


def usearch_build(base: np.ndarray, connectivity: int | None, expansion_add: int, threads: int):
    """Build a USearch HNSW index (f16, cosine). Returns ``(index, build seconds)``."""
    from usearch.index import Index

    index = Index(
        ndim=base.shape[1],
        metric="cos",
        dtype="f16",  # explicit: usearch's own default is bf16
        connectivity=connectivity,
        expansion_add=expansion_add,
    )
    t0 = time.perf_counter()
    index.add(np.arange(len(base), dtype=np.uint64), base, threads=threads)
    return index, time.perf_counter() - t0


def usearch_searcher(index, k: int, exact: bool, counter: ShortCounter) -> SearchOne:
    """Single-query, single-thread USearch search that checks ``matches.counts``."""

    def search_one(q: np.ndarray) -> np.ndarray:
        matches = index.search(q, k, threads=1, exact=exact)
        if hasattr(matches, "counts"):  # BatchMatches: rows padded with key 0, valid only up to counts
            got, keys = int(matches.counts[0]), matches.keys[0]
        else:  # Matches (one query): keys already cut to the number found
            got, keys = len(matches.keys), matches.keys
        out = np.full(k, -1, dtype=np.int64)
        out[:got] = keys[:got]
        if got < k:
            counter.short += 1
        return out

    return search_one


def usearch_i8_rows(n: int, data: Dataset, cfg: Settings) -> list[Row]:
    """What the engine does for large libraries: an int8 HNSW (connectivity 32) whose top ``RERANK_CANDIDATES``
    candidates are re-ranked by exact cosine with the f16 vectors (the catalog's), at each expansion_search.

    The graph is cached under ``CACHE_DIR`` (a 1M build takes tens of minutes on the 2-core VM)."""
    from usearch.index import Index

    m = QUANTIZED_CONNECTIVITY
    cache = CACHE_DIR / f"usearch_i8_M{m}_add{cfg.expansion_add}_n{n}_d{cfg.dim}_c{cfg.n_clusters}_s{cfg.seed}.usearch"
    index = Index(ndim=cfg.dim, metric="cos", dtype="i8", connectivity=m, expansion_add=cfg.expansion_add)
    if n >= 100_000 and cache.is_file():
        index.load(str(cache))
        build_s = None
    else:
        t0 = time.perf_counter()
        index.add(np.arange(n, dtype=np.uint64), data.base, threads=cfg.threads)
        build_s = time.perf_counter() - t0
        if n >= 100_000:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            index.save(str(cache))
    exact = data.base.astype(np.float16)  # N D: the catalog's f16 embeddings
    fetch = max(cfg.k, RERANK_CANDIDATES)
    rows = []
    for ef in cfg.efs:
        index.expansion_search = ef

        def search_one(q: np.ndarray) -> np.ndarray:
            keys = np.asarray(index.search(q, fetch, threads=1).keys, dtype=np.int64)
            sims = exact[keys].astype(np.float32) @ q
            return keys[np.argsort(-sims)[: cfg.k]]

        rows.append(measure(n, "usearch_i8 hnsw+rerank",
                            {"dtype": "i8", "M": m, "ef_add": cfg.expansion_add, "ef": ef, "rerank": fetch},
                            search_one, data, build_s, index.serialized_length,
                            note="" if build_s is not None else "graph from the cache (its build: see Vector search at 1M)"))
    return rows


def faiss_build(base: np.ndarray, m: int, ef_construction: int, threads: int):
    """Build a FAISS ``IndexHNSWFlat`` with inner product. Returns ``(index, build seconds)``."""
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    t0 = time.perf_counter()
    index.add(base)
    seconds = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)  # single queries: no OpenMP fan-out
    return index, seconds


def faiss_searcher(index, k: int) -> SearchOne:
    """Single-query FAISS search; FAISS already pads missing results with -1."""

    def search_one(q: np.ndarray) -> np.ndarray:
        _, keys = index.search(q[None, :], k)
        return keys[0]

    return search_one


def numpy_searcher(base: np.ndarray, k: int) -> SearchOne:
    """Brute force: float32 ``matrix @ query`` then ``argpartition`` and a sort of the k best."""

    def search_one(q: np.ndarray) -> np.ndarray:
        scores = base @ q  # N
        top = np.argpartition(-scores, k - 1)[:k]
        return top[np.argsort(-scores[top])].astype(np.int64)

    return search_one


# ----------------------------------------------------------------------------------------- benchmark


@dataclass
class Settings:
    """Everything the command line can change."""

    sizes: list[int]
    dim: int = 192
    k: int = 10
    n_queries: int = 1000
    n_clusters: int = 200
    connectivities: list[int] = field(default_factory=lambda: [USEARCH_DEFAULT_CONNECTIVITY, 32])
    efs: list[int] = field(default_factory=lambda: [64, 128, 256])
    libraries: list[str] = field(default_factory=lambda: list(LIBRARIES))
    expansion_add: int = 128  # usearch default; FAISS efConstruction is set to the same value
    threads: int = os.cpu_count() or 1
    budget_s: float = 25 * 60
    crossover_sizes: list[int] = field(default_factory=list)
    crossover_queries: int = 300
    seed: int = 0


def run_size(n: int, cfg: Settings, started: float, previous_builds: dict[str, tuple[int, float]]) -> list[Row]:
    """Measure every method at one collection size; skip a graph build the time budget cannot afford."""
    from threadpoolctl import threadpool_limits

    logger.info("n=%d: drawing data and exact ground truth", n)
    data = make_dataset(n, cfg.n_queries, cfg.dim, cfg.k, cfg.n_clusters, cfg.seed)
    exact_cap = EXACT_QUERY_CAP if n >= 1_000_000 else None
    rows: list[Row] = []
    for m in cfg.connectivities:
        for library in [lib for lib in ("usearch", "faiss") if lib in cfg.libraries]:
            name = f"{library}-M{m}"
            if name in previous_builds:  # extrapolate build time ~linearly (plus 20 %) from the last size
                prev_n, prev_s = previous_builds[name]
                estimate = prev_s * n / prev_n * 1.2
                left = cfg.budget_s - (time.perf_counter() - started)
                if estimate > left:
                    logger.warning("n=%d %s skipped: estimated build %.0f s > %.0f s left", n, name, estimate, left)
                    rows.append(skipped_row(n, library, m, cfg, f"skipped: build estimated {estimate:.0f} s"))
                    continue
            logger.info("n=%d: building %s", n, name)
            if library == "usearch":
                rows += usearch_rows(n, m, data, cfg, previous_builds, exact_cap)
            else:
                rows += faiss_rows(n, m, data, cfg, previous_builds)
    if "usearch_i8" in cfg.libraries:
        logger.info("n=%d: usearch int8 graph + exact re-rank", n)
        with threadpool_limits(1):
            rows += usearch_i8_rows(n, data, cfg)
    if "numpy" in cfg.libraries:
        with threadpool_limits(1):  # one search thread, like the others
            rows.append(
                measure(n, "numpy brute force", {"dtype": "f32"}, numpy_searcher(data.base, cfg.k), data,
                        None, data.base.nbytes, exact_cap)
            )
    return rows


def usearch_rows(n: int, m: int, data: Dataset, cfg: Settings, builds: dict, exact_cap: int | None) -> list[Row]:
    """USearch HNSW at each expansion_search, plus exact search on the default-connectivity index."""
    connectivity = None if m == USEARCH_DEFAULT_CONNECTIVITY else m  # None = the library's own default
    index, build_s = usearch_build(data.base, connectivity, cfg.expansion_add, cfg.threads)
    builds[f"usearch-M{m}"] = (n, build_s)
    assert index.connectivity == m and str(index.dtype).endswith("F16"), (index.connectivity, index.dtype)
    size = index.serialized_length
    rows = []
    for ef in cfg.efs:
        index.expansion_search = ef
        counter = ShortCounter()
        row = measure(n, "usearch hnsw", {"dtype": "f16", "M": m, "ef_add": cfg.expansion_add, "ef": ef},
                      usearch_searcher(index, cfg.k, False, counter), data, build_s, size)
        row.short_results = counter.short
        rows.append(row)
    if m == USEARCH_DEFAULT_CONNECTIVITY:
        counter = ShortCounter()
        row = measure(n, "usearch exact", {"dtype": "f16"}, usearch_searcher(index, cfg.k, True, counter), data,
                      None, size, exact_cap, note="exact=True on the M16 index")
        row.short_results = counter.short
        rows.append(row)
    return rows


def faiss_rows(n: int, m: int, data: Dataset, cfg: Settings, builds: dict) -> list[Row]:
    """FAISS HNSW at each efSearch (matched to USearch's expansion_search)."""
    import faiss

    index, build_s = faiss_build(data.base, m, cfg.expansion_add, cfg.threads)
    builds[f"faiss-M{m}"] = (n, build_s)
    size = faiss.serialize_index(index).nbytes
    rows = []
    for ef in cfg.efs:
        index.hnsw.efSearch = ef
        rows.append(measure(n, "faiss hnsw", {"dtype": "f32", "M": m, "ef_add": cfg.expansion_add, "ef": ef},
                            faiss_searcher(index, cfg.k), data, build_s, size))
    return rows


def skipped_row(n: int, library: str, m: int, cfg: Settings, note: str) -> Row:
    """A placeholder row saying which configuration the time budget left out."""
    nan = float("nan")
    return Row(n, f"{library} hnsw", {"M": m, "ef_add": cfg.expansion_add}, None, 0, nan, nan, nan, 0, note=note)


# ----------------------------------------------------------------------------------------- crossover


def time_interleaved(searchers: dict[str, SearchOne], queries: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Like ``time_queries`` for several searchers, taking turns per query so load changes hit all alike."""
    found: dict[str, list[np.ndarray]] = {name: [] for name in searchers}
    seconds = {name: np.empty(len(queries)) for name in searchers}
    for q in queries[:10]:  # warm-up
        for search_one in searchers.values():
            search_one(q)
    for i, q in enumerate(queries):
        for name, search_one in searchers.items():
            t0 = time.perf_counter()
            keys = search_one(q)
            seconds[name][i] = time.perf_counter() - t0
            found[name].append(keys)
    return {name: (np.stack(found[name]), seconds[name]) for name in searchers}


def run_crossover(cfg: Settings) -> tuple[list[dict], dict]:
    """p50 latency of HNSW vs exact at small sizes; returns the table and the thresholds.

    The threshold for a pair (exact method, HNSW ef) is the largest tested size at which the exact method's
    p50 is no slower than HNSW's, provided it is no slower at every smaller tested size too.
    """
    from threadpoolctl import threadpool_limits

    table = []
    for n in cfg.crossover_sizes:
        data = make_dataset(n, cfg.crossover_queries, cfg.dim, cfg.k, cfg.n_clusters, cfg.seed + 1)
        index, _ = usearch_build(data.base, None, cfg.expansion_add, cfg.threads)
        counter = ShortCounter()
        searchers = {"exact": usearch_searcher(index, cfg.k, True, counter), "numpy": numpy_searcher(data.base, cfg.k)}
        for ef in cfg.efs:  # one index per ef: expansion_search is a property of the index
            clone = index.copy()
            clone.expansion_search = ef
            searchers[f"hnsw_ef{ef}"] = usearch_searcher(clone, cfg.k, False, counter)
        with threadpool_limits(1):
            timed = time_interleaved(searchers, data.queries)
        entry: dict = {"n": n}
        for name, (found, seconds) in timed.items():
            entry[f"{name}_p50_ms"] = round(float(np.percentile(seconds, 50)) * 1e3, 4)
            entry[f"{name}_recall"] = round(recall_at_k(found, data.truth), 4)
        entry["short_results"] = counter.short
        logger.info("crossover %s", entry)
        table.append(entry)
    thresholds = {}
    for exact in ("exact", "numpy"):
        for ef in cfg.efs:
            best = 0
            for entry in table:
                if entry[f"{exact}_p50_ms"] > entry[f"hnsw_ef{ef}_p50_ms"]:
                    break
                best = entry["n"]
            thresholds[f"{exact}_vs_ef{ef}"] = best
    return table, thresholds


def write_threshold(table: list[dict], thresholds: dict, cfg: Settings, path: Path = THRESHOLD_FILE) -> None:
    """Write the exact-vs-HNSW thresholds for the engine as ``name=vectors`` lines plus the measured table."""
    info = machine()
    lines = [
        f"# Largest collection size at which exact search is as fast (p50, one query, k={cfg.k}, D={cfg.dim}, "
        "1 search thread) as USearch HNSW (f16, cos, M16) at expansion_search=ef.",
        "# exact = usearch Index.search(exact=True) on the f16 index; numpy = float32 matrix @ q + argpartition.",
        f"# Measured {utc_now()} on {info['cpu']} ({info['cores']} cores, shared, load {info['load_avg_1m']}); "
        f"sizes tried: {cfg.crossover_sizes}, {cfg.crossover_queries} queries each, interleaved.",
        *[f"{name}={value}" for name, value in thresholds.items()],
        *[f"# {json.dumps(entry)}" for entry in table],
    ]
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------- output


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> dict:
    """CPU model, core count, OS and library versions, thread settings, load when measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    for module in ("usearch", "faiss"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = "not installed"
    return info


def row_order(row: dict) -> tuple:
    """Table order: size, library, HNSW before exact, connectivity, ef."""
    params = row["params"]
    library = LIBRARIES.index(row["method"].split()[0])
    return row["n"], library, row["method"].endswith("exact"), params.get("M", 0), params.get("ef", 0)


def params_text(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def fmt(value: float | None, digits: int) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:.{digits}f}"


def markdown_section(report: dict) -> str:
    """The README's "Vector search" section: how it was run, results table, crossover threshold."""
    cfg, info = report["settings"], report["machine"]
    out = [
        SECTION_TITLE,
        "",
        "`python -m benchmarks.vector_search` (`--quick`: 10k only). Synthetic embeddings: a mixture of "
        f"{cfg['n_clusters']} gaussian clusters on the unit sphere (uneven sizes and spreads), D={cfg['dim']}, "
        f"L2-normalised; {cfg['n_queries']} held-out queries from the same mixture; ground truth by numpy "
        f"brute force. Latency = one query at a time, k={cfg['k']}, single search thread; builds use "
        f"{cfg['threads']} threads. USearch: dtype f16 (explicit), metric cos, expansion_add={cfg['expansion_add']}; "
        "FAISS: IndexHNSWFlat, inner product, efConstruction = expansion_add, efSearch = expansion_search. "
        "Index size = serialized bytes (USearch `serialized_length`, FAISS `serialize_index`, numpy `nbytes`).",
        "",
        f"Measured {report['date']} on {info['cpu']}, {info['cores']} cores (VM, shared with other engineers' "
        f"jobs during the run: load average {report.get('load_start')} at start, {report.get('load_end')} at end, "
        f"so absolute times are pessimistic and noisy); usearch {info['usearch']}, faiss {info['faiss']}, numpy "
        f"{info['numpy']}, OMP_NUM_THREADS={info['OMP_NUM_THREADS']}. Wall time {report['wall_s']:.0f} s. "
        "Raw numbers: `benchmarks/results/vector_search.json`.",
        "",
    ]
    if report["rows"]:
        out += [
            "| N | method | params | build s | index MB | p50 ms | p99 ms | recall@10 | note |",
            "|---:|---|---|---:|---:|---:|---:|---:|---|",
        ]
    for r in report["rows"]:
        note = r["note"] + (f" {r['short_results']} short results" if r["short_results"] else "")
        if r["queries_timed"] and r["queries_timed"] < cfg["n_queries"]:
            note += f" ({r['queries_timed']} queries timed)"
        out.append(
            f"| {r['n']:,} | {r['method']} | {params_text(r['params'])} | {fmt(r['build_s'], 1)} | "
            f"{fmt(r['index_bytes'] / 2**20 if r['index_bytes'] else None, 1)} | {fmt(r['p50_ms'], 3)} | "
            f"{fmt(r['p99_ms'], 3)} | {fmt(r['recall'], 3)} | {note.strip()} |"
        )
    if report.get("crossover"):
        efs = cfg["efs"]
        out += [
            "",
            "### Exact-search threshold",
            "",
            "Largest tested size at which exact search is no slower (p50, single query, interleaved timing) "
            "than USearch HNSW (M16) at each expansion_search: "
            + ", ".join(f"{k.replace('_vs_', ' vs ')} **{v:,}**" for k, v in report["thresholds"].items())
            + f". Sizes tried: {', '.join(f'{n:,}' for n in cfg['crossover_sizes'])}; "
            f"{cfg['crossover_queries']} queries each. Also written to `benchmarks/results/exact_threshold.txt`; the engine uses the ef256 figure.",
            "",
            "| N | usearch exact p50 ms | numpy p50 ms | "
            + " | ".join(f"HNSW ef={ef} p50 ms (recall)" for ef in efs) + " |",
            "|---:|---:|---:|" + "---:|" * len(efs),
        ]
        for e in report["crossover"]:
            cells = " | ".join(f"{e[f'hnsw_ef{ef}_p50_ms']:.3f} ({e[f'hnsw_ef{ef}_recall']:.3f})" for ef in efs)
            out.append(f"| {e['n']:,} | {e['exact_p50_ms']:.3f} | {e['numpy_p50_ms']:.3f} | {cells} |")
    skipped = [r for r in report["rows"] if r["note"].startswith("skipped")]
    notes = list(report.get("notes", []))
    if skipped:
        notes.append(f"{len(skipped)} graph build(s) skipped: their estimated build time (extrapolated from the "
                     f"previous size) did not fit the {cfg['budget_s'] / 60:.0f} min budget of the run.")
    if notes:
        out += ["", *[f"- {line}" for line in notes]]
    return "\n".join(out) + "\n"


def replace_section(readme: Path, section: str) -> None:
    """Replace (or append) this benchmark's section, leaving every other section of the README as it is."""
    text = readme.read_text() if readme.exists() else "# Benchmarks\n\nRun all of them with `make bench`.\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION_TITLE), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    readme.write_text(new)


# ------------------------------------------------------------------------------------------------ main


def int_list(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part]


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vector_search", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k vectors only, no crossover, README untouched")
    parser.add_argument("--sizes", type=int_list, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=192, help="vector size (default: the default encoder's 192)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--connectivity", type=int_list, default=[USEARCH_DEFAULT_CONNECTIVITY, 32])
    parser.add_argument("--ef", type=int_list, default=[64, 128, 256], help="expansion_search / efSearch values")
    parser.add_argument("--ef-add", type=int, default=128, help="expansion_add / efConstruction")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="build threads")
    parser.add_argument("--budget-min", type=float, default=25.0, help="skip graph builds that would overrun this")
    parser.add_argument(
        "--crossover-sizes", type=int_list, default=[1000, 2000, 3000, 5000, 7000, 10_000, 20_000, 50_000]
    )
    parser.add_argument("--crossover-queries", type=int, default=1000)
    parser.add_argument("--crossover-only", action="store_true", help="only find the exact-search threshold")
    parser.add_argument("--no-crossover", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help=f"default {RESULTS_JSON.relative_to(BENCH_DIR.parent)}")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--threshold-file", type=Path, default=THRESHOLD_FILE, help="exact-search threshold hand-off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--update", action="store_true", help="re-measure --sizes x --libraries, keep other rows")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated subset of " + ",".join(LIBRARIES))
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.no_crossover = [10_000], True
    unknown = set(args.libraries.split(",")) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown --libraries {sorted(unknown)}; choose from {','.join(LIBRARIES)}")
    cfg = Settings(
        sizes=args.sizes, dim=args.dim, k=args.k, n_queries=args.queries, n_clusters=args.clusters,
        connectivities=args.connectivity, efs=args.ef, libraries=args.libraries.split(","), expansion_add=args.ef_add, threads=args.threads,
        budget_s=args.budget_min * 60, crossover_sizes=[] if args.no_crossover else args.crossover_sizes,
        crossover_queries=args.crossover_queries,
        seed=args.seed,
    )
    return cfg, args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write JSON (and, unless ``--quick``, the README section). Returns an exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, args = parse_args(argv)
    try:
        import faiss  # noqa: F401
        import threadpoolctl  # noqa: F401
    except ImportError as error:
        logger.error("%s: install the bench extra (pip install -e '.[bench]')", error)
        return 2
    started = time.perf_counter()
    report: dict = {"date": utc_now(), "machine": machine(), "settings": asdict(cfg), "notes": []}
    report["load_start"] = report["machine"]["load_avg_1m"]
    json_path = args.json or (RESULTS_JSON.with_suffix(".quick.json") if args.quick else RESULTS_JSON)
    write_readme = not args.quick
    earlier_wall_s = 0.0
    if args.update and json_path.exists():  # re-measure some sizes, keep the rest of the earlier report
        report = json.loads(json_path.read_text())
        report["rows"] = [
            row for row in report["rows"]
            if row["n"] not in cfg.sizes or row["method"].split()[0] not in cfg.libraries
        ]
        earlier_wall_s = report.get("wall_s", 0.0)
        report["notes"].append(
            f"N={', '.join(f'{n:,}' for n in cfg.sizes)} re-measured {utc_now()} (load "
            f"{machine()['load_avg_1m']}) with: {' '.join(argv)}"
        )

    def save() -> None:
        report["wall_s"] = round(earlier_wall_s + time.perf_counter() - started, 1)
        report["rows"].sort(key=row_order)
        report["load_end"] = round(os.getloadavg()[0], 2)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
        if write_readme:
            replace_section(args.readme, markdown_section(report))

    if cfg.crossover_sizes:
        report["crossover"], report["thresholds"] = run_crossover(cfg)
        write_threshold(report["crossover"], report["thresholds"], cfg, args.threshold_file)
        logger.info("exact-search thresholds: %s (written to %s)", report["thresholds"], args.threshold_file)
    report.setdefault("rows", [])
    if not args.crossover_only:
        builds: dict[str, tuple[int, float]] = {}
        for n in sorted(cfg.sizes):
            report["rows"] += [asdict(r) for r in run_size(n, cfg, started, builds)]
            save()  # after each size, so a long run leaves what it measured so far
    save()
    for r in report["rows"]:
        logger.info("%9d %-18s %-40s p50 %.3f ms p99 %.3f ms recall %.3f build %s s",
                    r["n"], r["method"], params_text(r["params"]), r["p50_ms"], r["p99_ms"], r["recall"], r["build_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
