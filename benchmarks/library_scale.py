"""Library operations at scale, without reading files: catalog writes, open, rebuild-index, search, listing.

A synthetic library of ``--cases`` cases (D=192 vectors drawn from 200 gaussian clusters, 4 modalities in equal
shares, 6 kB thumbnails) is written through ``Catalog.write_batch`` + ``VectorIndex.add`` in batches of 500, as the
indexer does; then it is closed, reopened (index loaded and reconciled), rebuilt from the catalog, and searched
by case (k=10) unfiltered, with a modality filter (25 % of the cases) and with a filter nothing passes.

Run: ``python -m benchmarks.library_scale [--cases 20000] [--quick]``. Results are printed and written to
``benchmarks/results/library_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import onnxruntime  # noqa: F401  isort: skip  (before usearch, see engine.vectors)
from engine.catalog import FileState, NewCase
from engine.library import LIBRARY_FILE, Library
from engine.search import SearchFilters, search_by_case

RESULTS = Path(__file__).resolve().parent / "results" / "library_scale.json"
DIM = 192
MODALITIES = ("CT", "MR", "XR", "US")


def synthetic_cases(start: int, n: int) -> list[NewCase]:
    """``n`` catalog entries that look like indexed PNG files (no file is touched)."""
    return [
        NewCase(uid=f"/synthetic/{i:08d}.png", kind="image2d", modality=MODALITIES[i % 4], shape=[512, 512],
                fingerprint=f"{i:040x}", reader="image", unit_key=f"/synthetic/{i:08d}.png",
                files=[FileState(f"/synthetic/{i:08d}.png", 100_000, 1.0e9, f"{i:040x}")], thumbnail=b"\0" * 6000)
        for i in range(start, start + n)
    ]


def median_ms(action: Callable[[int], object], repeats: int = 30) -> float:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        action(i)
        times.append((time.perf_counter() - started) * 1000)
    return round(float(np.median(times)), 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.library_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="2,000 cases")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.cases
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, DIM))
    out: dict[str, object] = {"cases": n, "dim": DIM, "load_average_start": os.getloadavg()[0]}

    with tempfile.TemporaryDirectory(prefix="m3ret-scale-") as tmp:
        folder = Path(tmp) / "lib"
        folder.mkdir()
        (folder / LIBRARY_FILE).write_text(json.dumps({"format": 1, "model_id": "synthetic", "embed_dim": DIM}))
        started = time.perf_counter()
        with Library.open(folder) as library:
            for start in range(0, n, 500):
                count = min(500, n - start)
                vectors = centres[rng.integers(0, 200, count)] + 0.3 * rng.normal(size=(count, DIM))
                vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)  # n D
                written = library.catalog.write_batch(synthetic_cases(start, count), vectors, "synthetic")
                library.index.add(np.array([case_id for case_id, _ in written]), vectors)
            library.save_index()
        out["write_s"] = round(time.perf_counter() - started, 2)
        out["catalog_mb"] = round(sum(p.stat().st_size for p in folder.glob("catalog.sqlite*")) / 1e6, 1)
        out["index_mb"] = round((folder / "vectors.usearch").stat().st_size / 1e6, 1)

        started = time.perf_counter()
        library = Library.open(folder)
        library.index
        out["open_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        library.rebuild_index()
        out["rebuild_s"] = round(time.perf_counter() - started, 2)
        ids = library.catalog.filter_case_ids()
        query = lambda i: int(ids[(i * 7919) % len(ids)])  # noqa: E731
        out["search_ms"] = median_ms(lambda i: search_by_case(library, query(i), k=10))
        out["search_modality_ms"] = median_ms(
            lambda i: search_by_case(library, query(i), k=10, filters=SearchFilters(modalities=["CT"])))
        out["search_empty_filter_ms"] = median_ms(
            lambda i: search_by_case(library, query(i), k=10, filters=SearchFilters(kinds=["video"])))
        out["list_100_ms"] = median_ms(lambda i: library.catalog.list_cases(limit=100, offset=i * 100))
        library.close()
    out["load_average_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
