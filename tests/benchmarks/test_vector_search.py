"""Vector search benchmark: recall and ground truth on cases with a known answer, a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import vector_search as vs


def test_recall_counts_true_neighbours_found_and_ignores_missing_results() -> None:
    truth = np.array([[0, 1, 2], [3, 4, 5]])
    found = np.array([[2, 0, 9], [5, -1, -1]])  # 2 of 3, then 1 of 3 (two slots empty)
    assert vs.recall_at_k(found, truth) == pytest.approx(3 / 6)
    assert vs.recall_at_k(truth[:, ::-1], truth) == 1.0  # order inside the top-k does not matter


def test_exact_top_k_orders_points_on_a_circle_by_angle() -> None:
    angles = np.array([0.0, 0.1, -0.25, 0.4, 1.0, -1.5, 3.0])  # nearest to angle 0: 0, 1, 2, 3, 4, 5, 6
    base = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)  # N 2
    rng = np.random.default_rng(1)
    order = rng.permutation(len(base))  # shuffle so the answer is not simply 0..k-1 in storage order
    query = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)  # angle 0 and angle pi
    got = vs.exact_top_k(base[order], query, k=3)
    inverse = np.argsort(order)  # storage row of original point i
    assert got[0].tolist() == inverse[[0, 1, 2]].tolist()
    assert got[1].tolist() == inverse[[6, 5, 4]].tolist()  # 3.0, -1.5, 1.0 rad are closest to pi


def test_clustered_vectors_are_normalised_reproducible_and_clustered() -> None:
    a = vs.clustered_vectors(2000, 32, n_clusters=20, seed=3)
    assert a.shape == (2000, 32) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, vs.clustered_vectors(2000, 32, n_clusters=20, seed=3))
    noise = np.random.default_rng(3).standard_normal((2000, 32)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)

    def mean_nearest_cosine(x: np.ndarray) -> float:
        sims = x @ x.T
        np.fill_diagonal(sims, -1.0)
        return float(sims.max(axis=1).mean())

    assert mean_nearest_cosine(a) > mean_nearest_cosine(noise) + 0.1


def test_replace_section_keeps_other_sections(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nintro\n\n## Indexing\n\nother table\n")
    vs.replace_section(readme, "## Vector search\n\nfirst\n")
    vs.replace_section(readme, "## Vector search\n\nsecond\n")
    text = readme.read_text()
    assert "## Indexing\n\nother table" in text and "second" in text and "first" not in text
    assert text.count("## Vector search") == 1


def test_tiny_run_writes_json_and_readme_with_consistent_recall(tmp_path: Path) -> None:
    pytest.importorskip("faiss", reason="faiss-cpu is a benchmark-only dependency (pip install -e '.[bench]')")
    pytest.importorskip("threadpoolctl", reason="threadpoolctl is a benchmark-only dependency")
    out, readme, threshold = tmp_path / "vs.json", tmp_path / "README.md", tmp_path / "threshold.txt"
    size = ["--sizes", "600", "--queries", "40", "--dim", "24", "--clusters", "10", "--ef", "16,64",
            "--connectivity", "16"]
    outputs = ["--json", str(out), "--readme", str(readme), "--threshold-file", str(threshold)]
    assert vs.main([*size, "--crossover-sizes", "200,400", "--crossover-queries", "30", *outputs]) == 0
    report = json.loads(out.read_text())
    rows = {(r["method"], r["params"].get("ef")): r for r in report["rows"]}
    assert set(rows) == {("usearch hnsw", 16), ("usearch hnsw", 64), ("usearch exact", None),
                         ("faiss hnsw", 16), ("faiss hnsw", 64), ("numpy brute force", None),
                         ("usearch_i8 hnsw+rerank", 16), ("usearch_i8 hnsw+rerank", 64)}
    assert rows[("numpy brute force", None)]["recall"] == 1.0  # same computation as the ground truth
    assert rows[("usearch exact", None)]["recall"] >= 0.97  # exact, up to f16 rounding of near ties
    assert rows[("faiss hnsw", 64)]["recall"] >= 0.9
    assert rows[("usearch hnsw", 64)]["recall"] >= 0.9
    assert rows[("usearch_i8 hnsw+rerank", 64)]["recall"] >= 0.9  # int8 graph, exact f16 re-rank
    assert all(r["short_results"] == 0 for r in report["rows"])  # 600 vectors: every query gets k results
    assert rows[("usearch hnsw", 16)]["index_bytes"] > 600 * 24 * 2  # at least the f16 vectors
    assert rows[("numpy brute force", None)]["index_bytes"] == 600 * 24 * 4
    assert set(report["thresholds"]) == {f"{m}_vs_ef{ef}" for m in ("exact", "numpy") for ef in (16, 64)}
    assert all(v in (0, 200, 400) for v in report["thresholds"].values())
    assert "exact_vs_ef64=" in threshold.read_text()
    assert "## Vector search" in readme.read_text() and "| 600 | numpy brute force |" in readme.read_text()

    # --update re-measures one library at one size and keeps every other row
    before = {(r["n"], r["method"], r["params"].get("ef")) for r in report["rows"]}
    assert vs.main([*size, "--no-crossover", "--libraries", "numpy", "--update", *outputs]) == 0
    updated = json.loads(out.read_text())
    assert {(r["n"], r["method"], r["params"].get("ef")) for r in updated["rows"]} == before
    assert updated["thresholds"] == report["thresholds"] and "re-measured" in updated["notes"][-1]

